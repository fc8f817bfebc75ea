//! Helpers shared by the wasm32-wasip1 case programs.
//!
//! `raw` declares the few `wasi_snapshot_preview1` functions that Rust's std
//! does not expose (clock resolution, random bytes, raw fd writes, prestat),
//! so that cases can look at the host's answers directly, errno included.

/// Raw `wasi_snapshot_preview1` imports. Each returns a WASI errno (0 = success).
pub mod raw {
    /// `errno::badf`
    pub const EBADF: u16 = 8;

    pub const CLOCK_REALTIME: u32 = 0;
    pub const CLOCK_MONOTONIC: u32 = 1;

    #[repr(C)]
    pub struct Ciovec {
        pub buf: *const u8,
        pub len: usize,
    }

    #[repr(C)]
    pub struct Prestat {
        /// 0 = directory
        pub tag: u8,
        pub name_len: usize,
    }

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        pub fn clock_res_get(id: u32, resolution: *mut u64) -> u16;
        pub fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
        pub fn random_get(buf: *mut u8, len: usize) -> u16;
        pub fn fd_write(fd: u32, iovs: *const Ciovec, iovs_len: usize, nwritten: *mut usize) -> u16;
        pub fn fd_close(fd: u32) -> u16;
        pub fn fd_prestat_get(fd: u32, prestat: *mut Prestat) -> u16;
        pub fn fd_prestat_dir_name(fd: u32, path: *mut u8, path_len: usize) -> u16;
    }
}

/// Reads a clock through `clock_time_get`; panics on an errno.
pub fn clock_now(id: u32) -> u64 {
    let mut t = 0u64;
    // SAFETY: the out-pointer is to a local that outlives the call.
    let errno = unsafe { raw::clock_time_get(id, 1, &mut t) };
    assert_eq!(errno, 0, "clock_time_get({id}) failed with errno {errno}");
    t
}

/// Writes `bytes` to `fd` with a single `fd_write`; returns the errno.
pub fn write_fd(fd: u32, bytes: &[u8]) -> u16 {
    let iov = raw::Ciovec { buf: bytes.as_ptr(), len: bytes.len() };
    let mut written = 0usize;
    // SAFETY: the iovec and out-pointer are locals, and the iovec points into `bytes`, all alive
    // during the call.
    unsafe { raw::fd_write(fd, &iov, 1, &mut written) }
}

/// Prints `what: failed` when `result` is an error (the expected outcome of an
/// escape attempt) and `what: SUCCEEDED` otherwise; returns whether it failed.
pub fn expect_failure<T, E>(what: &str, result: Result<T, E>) -> bool {
    match result {
        Ok(_) => {
            println!("{what}: SUCCEEDED (escape!)");
            false
        }
        Err(_) => {
            println!("{what}: failed");
            true
        }
    }
}
