//! `std::process::exit(1)` (proc_exit) gives exit code 1.
fn main() {
    println!("exiting with 1");
    std::process::exit(1);
}
