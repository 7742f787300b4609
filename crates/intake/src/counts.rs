//! Per-minute counts of what a service delivered, per source and ticker, published to the
//! counts stream when the minute is over. Each source's total of its main kind is
//! published every minute while the market is on — also when it is zero, so silence can
//! be told from absence.

use std::collections::BTreeMap;

use cashtag_bus::StreamWriter;
use cashtag_core::{CountKind, CountSample, Record, Ticker};
use chrono::{DateTime, Utc};

pub fn kind_of(r: &Record) -> CountKind {
    match r {
        Record::Post(_) => CountKind::Posts,
        Record::Trade(_) => CountKind::Trades,
        Record::Quote(_) => CountKind::Quotes,
        Record::Bar(_) => CountKind::Bars,
    }
}

/// One source's counts of a minute, by ticker (`None`: the source's total) and kind.
type SourceCounts = BTreeMap<(Option<Ticker>, CountKind), u64>;

/// Counts by minute and source: every record passes through [`CountBook::add`], so the
/// source is looked up by its name, not copied.
pub struct CountBook {
    service: String,
    instance: String,
    counts: BTreeMap<DateTime<Utc>, BTreeMap<String, SourceCounts>>,
}

impl CountBook {
    pub fn new(service: &str, instance: &str) -> Self {
        CountBook { service: service.into(), instance: instance.into(), counts: BTreeMap::new() }
    }

    fn source(&mut self, minute: DateTime<Utc>, source: &str) -> &mut SourceCounts {
        let sources = self.counts.entry(minute).or_default();
        if !sources.contains_key(source) {
            sources.insert(source.to_string(), SourceCounts::new());
        }
        sources.get_mut(source).expect("inserted")
    }

    /// Counts a record delivered in the minute starting at `minute`: once for each ticker
    /// it is about, and once in its source's total.
    pub fn add(&mut self, minute: DateTime<Utc>, r: &Record) {
        let kind = kind_of(r);
        let counts = self.source(minute, r.origin());
        match r {
            Record::Post(p) => {
                for t in &p.tickers {
                    *counts.entry((Some(t.clone()), kind)).or_default() += 1;
                }
            }
            _ => {
                if let Some(t) = r.partition_ticker() {
                    *counts.entry((Some(t.clone()), kind)).or_default() += 1;
                }
            }
        }
        *counts.entry((None, kind)).or_default() += 1;
    }

    /// Publishes the samples of `minute`, with zero totals for `always` (source, kind)
    /// pairs that had nothing. Returns the number of samples.
    pub fn close_minute(
        &mut self,
        minute: DateTime<Utc>,
        always: &[(String, CountKind)],
        writer: &StreamWriter<CountSample>,
    ) -> usize {
        for (s, k) in always {
            self.source(minute, s).entry((None, *k)).or_insert(0);
        }
        let mut published = 0;
        for (source, counts) in self.counts.remove(&minute).unwrap_or_default() {
            for ((ticker, kind), count) in counts {
                writer.push(CountSample {
                    id: cashtag_core::event::next_id(&self.instance, "c"),
                    minute,
                    service: self.service.clone(),
                    instance: self.instance.clone(),
                    source: source.clone(),
                    ticker,
                    kind,
                    count,
                });
                published += 1;
            }
        }
        published
    }
}
