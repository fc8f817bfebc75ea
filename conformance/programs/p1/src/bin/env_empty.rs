//! Prints the number of environment variables, then each as KEY=[VALUE],
//! sorted by key. Only the variables listed in the case may be there.
fn main() {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("count={}", vars.len());
    for (k, v) in &vars {
        println!("{k}=[{v}]");
    }
}
