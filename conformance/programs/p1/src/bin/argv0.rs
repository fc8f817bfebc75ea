//! argv[0] exists and is not empty (it names the program), and argument
//! numbering starts after it.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("argc={}", args.len());
    println!("argv0 nonempty: {}", args.first().is_some_and(|a| !a.is_empty()));
    println!("argv1=[{}]", args.get(1).map(String::as_str).unwrap_or("<none>"));
}
