//! Prints simulated-clock readings for the two-process agreement test (tests/clock.rs).
//!
//! Usage: clock_probe SPEC WALL_MS...
//! For each WALL_MS prints the simulated time at that wall instant; then prints
//! `now BEFORE_WALL_MS SIM_MS AFTER_WALL_MS` for a live reading.

use cashtag_core::{Clock, SimSpec};
use chrono::{DateTime, Utc};

fn main() {
    let mut args = std::env::args().skip(1);
    let spec = SimSpec::parse(&args.next().expect("SPEC")).expect("valid spec");
    for wall in args {
        let wall: i64 = wall.parse().expect("WALL_MS");
        let sim = spec.sim_at(DateTime::<Utc>::from_timestamp_millis(wall).unwrap());
        println!("{}", sim.timestamp_millis());
    }
    let clock = Clock::Simulated(spec);
    let before = Utc::now();
    let now = clock.now();
    let after = Utc::now();
    println!("now {} {} {}", before.timestamp_millis(), now.timestamp_millis(), after.timestamp_millis());
}
