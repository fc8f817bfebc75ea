//! clock_res_get reports a resolution > 0 (and at most 1 s) for the realtime
//! and monotonic clocks. (An unknown clock id is not tried: wasmtime traps on
//! an out-of-range enum argument where other runtimes return EINVAL.)
use p1::raw;

fn res(id: u32) -> Result<u64, u16> {
    let mut r = 0u64;
    // SAFETY: the out-pointer is to a local that outlives the call.
    match unsafe { raw::clock_res_get(id, &mut r) } {
        0 => Ok(r),
        errno => Err(errno),
    }
}

fn main() {
    for (name, id) in [("realtime", raw::CLOCK_REALTIME), ("monotonic", raw::CLOCK_MONOTONIC)] {
        let r = res(id).unwrap_or_else(|e| panic!("clock_res_get({name}) errno {e}"));
        println!("{name}: resolution > 0: {}, <= 1s: {}", r > 0, r <= 1_000_000_000);
    }
}
