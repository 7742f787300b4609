//! Stale-feed detection: during market hours, a source with no records for N minutes
//! raises one warning, and one "recovered" event when data returns — not one per minute.
//! Pure: fed with count samples, the control state and the clock.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

/// What the detector decided.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedChange {
    Stale { source: String, silent_since: DateTime<Utc>, minutes: i64 },
    Recovered { source: String, silent_minutes: i64 },
}

#[derive(Debug, Clone)]
struct Source {
    /// End of the last minute with records (or when the source was first seen).
    last_data: DateTime<Utc>,
    stale_since: Option<DateTime<Utc>>,
}

/// Tracks every source that has published a count sample.
#[derive(Debug, Clone)]
pub struct StaleDetector {
    after: TimeDelta,
    sources: BTreeMap<String, Source>,
    /// When the market (control state) turned on; None while off.
    on_since: Option<DateTime<Utc>>,
}

impl StaleDetector {
    pub fn new(after: TimeDelta) -> Self {
        StaleDetector { after, sources: BTreeMap::new(), on_since: None }
    }

    /// The market turned on at `at` (or off, with `None`). Turning off forgets staleness
    /// silently: nothing is reported outside market hours.
    pub fn set_market(&mut self, on_since: Option<DateTime<Utc>>) {
        if on_since.is_none() {
            for s in self.sources.values_mut() {
                s.stale_since = None;
            }
        }
        self.on_since = on_since;
    }

    /// A source's total for the minute starting at `minute`.
    pub fn sample(&mut self, source: &str, minute: DateTime<Utc>, count: u64) -> Option<FeedChange> {
        let end = minute + TimeDelta::minutes(1);
        let s = self.sources.entry(source.to_string()).or_insert(Source { last_data: end, stale_since: None });
        if count == 0 {
            return None;
        }
        if end > s.last_data {
            s.last_data = end;
        }
        let since = s.stale_since.take()?;
        Some(FeedChange::Recovered { source: source.to_string(), silent_minutes: (minute - since).num_minutes().max(0) })
    }

    /// Checks every source at `now`; returns the sources that just went stale.
    pub fn check(&mut self, now: DateTime<Utc>) -> Vec<FeedChange> {
        let Some(on_since) = self.on_since else { return Vec::new() };
        let mut out = Vec::new();
        for (name, s) in self.sources.iter_mut() {
            if s.stale_since.is_some() {
                continue;
            }
            let silent_since = s.last_data.max(on_since);
            if now - silent_since >= self.after {
                s.stale_since = Some(silent_since);
                out.push(FeedChange::Stale {
                    source: name.clone(),
                    silent_since,
                    minutes: (now - silent_since).num_minutes(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(m: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 - 1_795_000_000 % 60, 0).unwrap() + TimeDelta::minutes(m)
    }

    #[test]
    fn one_warning_one_recovery_none_outside_hours() {
        let mut d = StaleDetector::new(TimeDelta::minutes(5));
        d.sample("alpaca", t(0), 10);
        // Market off: silence is fine.
        assert!(d.check(t(30)).is_empty());
        d.set_market(Some(t(30)));
        for m in 30..34 {
            d.sample("alpaca", t(m), 0);
            assert!(d.check(t(m + 1)).is_empty(), "minute {m}");
        }
        let changes = d.check(t(35));
        assert_eq!(changes, vec![FeedChange::Stale { source: "alpaca".into(), silent_since: t(30), minutes: 5 }]);
        // Still silent: no second warning.
        for m in 35..50 {
            d.sample("alpaca", t(m), 0);
            assert!(d.check(t(m + 1)).is_empty());
        }
        assert_eq!(d.sample("alpaca", t(50), 3), Some(FeedChange::Recovered { source: "alpaca".into(), silent_minutes: 20 }));
        assert_eq!(d.sample("alpaca", t(51), 3), None);
        d.set_market(None);
        assert!(d.check(t(200)).is_empty());
    }
}
