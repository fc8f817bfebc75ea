//! mkdir, mkdir of an existing directory (fails), rmdir of a non-empty
//! directory (fails), then emptying and removing it.
use std::fs;

fn main() {
    let dir = "/newdir.cleanup";
    fs::create_dir(dir).expect("mkdir");
    println!("is dir: {}", fs::metadata(dir).expect("stat dir").is_dir());
    match fs::create_dir(dir) {
        Ok(()) => println!("second mkdir: succeeded?!"),
        Err(e) => println!("second mkdir: {:?}", e.kind()),
    }
    fs::create_dir_all("/newdir.cleanup/a/b").expect("mkdir -p");
    fs::write("/newdir.cleanup/a/b/file.cleanup", "x").expect("write file in dir");
    println!("rmdir non-empty fails: {}", fs::remove_dir(dir).is_err());
    fs::remove_file("/newdir.cleanup/a/b/file.cleanup").expect("rm file");
    fs::remove_dir("/newdir.cleanup/a/b").expect("rmdir b");
    fs::remove_dir("/newdir.cleanup/a").expect("rmdir a");
    fs::remove_dir(dir).expect("rmdir");
    println!("exists after rmdir: {}", fs::metadata(dir).is_ok());
}
