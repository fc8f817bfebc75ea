//! Returning from `main` exits with code 0.
fn main() {
    println!("exiting with 0");
}
