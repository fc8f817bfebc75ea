//! fd_write to an fd that was never opened, and to stderr after closing it,
//! returns EBADF (8) rather than trapping or killing the program.
use p1::{raw, write_fd};

fn main() {
    println!("fd_write(99) errno={}", write_fd(99, b"nobody listens\n"));
    println!("fd_write(2) before close errno={}", write_fd(2, b"to stderr before close\n"));
    // SAFETY: fd_close takes an integer only; closing stderr is what this case tests.
    println!("fd_close(2) errno={}", unsafe { raw::fd_close(2) });
    println!("fd_write(2) after close errno={}", write_fd(2, b"lost\n"));
    // SAFETY: as above: an integer only.
    println!("fd_close(2) again errno={}", unsafe { raw::fd_close(2) });
    println!("still alive");
}
