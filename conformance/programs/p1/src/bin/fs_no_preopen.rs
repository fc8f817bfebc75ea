//! Without a `root` there is no preopened directory: every path fails.
use std::fs;

fn main() {
    let mut prestat = p1::raw::Prestat { tag: 0, name_len: 0 };
    // SAFETY: the out-pointer is to a local that outlives the call.
    let errno = unsafe { p1::raw::fd_prestat_get(3, &mut prestat) };
    println!("prestat fd 3 is EBADF: {}", errno == p1::raw::EBADF);
    p1::expect_failure("open /hello.txt", fs::File::open("/hello.txt"));
    p1::expect_failure("open hello.txt", fs::File::open("hello.txt"));
    p1::expect_failure("create /new.cleanup", fs::File::create("/new.cleanup"));
    p1::expect_failure("read_dir /", fs::read_dir("/"));
    p1::expect_failure("open /etc/passwd", fs::File::open("/etc/passwd"));
}
