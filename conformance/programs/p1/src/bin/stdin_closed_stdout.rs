//! Closing stdin (fd 0) leaves stdout working; a read from the closed fd
//! fails with EBADF.
use std::io::Read;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

fn main() {
    // SAFETY: fd_close takes an integer only; closing stdin is what this case tests.
    let errno = unsafe { p1::raw::fd_close(0) };
    println!("fd_close(0) errno={errno}");
    // Read fd 0 through a File so that std does not turn EBADF into EOF.
    // SAFETY: the File never closes descriptor 0 (ManuallyDrop): it only reads through it, which
    // after the close above must fail.
    let mut stdin = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let mut buf = [0u8; 16];
    match stdin.read(&mut buf) {
        Ok(n) => println!("read after close: Ok({n})?!"),
        Err(e) => println!("read after close: errno {}", e.raw_os_error().unwrap_or(-1)),
    }
    println!("stdout still works");
}
