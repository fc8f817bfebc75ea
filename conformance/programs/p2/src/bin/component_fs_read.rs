//! A wasip2 component reading a fixture file from the preopened `/` (and
//! writing/removing a scratch file), exiting 0.
use std::fs;

fn main() {
    print!("{}", fs::read_to_string("/hello.txt").expect("read /hello.txt"));
    print!("{}", fs::read_to_string("sub/nested.txt").expect("read sub/nested.txt"));
    fs::write("/component.cleanup", "from a component\n").expect("write");
    print!("{}", fs::read_to_string("/component.cleanup").expect("read back"));
    fs::remove_file("/component.cleanup").expect("remove");
    println!("escape fails: {}", fs::File::open("/../../etc/passwd").is_err());
}
