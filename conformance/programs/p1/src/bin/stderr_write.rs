//! One line on stdout and two on stderr, compared exactly and separately.
use std::io::Write;

fn main() {
    println!("this line goes to stdout");
    eprintln!("this line goes to stderr");
    std::io::stderr().write_all("ünïcödé on stderr ✓\n".as_bytes()).unwrap();
}
