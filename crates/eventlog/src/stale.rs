//! Stale-feed detection: during market hours, a source with no records for N minutes
//! raises one warning, and one "recovered" event when data returns — not one per minute.
//! Pure: fed with count samples, the control state and the clock.
//!
//! "No records" means no records for recent minutes: a source that falls behind (its
//! samples arrive, but for minutes long past, because its store or its provider lags) is
//! stale too, and it recovers only when its newest minute is within N minutes of now
//! again — a late sample for an old minute does not end the episode.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

/// What the detector decided.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedChange {
    /// No records newer than `silent_since` for `minutes` minutes.
    Stale { source: String, silent_since: DateTime<Utc>, minutes: i64 },
    /// Records are current again; the episode lasted `silent_minutes` (from `silent_since`).
    Recovered { source: String, silent_minutes: i64 },
}

#[derive(Debug, Clone)]
struct Source {
    /// End of the newest minute with records (or when the source was first seen).
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

    /// A source's total for the minute starting at `minute`, seen at `now`.
    pub fn sample(
        &mut self,
        source: &str,
        minute: DateTime<Utc>,
        count: u64,
        now: DateTime<Utc>,
    ) -> Option<FeedChange> {
        let end = minute + TimeDelta::minutes(1);
        let s = self.sources.entry(source.to_string()).or_insert(Source { last_data: end, stale_since: None });
        if count == 0 {
            return None;
        }
        if end > s.last_data {
            s.last_data = end;
        }
        Self::recovery(self.after, source, s, now)
    }

    /// Ends a stale episode when the source's newest data is recent again.
    fn recovery(after: TimeDelta, name: &str, s: &mut Source, now: DateTime<Utc>) -> Option<FeedChange> {
        let since = s.stale_since?;
        if now - s.last_data >= after {
            return None;
        }
        s.stale_since = None;
        Some(FeedChange::Recovered { source: name.to_string(), silent_minutes: (now - since).num_minutes().max(0) })
    }

    /// Checks every source at `now`; returns the sources that just went stale or recovered.
    pub fn check(&mut self, now: DateTime<Utc>) -> Vec<FeedChange> {
        let Some(on_since) = self.on_since else { return Vec::new() };
        let mut out = Vec::new();
        for (name, s) in self.sources.iter_mut() {
            if s.stale_since.is_some() {
                out.extend(Self::recovery(self.after, name, s, now));
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
        d.sample("alpaca", t(0), 10, t(1));
        // Market off: silence is fine.
        assert!(d.check(t(30)).is_empty());
        d.set_market(Some(t(30)));
        for m in 30..34 {
            d.sample("alpaca", t(m), 0, t(m + 1));
            assert!(d.check(t(m + 1)).is_empty(), "minute {m}");
        }
        let changes = d.check(t(35));
        assert_eq!(changes, vec![FeedChange::Stale { source: "alpaca".into(), silent_since: t(30), minutes: 5 }]);
        // Still silent: no second warning.
        for m in 35..50 {
            d.sample("alpaca", t(m), 0, t(m + 1));
            assert!(d.check(t(m + 1)).is_empty());
        }
        assert_eq!(
            d.sample("alpaca", t(50), 3, t(51)),
            Some(FeedChange::Recovered { source: "alpaca".into(), silent_minutes: 21 })
        );
        assert_eq!(d.sample("alpaca", t(51), 3, t(52)), None);
        d.set_market(None);
        assert!(d.check(t(200)).is_empty());
    }

    #[test]
    fn a_lagging_source_is_one_episode_until_it_catches_up() {
        let mut d = StaleDetector::new(TimeDelta::minutes(5));
        d.set_market(Some(t(0)));
        // Current for ten minutes.
        for m in 0..10 {
            assert_eq!(d.sample("sim", t(m), 100, t(m + 1)), None);
            assert!(d.check(t(m + 1)).is_empty());
        }
        // Then it falls behind: at minute 20 + k it delivers minute 10 + k/2.
        let mut changes = Vec::new();
        for k in 0..40 {
            changes.extend(d.sample("sim", t(10 + k / 2), 100, t(20 + k)));
            changes.extend(d.check(t(20 + k)));
        }
        assert_eq!(
            changes,
            vec![FeedChange::Stale { source: "sim".into(), silent_since: t(11), minutes: 9 }],
            "one warning, no recovery while behind"
        );
        // Catches up: minute 58 arrives at minute 60.
        assert_eq!(
            d.sample("sim", t(58), 100, t(60)),
            Some(FeedChange::Recovered { source: "sim".into(), silent_minutes: 49 })
        );
        assert!(d.check(t(61)).is_empty());
    }
}
