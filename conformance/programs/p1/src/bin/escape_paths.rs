//! Paths that leave the preopened `/` must fail; a path inside must work.
use p1::expect_failure;
use std::fs;

fn main() {
    print!("{}", fs::read_to_string("/inside.txt").expect("read /inside.txt"));
    let mut all = true;
    all &= expect_failure("open ../something", fs::File::open("../something"));
    all &= expect_failure("open /../../etc/passwd", fs::File::open("/../../etc/passwd"));
    all &= expect_failure("open /etc/passwd", fs::File::open("/etc/passwd"));
    all &= expect_failure(
        "open ../../../../../../../../etc/passwd",
        fs::File::open("../../../../../../../../etc/passwd"),
    );
    all &= expect_failure("open sub/../../etc/passwd", fs::File::open("sub/../../etc/passwd"));
    all &= expect_failure("open /sub/../../etc/hostname", fs::File::open("/sub/../../etc/hostname"));
    all &= expect_failure("read_dir ..", fs::read_dir(".."));
    all &= expect_failure("read_dir /..", fs::read_dir("/.."));
    all &= expect_failure("create ../escaped.cleanup", fs::File::create("../escaped.cleanup"));
    all &= expect_failure("mkdir ../escaped-dir.cleanup", fs::create_dir("../escaped-dir.cleanup"));
    println!("all escapes failed: {all}");
}
