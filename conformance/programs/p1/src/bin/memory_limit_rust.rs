//! Allocates 1 MiB blocks (and touches them) until the allocator fails, which
//! past the case's memory_limit it must: Rust's allocation-failure handler
//! prints a message and aborts, which is a wasm trap. If 256 MiB were
//! allocated, the limit was not applied.
fn main() {
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(256);
    for i in 0..256usize {
        let block = vec![(i % 251) as u8 + 1; 1 << 20];
        blocks.push(std::hint::black_box(block));
    }
    let total: usize = blocks.iter().map(|b| b.len()).sum();
    println!("allocated {total} bytes: memory limit NOT enforced");
}
