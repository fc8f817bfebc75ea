//! Lists `/` and `/sub` (sorted, `/` after directories).
use std::fs;

fn list(dir: &str) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let mut name = e.file_name().into_string().expect("UTF-8 name");
            if e.file_type().expect("file type").is_dir() {
                name.push('/');
            }
            name
        })
        .collect();
    names.sort();
    println!("{dir}: {}", names.join(" "));
}

fn main() {
    list("/");
    list("/sub");
}
