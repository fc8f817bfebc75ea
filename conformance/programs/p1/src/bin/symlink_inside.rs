//! Symlinks whose targets stay inside the preopened `/` are followed.
use std::fs;

fn main() {
    print!("ok-link: {}", fs::read_to_string("/ok-link").expect("read ok-link"));
    print!("sub/to-inside: {}", fs::read_to_string("/sub/to-inside").expect("read sub/to-inside"));
    println!("ok-link is a file: {}", fs::metadata("/ok-link").expect("stat ok-link").is_file());
    println!(
        "ok-link is a symlink: {}",
        fs::symlink_metadata("/ok-link").expect("lstat ok-link").file_type().is_symlink()
    );
}
