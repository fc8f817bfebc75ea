//! `std::process::exit(42)`: the code reaches the host, and output written
//! before the exit is kept.
fn main() {
    println!("exiting with 42");
    eprintln!("stderr before exit");
    std::process::exit(42);
}
