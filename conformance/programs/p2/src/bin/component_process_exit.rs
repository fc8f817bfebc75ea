//! A wasip2 component: prints its arguments, environment (sorted) and a
//! greeting, then calls std::process::exit(3).
//!
//! WASI 0.2's stable `wasi:cli/exit.exit` carries only ok/err, and wasi-libc's
//! `_Exit` (which std::process::exit ends in) maps any non-zero status to
//! `err`: the host sees exit code 1, not 3. The case checks that path.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("argc={}", args.len());
    for (i, a) in args.iter().enumerate().skip(1) {
        println!("arg {i}=[{a}]");
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("env count={}", vars.len());
    for (k, v) in &vars {
        println!("env {k}=[{v}]");
    }
    println!("hello from a component");
    std::process::exit(3);
}
