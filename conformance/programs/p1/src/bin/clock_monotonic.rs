//! 1000 consecutive reads of the monotonic clock never go backwards.
use p1::{clock_now, raw::CLOCK_MONOTONIC};

fn main() {
    let mut prev = clock_now(CLOCK_MONOTONIC);
    let first = prev;
    let mut backwards = 0;
    for _ in 0..1000 {
        let now = clock_now(CLOCK_MONOTONIC);
        if now < prev {
            backwards += 1;
        }
        prev = now;
    }
    println!("reads=1000 backwards={backwards}");
    println!("last >= first: {}", prev >= first);
}
