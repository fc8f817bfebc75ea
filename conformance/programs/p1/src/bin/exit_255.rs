//! The largest exit code a process can report: 255.
fn main() {
    std::process::exit(255);
}
