//! What `cashtag-log tail` and `cashtag-log counts` print.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde::Serialize;

use crate::store::{StoredCount, StoredEvent};

/// One line of `tail`.
pub fn event_line(e: &StoredEvent) -> String {
    let ev = &e.event;
    format!(
        "{}  {:<8} {:<28} {:<22} {}",
        ev.at.format("%Y-%m-%d %H:%M:%S"),
        ev.kind.as_str(),
        format!("{}/{}", ev.service, ev.instance),
        ev.code,
        ev.message
    )
}

pub fn event_json(e: &StoredEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(&e.event).expect("serializes");
    v["id"] = e.id.clone().into();
    v
}

/// The grain of `counts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Minute,
    Hour,
}

impl std::str::FromStr for Grain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minute" => Ok(Grain::Minute),
            "hour" => Ok(Grain::Hour),
            _ => Err(format!("--by must be minute or hour, not {s:?}")),
        }
    }
}

/// One row of `counts`: records per bucket, source, ticker and kind, with the change from
/// the previous bucket of the same series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountRow {
    #[serde(with = "cashtag_core::time::ts")]
    pub bucket: DateTime<Utc>,
    pub source: String,
    /// `*` for the source's total.
    pub ticker: String,
    pub kind: String,
    pub count: u64,
    pub change: Option<i64>,
}

/// Sums samples (of all instances) into buckets.
pub fn count_rows(samples: &[StoredCount], grain: Grain) -> Vec<CountRow> {
    let mut sums: BTreeMap<(String, String, String, DateTime<Utc>), u64> = BTreeMap::new();
    for c in samples {
        let s = &c.sample;
        let bucket = match grain {
            Grain::Minute => s.minute,
            Grain::Hour => s.minute.with_minute(0).and_then(|t| t.with_second(0)).expect("valid"),
        };
        let ticker = s.ticker.as_ref().map_or("*".to_string(), |t| t.to_string());
        *sums.entry((s.source.clone(), ticker, s.kind.as_str().to_string(), bucket)).or_default() += s.count;
    }
    let step = match grain {
        Grain::Minute => TimeDelta::minutes(1),
        Grain::Hour => TimeDelta::hours(1),
    };
    let mut rows: Vec<CountRow> = Vec::with_capacity(sums.len());
    /// (source, ticker, kind): one series of counts.
    type Series = (String, String, String);
    let mut prev: Option<(Series, DateTime<Utc>, u64)> = None;
    for ((source, ticker, kind, bucket), count) in sums {
        let series = (source.clone(), ticker.clone(), kind.clone());
        let change = match &prev {
            Some((s, b, c)) if *s == series && *b + step == bucket => Some(count as i64 - *c as i64),
            _ => None,
        };
        prev = Some((series, bucket, count));
        rows.push(CountRow { bucket, source, ticker, kind, count, change });
    }
    rows.sort_by(|a, b| (a.bucket, &a.source, &a.ticker, &a.kind).cmp(&(b.bucket, &b.source, &b.ticker, &b.kind)));
    rows
}

pub fn count_header() -> String {
    format!("{:<17} {:<12} {:<7} {:<7} {:>8} {:>8}", "time (UTC)", "source", "ticker", "kind", "count", "change")
}

pub fn count_line(r: &CountRow) -> String {
    format!(
        "{:<17} {:<12} {:<7} {:<7} {:>8} {:>8}",
        r.bucket.format("%Y-%m-%d %H:%M").to_string(),
        r.source,
        r.ticker,
        r.kind,
        r.count,
        r.change.map_or("".to_string(), |c| format!("{c:+}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashtag_core::{CountKind, CountSample, Ticker};

    fn c(min: i64, ticker: Option<&str>, count: u64, instance: &str) -> StoredCount {
        StoredCount {
            sample: CountSample {
                id: String::new(),
                minute: DateTime::from_timestamp(1_795_003_200, 0).unwrap() + TimeDelta::minutes(min),
                service: "stocks".into(),
                instance: instance.into(),
                source: "alpaca".into(),
                ticker: ticker.map(|t| Ticker::parse(t).unwrap()),
                kind: CountKind::Trades,
                count,
            },
            delta: None,
        }
    }

    #[test]
    fn rows_sum_instances_and_compute_changes() {
        let rows = count_rows(
            &[
                c(0, Some("AAPL"), 5, "a"),
                c(0, Some("AAPL"), 1, "b"),
                c(1, Some("AAPL"), 4, "a"),
                c(3, Some("AAPL"), 9, "a"),
            ],
            Grain::Minute,
        );
        let got: Vec<(u64, Option<i64>)> = rows.iter().map(|r| (r.count, r.change)).collect();
        assert_eq!(got, vec![(6, None), (4, Some(-2)), (9, None)]);
        let hourly = count_rows(&[c(0, None, 5, "a"), c(59, None, 5, "a"), c(60, None, 1, "a")], Grain::Hour);
        assert_eq!(hourly.iter().map(|r| (r.count, r.change)).collect::<Vec<_>>(), vec![(10, None), (1, Some(-9))]);
        assert_eq!(hourly[0].ticker, "*");
    }
}
