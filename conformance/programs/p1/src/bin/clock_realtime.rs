//! The realtime clock is after 2020-01-01T00:00:00Z, through both std's
//! SystemTime and the raw clock_time_get.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const Y2020: u64 = 1_577_836_800;

fn main() {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("now after epoch");
    println!("SystemTime after 2020-01-01: {}", since_epoch > Duration::from_secs(Y2020));
    let ns = p1::clock_now(p1::raw::CLOCK_REALTIME);
    println!("clock_time_get(realtime) after 2020-01-01: {}", ns > Y2020 * 1_000_000_000);
    // ...and not absurdly far in the future (before 2200-01-01).
    println!("before 2200-01-01: {}", ns < 7_258_118_400 * 1_000_000_000);
}
