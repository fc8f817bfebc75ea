//! Reads stdin as UTF-8 and counts bytes, chars and lines.
use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("read stdin as UTF-8");
    println!("bytes={}", input.len());
    println!("chars={}", input.chars().count());
    println!("lines={}", input.lines().count());
    for (i, line) in input.lines().enumerate() {
        println!("{}: {} chars", i + 1, line.chars().count());
    }
}
