//! Reads fixture files from the preopened `/` by absolute and relative paths
//! (wasi-libc's working directory starts at `/`).
use std::fs;

fn main() {
    print!("{}", fs::read_to_string("/hello.txt").expect("read /hello.txt"));
    print!("{}", fs::read_to_string("sub/nested.txt").expect("read sub/nested.txt"));
    print!("{}", fs::read_to_string("/sub/deeper/deep.txt").expect("read /sub/deeper/deep.txt"));
    print!("{}", fs::read_to_string("/ünïcödé.txt").expect("read /ünïcödé.txt"));
    let empty = fs::read("/empty.txt").expect("read /empty.txt");
    println!("empty.txt has {} bytes", empty.len());
    let meta = fs::metadata("/hello.txt").expect("stat /hello.txt");
    println!("hello.txt: file={} dir={} len={}", meta.is_file(), meta.is_dir(), meta.len());
    let meta = fs::metadata("/sub").expect("stat /sub");
    println!("sub: file={} dir={}", meta.is_file(), meta.is_dir());
    match fs::read("/does-not-exist.txt") {
        Ok(_) => println!("does-not-exist.txt: opened?!"),
        Err(e) => println!("does-not-exist.txt: {:?}", e.kind()),
    }
}
