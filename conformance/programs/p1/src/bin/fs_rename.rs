//! Renames a file (a.cleanup -> b.cleanup) and a directory, checking contents
//! and that the old names are gone.
use std::fs;

fn main() {
    fs::write("/a.cleanup", "content of a\n").expect("create a.cleanup");
    fs::rename("/a.cleanup", "/b.cleanup").expect("rename a -> b");
    println!("a exists: {}", fs::metadata("/a.cleanup").is_ok());
    print!("b: {}", fs::read_to_string("/b.cleanup").expect("read b"));
    // Renaming onto an existing file replaces it.
    fs::write("/c.cleanup", "content of c\n").expect("create c.cleanup");
    fs::rename("/c.cleanup", "/b.cleanup").expect("rename c -> b (replace)");
    print!("b: {}", fs::read_to_string("/b.cleanup").expect("read b again"));
    fs::remove_file("/b.cleanup").expect("remove b");
    // A directory, moved into the fixture's sub/.
    fs::create_dir("/d.cleanup").expect("mkdir d");
    fs::write("/d.cleanup/f.cleanup", "in d\n").expect("write d/f");
    fs::rename("/d.cleanup", "/sub/e.cleanup").expect("rename dir d -> sub/e");
    print!("sub/e/f: {}", fs::read_to_string("/sub/e.cleanup/f.cleanup").expect("read sub/e/f"));
    println!("d exists: {}", fs::metadata("/d.cleanup").is_ok());
    fs::remove_file("/sub/e.cleanup/f.cleanup").expect("rm sub/e/f");
    fs::remove_dir("/sub/e.cleanup").expect("rmdir sub/e");
    println!("done");
}
