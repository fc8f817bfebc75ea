//! A long argument list: checks the count, that each argument i is `arg-<i>`
//! and the total size.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("count={}", args.len());
    let mut bad = 0;
    for (i, a) in args.iter().enumerate() {
        if *a != format!("arg-{i}") {
            bad += 1;
        }
    }
    let bytes: usize = args.iter().map(|a| a.len()).sum();
    println!("mismatched={bad}");
    println!("bytes={bytes}");
    println!("first={}", args.first().map(String::as_str).unwrap_or("-"));
    println!("last={}", args.last().map(String::as_str).unwrap_or("-"));
}
