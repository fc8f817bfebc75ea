//! A panicking wasip2 component: its trap gives exit code 251.
fn main() {
    println!("component about to panic");
    if std::hint::black_box(true) {
        panic!("deliberate panic in a component");
    }
}
