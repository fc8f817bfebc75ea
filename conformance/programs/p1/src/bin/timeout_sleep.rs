//! Sleeps 60 s inside a host call (poll_oneoff); the case's timeout_ms must
//! stop it even though the guest is blocked in the host, not running wasm.
fn main() {
    println!("sleeping");
    std::thread::sleep(std::time::Duration::from_secs(60));
    println!("woke up: timeout NOT enforced");
}
