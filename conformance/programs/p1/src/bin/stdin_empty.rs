//! Copies stdin to stdout byte for byte, then reports the size on stderr.
use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("read stdin");
    let mut out = std::io::stdout().lock();
    out.write_all(&input).expect("write stdout");
    out.flush().expect("flush stdout");
    eprintln!("echoed {} bytes", input.len());
}
