//! Prints argc and each argument after argv[0], one per line, in brackets so
//! that empty strings and spaces are visible.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("argc={}", args.len());
    for (i, a) in args.iter().enumerate().skip(1) {
        println!("{i}=[{a}]");
    }
}
