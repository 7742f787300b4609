//! Simulated clocks: several processes given the same spec agree on "now", and a fast
//! clock crosses a market open in the expected wall time.

use std::process::Command;
use std::time::Instant;

use cashtag_core::{Clock, SimSpec};
use chrono::{DateTime, TimeDelta, Utc};

fn probe() -> std::path::PathBuf {
    cashtag_testkit::example_bin("clock_probe")
}

#[test]
fn two_processes_with_one_spec_agree_to_the_millisecond() {
    let spec = SimSpec { start: "2026-11-24T14:29:00Z".parse().unwrap(), speed: 60.0, anchor: Utc::now() };
    let walls: Vec<i64> = (0..50).map(|i| spec.anchor.timestamp_millis() + i * 997 + 13).collect();
    let out = Command::new(probe())
        .arg(spec.to_spec_string())
        .args(walls.iter().map(|w| w.to_string()))
        .output()
        .expect("run clock_probe (built by cargo test)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The same spec, parsed in this process from the same string.
    let here = Clock::Simulated(SimSpec::parse(&spec.to_spec_string()).unwrap());
    let Clock::Simulated(here_spec) = here.clone() else { unreachable!() };
    for (wall, line) in walls.iter().zip(&lines) {
        let theirs: i64 = line.parse().unwrap();
        let ours = here_spec.sim_at(DateTime::from_timestamp_millis(*wall).unwrap()).timestamp_millis();
        assert_eq!(theirs, ours, "at wall {wall}");
    }
    // A live reading in the child lies between what this process computes for the wall
    // instants just before and just after it.
    let live: Vec<i64> = lines.last().unwrap().split(' ').skip(1).map(|v| v.parse().unwrap()).collect();
    let lo = here_spec.sim_at(DateTime::from_timestamp_millis(live[0]).unwrap()).timestamp_millis();
    let hi = here_spec.sim_at(DateTime::from_timestamp_millis(live[2]).unwrap()).timestamp_millis();
    assert!(lo <= live[1] && live[1] <= hi, "{lo} <= {} <= {hi}", live[1]);
}

#[tokio::test]
async fn a_60x_clock_crosses_0930_new_york_in_two_wall_seconds() {
    // 09:28 New York on a November weekday is 14:28 UTC; 09:30 is two simulated minutes,
    // two wall seconds, away.
    let open: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let clock = Clock::Simulated(SimSpec { start: open - TimeDelta::minutes(2), speed: 60.0, anchor: Utc::now() });
    let t0 = Instant::now();
    clock.sleep_until(open).await;
    let wall = t0.elapsed().as_secs_f64();
    assert!((1.95..2.5).contains(&wall), "crossed 09:30 after {wall:.3} wall seconds");
    let ny = clock.now().with_timezone(&chrono_tz::America::New_York);
    assert_eq!(ny.format("%H:%M").to_string(), "09:30");
}
