//! A Rust panic: std prints the panic message on stderr, then aborts, which on
//! wasm is an `unreachable` trap. Output printed before it is kept.
fn main() {
    println!("about to panic");
    let v: Vec<u32> = std::hint::black_box(Vec::new());
    if v.is_empty() {
        panic!("deliberate panic");
    }
    println!("not reached");
}
