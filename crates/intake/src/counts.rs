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

type Key = (DateTime<Utc>, String, Option<Ticker>, CountKind);

pub struct CountBook {
    service: String,
    instance: String,
    counts: BTreeMap<Key, u64>,
}

impl CountBook {
    pub fn new(service: &str, instance: &str) -> Self {
        CountBook { service: service.into(), instance: instance.into(), counts: BTreeMap::new() }
    }

    /// Counts a record delivered in the minute starting at `minute`: once for each ticker
    /// it is about, and once in its source's total.
    pub fn add(&mut self, minute: DateTime<Utc>, r: &Record) {
        let kind = kind_of(r);
        let source = r.origin().to_string();
        let tickers: Vec<Ticker> = match r {
            Record::Post(p) => p.tickers.clone(),
            _ => r.partition_ticker().cloned().into_iter().collect(),
        };
        for t in tickers {
            *self.counts.entry((minute, source.clone(), Some(t), kind)).or_default() += 1;
        }
        *self.counts.entry((minute, source, None, kind)).or_default() += 1;
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
            self.counts.entry((minute, s.clone(), None, *k)).or_insert(0);
        }
        let keys: Vec<Key> = self.counts.keys().filter(|(m, ..)| *m == minute).cloned().collect();
        for key in &keys {
            let count = self.counts.remove(key).expect("present");
            let (_, source, ticker, kind) = key.clone();
            writer.push(CountSample {
                id: cashtag_core::event::next_id(&self.instance, "c"),
                minute,
                service: self.service.clone(),
                instance: self.instance.clone(),
                source,
                ticker,
                kind,
                count,
            });
        }
        keys.len()
    }
}
