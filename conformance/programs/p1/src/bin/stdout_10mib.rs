//! Writes exactly 10 MiB (10485760 bytes) to stdout: 163840 lines of 64 bytes,
//! line i being `format!("{i:08} {FILL}\n")` with the 54-byte FILL below.
use std::io::Write;

const FILL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01";
const LINES: usize = 10 * 1024 * 1024 / 64;

fn main() {
    assert_eq!(FILL.len(), 54);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    for i in 0..LINES {
        write!(out, "{i:08} {FILL}\n").expect("write stdout");
    }
    out.flush().expect("flush stdout");
}
