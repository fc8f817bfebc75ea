//! A wasip2 component that returns from main: exit code 0, and
//! std::process::exit(0) is not needed.
fn main() {
    println!("component returning from main");
}
