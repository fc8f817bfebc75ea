//! Symlinks in the fixture that point outside it (`escape` is relative,
//! `abs-escape` absolute) must not be followed out of the preopened `/`.
//! The links themselves are visible: lstat works on both, readlink on the
//! relative one (reading an absolute link's target may be refused).
use p1::expect_failure;
use std::fs;

fn main() {
    let mut all = true;
    all &= expect_failure("open escape/passwd", fs::File::open("escape/passwd"));
    all &= expect_failure("open /escape/passwd", fs::File::open("/escape/passwd"));
    all &= expect_failure("open abs-escape/passwd", fs::File::open("abs-escape/passwd"));
    all &= expect_failure("open /abs-escape/passwd", fs::File::open("/abs-escape/passwd"));
    all &= expect_failure("read_dir escape", fs::read_dir("escape"));
    all &= expect_failure("read_dir abs-escape", fs::read_dir("abs-escape"));
    all &= expect_failure("stat escape/passwd", fs::metadata("escape/passwd"));
    all &= expect_failure("stat abs-escape/passwd", fs::metadata("abs-escape/passwd"));
    all &= expect_failure(
        "create abs-escape/escaped.cleanup",
        fs::File::create("abs-escape/escaped.cleanup"),
    );
    all &= expect_failure(
        "create escape/escaped.cleanup",
        fs::File::create("escape/escaped.cleanup"),
    );
    println!("all escapes failed: {all}");
    for link in ["escape", "abs-escape"] {
        let meta = fs::symlink_metadata(link).expect("lstat");
        println!("{link} is a symlink: {}", meta.file_type().is_symlink());
    }
    println!("escape -> {}", fs::read_link("escape").expect("readlink escape").display());
}
