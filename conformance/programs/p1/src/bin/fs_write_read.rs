//! Creates `out.cleanup`, writes it, reads it back, appends to it, then
//! removes it and checks that it is gone.
use std::fs;
use std::io::Write;

fn main() {
    let path = "/out.cleanup";
    fs::write(path, "first line\nsecond line ✓\n").expect("write");
    print!("{}", fs::read_to_string(path).expect("read back"));
    println!("len={}", fs::metadata(path).expect("stat").len());
    let mut f = fs::OpenOptions::new().append(true).open(path).expect("open for append");
    f.write_all(b"appended line\n").expect("append");
    drop(f);
    print!("{}", fs::read_to_string(path).expect("read after append"));
    fs::write(path, "truncated\n").expect("overwrite");
    print!("{}", fs::read_to_string(path).expect("read after overwrite"));
    fs::remove_file(path).expect("remove");
    println!("exists after remove: {}", fs::metadata(path).is_ok());
}
