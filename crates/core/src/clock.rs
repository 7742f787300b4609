//! The Clock: the suite's only source of "now".
//!
//! Production runs on [`Clock::System`]. Tests and demos run on a simulated clock given by
//! a [`SimSpec`] — (start instant, speed factor, wall anchor) — which maps wall time to
//! simulated time by a pure function, so every process given the same spec agrees on
//! "now" to the millisecond, and a market open or close can be crossed in seconds.
//! [`Clock::manual`] gives unit tests a clock they move by hand.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Simulated time: at wall instant `anchor` the simulated time is `start`, and from then
/// on it runs `speed` times as fast as the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimSpec {
    pub start: DateTime<Utc>,
    pub speed: f64,
    pub anchor: DateTime<Utc>,
}

impl SimSpec {
    /// Simulated time at a given wall instant; whole milliseconds, so that every process
    /// computing it gets the same answer.
    pub fn sim_at(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        let elapsed_ms = (wall - self.anchor).num_milliseconds() as f64;
        self.start + TimeDelta::milliseconds((elapsed_ms * self.speed).floor() as i64)
    }

    /// The wall instant at which simulated time reaches `sim`.
    pub fn wall_at(&self, sim: DateTime<Utc>) -> DateTime<Utc> {
        let sim_ms = (sim - self.start).num_milliseconds() as f64;
        self.anchor + TimeDelta::milliseconds((sim_ms / self.speed).ceil() as i64)
    }

    /// `start@speed@anchor` in RFC 3339, e.g. `2026-11-27T14:25:00Z@60@2026-11-28T05:00:00.000Z`;
    /// the form passed between processes in `CASHTAG_CLOCK_SPEC`.
    pub fn to_spec_string(&self) -> String {
        format!(
            "{}@{}@{}",
            self.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.speed,
            self.anchor.to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }

    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let parts: Vec<&str> = spec.split('@').collect();
        let [start, speed, anchor] = parts[..] else {
            return Err(SpecError(format!("clock spec {spec:?} is not START@SPEED@ANCHOR")));
        };
        let ts = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| SpecError(format!("clock spec: {s:?} is not an RFC 3339 instant: {e}")))
        };
        let speed: f64 =
            speed.parse().map_err(|_| SpecError(format!("clock spec: speed {speed:?} is not a number")))?;
        if !(speed.is_finite() && speed > 0.0) {
            return Err(SpecError(format!("clock spec: speed must be positive, got {speed}")));
        }
        Ok(SimSpec { start: ts(start)?, speed, anchor: ts(anchor)? })
    }
}

/// A simulated clock spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(String);

/// A hand-moved clock for unit tests.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

/// Where "now" comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Simulated(SimSpec),
    Manual(Arc<ManualClock>),
}

/// The longest single wall-clock sleep: sleeps are cut into steps so that a host that
/// slept or a clock that jumped is noticed within this time.
pub const MAX_SLEEP_STEP: Duration = Duration::from_secs(2);

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Self {
        Clock::Manual(Arc::new(ManualClock { now: watch::Sender::new(start) }))
    }

    /// The current instant, in whole milliseconds (the precision of every stored timestamp).
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => {
                let t = Utc::now();
                DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
            }
            Clock::Simulated(spec) => spec.sim_at(Utc::now()),
            Clock::Manual(m) => *m.now.borrow(),
        }
    }

    /// How many simulated seconds pass per wall second.
    pub fn speed(&self) -> f64 {
        match self {
            Clock::Simulated(spec) => spec.speed,
            _ => 1.0,
        }
    }

    /// Moves a manual clock; panics on other clocks (a test bug).
    pub fn advance(&self, by: TimeDelta) {
        match self {
            Clock::Manual(m) => m.now.send_modify(|t| *t += by),
            _ => panic!("only a manual clock can be advanced"),
        }
    }

    /// Sets a manual clock; panics on other clocks (a test bug).
    pub fn set(&self, to: DateTime<Utc>) {
        match self {
            Clock::Manual(m) => m.now.send_replace(to),
            _ => panic!("only a manual clock can be set"),
        };
    }

    /// Converts a duration of clock time into wall time.
    pub fn to_wall(&self, d: TimeDelta) -> Duration {
        let secs = d.as_seconds_f64() / self.speed();
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// Sleeps until the clock reads `t` or later. Re-reads the clock at least every
    /// [`MAX_SLEEP_STEP`] of wall time, so it never sleeps through a jump.
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        if let Clock::Manual(m) = self {
            let mut rx = m.now.subscribe();
            while *rx.borrow_and_update() < t {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            return;
        }
        loop {
            let now = self.now();
            if now >= t {
                return;
            }
            let wall = self.to_wall(t - now).min(MAX_SLEEP_STEP);
            tokio::time::sleep(wall.max(Duration::from_millis(1))).await;
        }
    }

    /// Sleeps for a span of clock time.
    pub async fn sleep(&self, d: TimeDelta) {
        let until = self.now() + d;
        self.sleep_until(until).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn spec_maps_wall_to_sim_and_back() {
        let anchor = Utc.with_ymd_and_hms(2026, 11, 28, 5, 0, 0).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 14, 25, 0).unwrap();
        let spec = SimSpec { start, speed: 60.0, anchor };
        assert_eq!(spec.sim_at(anchor), start);
        assert_eq!(spec.sim_at(anchor + TimeDelta::seconds(5)), start + TimeDelta::minutes(5));
        let open = Utc.with_ymd_and_hms(2026, 11, 27, 14, 30, 0).unwrap();
        assert_eq!(spec.wall_at(open), anchor + TimeDelta::seconds(5));
        let parsed = SimSpec::parse(&spec.to_spec_string()).unwrap();
        assert_eq!(parsed, spec);
    }

    #[test]
    fn bad_specs_say_why() {
        assert!(SimSpec::parse("x").unwrap_err().to_string().contains("START@SPEED@ANCHOR"));
        assert!(
            SimSpec::parse("2026-01-01T00:00:00Z@0@2026-01-01T00:00:00Z").unwrap_err().to_string().contains("positive")
        );
        assert!(SimSpec::parse("2026-01-01@1@2026-01-01T00:00:00Z").unwrap_err().to_string().contains("RFC 3339"));
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 2, 14, 0, 0).unwrap();
        let clock = Clock::manual(t0);
        let c2 = clock.clone();
        let sleeper = tokio::spawn(async move { c2.sleep_until(t0 + TimeDelta::minutes(30)).await });
        tokio::task::yield_now().await;
        clock.advance(TimeDelta::minutes(10));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(TimeDelta::minutes(20));
        tokio::time::timeout(Duration::from_secs(1), sleeper).await.unwrap().unwrap();
    }
}
