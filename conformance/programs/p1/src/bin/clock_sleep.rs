//! Sleeping 10 ms (poll_oneoff with a relative clock subscription) advances
//! the monotonic clock by at least 10 ms.
use p1::{clock_now, raw::CLOCK_MONOTONIC};
use std::time::{Duration, Instant};

fn main() {
    let before = clock_now(CLOCK_MONOTONIC);
    let instant = Instant::now();
    std::thread::sleep(Duration::from_millis(10));
    let after = clock_now(CLOCK_MONOTONIC);
    println!("monotonic advanced >= 10ms: {}", after - before >= 10_000_000);
    println!("Instant elapsed >= 10ms: {}", instant.elapsed() >= Duration::from_millis(10));
    // A zero-length sleep returns.
    std::thread::sleep(Duration::ZERO);
    println!("zero sleep returned");
}
