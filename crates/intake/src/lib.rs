//! cashtag-intake: runs a data source while the market is open and hands what it
//! delivers to the sinks, through the journal.
//!
//! The manager's control state decides: when it turns on, the sources start (with the
//! time the market turned on, and the newest record accepted from each before, so they
//! can backfill); when it turns off, the sources are cancelled and close their
//! connections — no paying for data that would be dropped. A source that fails or panics
//! is restarted by the supervisor. Records arrive in groups: each group passes an
//! optional transform (the twitter service scores posts there) and the [`checks`], and
//! is accepted into the journal in one write (group commit) — only then is it counted per
//! minute, source and ticker, and added to one-minute bars built from trades. While the
//! journal cannot take a group (full, or the disk fails) the intake waits and retries, and
//! the sources wait with it (back-pressure); nothing is dropped.

pub mod bars;
pub mod checks;
pub mod cli;
pub mod counts;
pub mod dead_letters;
#[cfg(feature = "harness")]
pub mod harness;
pub mod posts;
pub mod service;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cashtag_bus::{Bus, StreamWriter};
use cashtag_core::{Backoff, CountKind, CountSample, Record, Watchlist, catalog};
use cashtag_sinks::Delivery;
use cashtag_sources::supervisor::{RestartPolicy, supervise};
use cashtag_sources::{Marks, Recorder, Source, SourceCtx};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bars::{BarBuilder, minute_of};
use crate::checks::Limits;
use crate::counts::CountBook;

/// Most records accepted in one group commit.
const GROUP: usize = 2_000;

/// The sources an intake runs together: one, or several.
pub struct Sources(pub Vec<Box<dyn Source>>);

impl Sources {
    /// The names records carry as their origin, one per source.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.name().to_string()).collect()
    }
}

impl From<Box<dyn Source>> for Sources {
    fn from(s: Box<dyn Source>) -> Self {
        Sources(vec![s])
    }
}

impl From<Vec<Box<dyn Source>>> for Sources {
    fn from(v: Vec<Box<dyn Source>>) -> Self {
        Sources(v)
    }
}

/// What happens to each record before the sinks; `None` drops it.
pub type Transform = Box<dyn FnMut(Record) -> Option<Record> + Send>;

#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Build one-minute bars from trades.
    pub bars_from_trades: bool,
    /// The kind whose total is published every minute, also when zero, per source.
    pub primary_kind: CountKind,
    /// Pauses before a failed source restarts.
    pub restart: RestartPolicy,
    /// Longest gap a source is asked to backfill.
    pub max_backfill: TimeDelta,
    /// What is refused as from the future or too old.
    pub limits: Limits,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            bars_from_trades: true,
            primary_kind: CountKind::Trades,
            restart: RestartPolicy::default(),
            max_backfill: TimeDelta::hours(8),
            limits: Limits::default(),
        }
    }
}

/// What the service shows in heartbeats and /healthz.
#[derive(Debug, Default)]
pub struct IntakeStatus {
    pub on: AtomicBool,
    pub records: AtomicU64,
    /// Dropped by the transform (duplicates, reposts, other languages).
    pub dropped: AtomicU64,
    /// Refused by the checks.
    pub refused: AtomicU64,
    /// The journal cannot take records now (full, or the disk fails).
    pub blocked: AtomicBool,
}

pub struct Intake {
    bus: Bus,
    delivery: Arc<Delivery>,
    marks: Marks,
    /// Records accepted by the previous run in the minute it stopped, by identity (kind
    /// and natural key: a trade and a quote of one instant share a key): a source resuming
    /// at that minute sends them again; they are counted and go into bars, not into the
    /// journal twice.
    recent: std::collections::HashSet<String>,
    /// When `recent` is no longer needed (two minutes past the newest mark).
    recent_until: DateTime<Utc>,
    refused: BTreeMap<&'static str, (u64, String)>,
    sources: Option<Vec<Box<dyn Source>>>,
    names: Vec<String>,
    recorder: Option<Recorder>,
    watchlist: watch::Receiver<Watchlist>,
    counts_writer: StreamWriter<CountSample>,
    transform: Option<Transform>,
    config: IntakeConfig,
    status: Arc<IntakeStatus>,
}

impl Intake {
    pub fn new(
        bus: Bus,
        delivery: Arc<Delivery>,
        sources: impl Into<Sources>,
        watchlist: watch::Receiver<Watchlist>,
        counts_writer: StreamWriter<CountSample>,
        config: IntakeConfig,
    ) -> Self {
        let sources = sources.into();
        let marks = Marks::default();
        let (found, recent) = marks_from_journal(delivery.journal());
        let recent_until = found.values().max().map_or(DateTime::<Utc>::MIN_UTC, |m| *m + TimeDelta::minutes(2));
        for (provider, at) in found {
            marks.raise(&provider, at);
        }
        Intake {
            bus,
            delivery,
            marks,
            recent,
            recent_until,
            refused: BTreeMap::new(),
            names: sources.names(),
            sources: Some(sources.0),
            recorder: None,
            watchlist,
            counts_writer,
            transform: None,
            config,
            status: Arc::default(),
        }
    }

    pub fn with_recorder(mut self, r: Option<Recorder>) -> Self {
        self.recorder = r;
        self
    }

    pub fn with_transform(mut self, t: Transform) -> Self {
        self.transform = Some(t);
        self
    }

    pub fn status(&self) -> Arc<IntakeStatus> {
        self.status.clone()
    }

    /// Runs until `shutdown`; the source runs only while the control state is on.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut control = self.bus.watch_control();
        let names = self.names.clone();
        let source_name = names.join("+");
        let instance = self.bus.identity().instance.clone();
        let mut book = CountBook::new(&self.bus.identity().service, &instance);
        let mut bars = BarBuilder::default();
        let mut group: Vec<Record> = Vec::with_capacity(GROUP);
        loop {
            // Off: wait for on.
            let on_at = loop {
                let state = control.borrow_and_update().clone();
                if state.is_on() {
                    break state.at;
                }
                tokio::select! {
                    r = control.changed() => if r.is_err() { return },
                    _ = shutdown.cancelled() => return,
                }
            };
            self.status.on.store(true, Ordering::SeqCst);
            let now = self.bus.clock().now();
            let resume_from = (now - on_at <= self.config.max_backfill).then_some(on_at);
            self.bus.emit(catalog::intake_start(&source_name));
            let stop = shutdown.child_token();
            let (tx, mut rx) = mpsc::channel::<Record>(10_000);
            let ctx = SourceCtx {
                out: tx,
                events: self.bus.emitter(),
                recorder: self.recorder.clone(),
                watchlist: self.watchlist.clone(),
                cancel: stop.clone(),
                resume_from,
                accepted: self.marks.clone(),
            };
            let sources = self.sources.take().expect("the sources are home while off");
            let task = tokio::spawn(supervise(sources, ctx, self.config.restart.clone()));
            let mut accepted = 0u64;
            let mut task = Some(task);
            let mut counted_through = minute_of(self.bus.clock().now()) - TimeDelta::minutes(1);
            // On: move records until the control state turns off (or shutdown).
            loop {
                let next_minute = minute_of(self.bus.clock().now()) + TimeDelta::minutes(1);
                tokio::select! {
                    n = rx.recv_many(&mut group, GROUP) => {
                        if n == 0 {
                            break;
                        }
                        accepted += self.accept(&mut group, &mut book, &mut bars, &shutdown).await;
                    }
                    _ = self.bus.clock().sleep_until(next_minute) => {}
                    r = control.changed(), if !stop.is_cancelled() => {
                        if r.is_err() || !control.borrow_and_update().is_on() {
                            stop.cancel();
                        }
                    }
                    _ = shutdown.cancelled(), if !stop.is_cancelled() => stop.cancel(),
                }
                let now = self.bus.clock().now();
                self.close_minutes(now, &mut counted_through, &mut book, &mut bars, &names, false, &shutdown).await;
            }
            // The sources have stopped (their sender is dropped): the last bars and counts.
            if let Some(t) = task.take() {
                match t.await {
                    Ok(s) => self.sources = Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "source task panicked");
                        return;
                    }
                }
            }
            let now = self.bus.clock().now();
            self.close_minutes(now, &mut counted_through, &mut book, &mut bars, &names, true, &shutdown).await;
            self.status.on.store(false, Ordering::SeqCst);
            self.bus.emit(catalog::intake_stop(&source_name, accepted));
            if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Transforms, checks and accepts a group of records (emptying `group`); returns how
    /// many were accepted.
    async fn accept(
        &mut self,
        group: &mut Vec<Record>,
        book: &mut CountBook,
        bars: &mut BarBuilder,
        shutdown: &CancellationToken,
    ) -> u64 {
        let now = self.bus.clock().now();
        let mut records = Vec::with_capacity(group.len());
        let mut again = Vec::new();
        for record in group.drain(..) {
            let record = match self.transform.as_mut() {
                Some(t) => match t(record) {
                    Some(r) => r,
                    None => {
                        self.status.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
                None => record,
            };
            let mut record = record;
            match checks::check(&mut record, now, &self.config.limits) {
                Ok(()) if !self.recent.is_empty() && self.recent.contains(&identity(&record)) => again.push(record),
                Ok(()) => records.push(record),
                Err(reason) => {
                    self.status.refused.fetch_add(1, Ordering::Relaxed);
                    let e = self.refused.entry(reason).or_insert_with(|| (0, record.key()));
                    e.0 += 1;
                }
            }
        }
        if !journal(&self.delivery, &self.status, &records, shutdown).await {
            return 0;
        }
        let minute = minute_of(now);
        for r in records.iter().chain(&again) {
            if self.config.bars_from_trades
                && let Record::Trade(t) = r
            {
                bars.add(t);
            }
            book.add(minute, r);
            self.marks.raise(r.origin(), r.event_time());
        }
        self.delivery.journal().set_header(marks_header(&self.marks));
        self.status.records.fetch_add(records.len() as u64, Ordering::Relaxed);
        records.len() as u64
    }

    /// Emits the bars that are due, publishes the counts of every minute that is over
    /// (with `all`, also the current one), and reports refused records. Keys the previous
    /// run accepted are forgotten once their minute is over.
    #[allow(clippy::too_many_arguments)]
    async fn close_minutes(
        &mut self,
        now: DateTime<Utc>,
        counted_through: &mut DateTime<Utc>,
        book: &mut CountBook,
        bars: &mut BarBuilder,
        sources: &[String],
        all: bool,
        shutdown: &CancellationToken,
    ) {
        let due = bars.take_due(now, all);
        if !due.is_empty() && journal(&self.delivery, &self.status, &due, shutdown).await {
            for bar in &due {
                book.add(minute_of(now), bar);
            }
        }
        let current = minute_of(now);
        let last = if all { current } else { current - TimeDelta::minutes(1) };
        // After a clock jump, at most an hour of minutes is reported.
        if last - *counted_through > TimeDelta::hours(1) {
            *counted_through = last - TimeDelta::hours(1);
        }
        let always: Vec<(String, CountKind)> = sources.iter().map(|s| (s.clone(), self.config.primary_kind)).collect();
        if !self.recent.is_empty() && now > self.recent_until {
            self.recent = Default::default();
        }
        while *counted_through < last {
            *counted_through += TimeDelta::minutes(1);
            book.close_minute(*counted_through, &always, &self.counts_writer);
            for (reason, (count, sample)) in std::mem::take(&mut self.refused) {
                self.bus.emit(catalog::intake_refused(reason, count, &sample));
            }
        }
    }
}

/// Writes records to the journal, waiting and retrying while it cannot take them;
/// false if shutdown came first (they were never accepted).
async fn journal(delivery: &Delivery, status: &IntakeStatus, records: &[Record], shutdown: &CancellationToken) -> bool {
    let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
    let mut shutdown_tries = 0;
    loop {
        match delivery.accept(records).await {
            Ok(()) => {
                status.blocked.store(false, Ordering::SeqCst);
                return true;
            }
            Err(e) => {
                status.blocked.store(true, Ordering::SeqCst);
                tracing::debug!(error = %e, "the journal cannot take records; retrying");
                if shutdown.is_cancelled() {
                    shutdown_tries += 1;
                    if shutdown_tries > 10 {
                        tracing::error!(error = %e, records = records.len(), "shutdown: records not accepted");
                        return false;
                    }
                }
                tokio::time::sleep(backoff.next_delay().min(Duration::from_millis(500))).await;
            }
        }
    }
}

/// The journal header: every provider's mark, so a restart finds them in the last segment.
fn marks_header(marks: &Marks) -> Vec<u8> {
    let m: BTreeMap<String, String> =
        marks.snapshot().into_iter().map(|(k, v)| (k, cashtag_core::time::rfc3339(&v))).collect();
    serde_json::to_vec(&serde_json::json!({ "marks": m })).expect("serializes")
}

/// Every provider's newest accepted event time, from the journal's last segment (its
/// header, then every record after it), and the keys of the records accepted in each
/// provider's last minute.
pub fn marks_from_journal(
    journal: &cashtag_journal::Journal,
) -> (BTreeMap<String, DateTime<Utc>>, std::collections::HashSet<String>) {
    let mut marks: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let entries = match journal.last_segment_entries() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the journal's last segment; sources start afresh");
            return Default::default();
        }
    };
    let mut records = Vec::new();
    for (targets, data) in entries {
        if targets == 0 {
            #[derive(serde::Deserialize)]
            struct Header {
                marks: BTreeMap<String, DateTime<Utc>>,
            }
            if let Ok(h) = serde_json::from_slice::<Header>(&data) {
                for (k, t) in h.marks {
                    let e = marks.entry(k).or_insert(t);
                    *e = (*e).max(t);
                }
            }
        } else if let Ok(r) = Record::from_json(&data) {
            let e = marks.entry(r.origin().to_string()).or_insert(r.event_time());
            *e = (*e).max(r.event_time());
            records.push(r);
        }
    }
    let recent = records
        .iter()
        .filter(|r| marks.get(r.origin()).is_some_and(|m| r.event_time() >= minute_of(*m)))
        .map(identity)
        .collect();
    (marks, recent)
}

/// What tells two records apart: the natural key alone does not (a simulated trade and
/// its quote share provider, ticker, instant and sequence number), so the kind is part of it.
fn identity(r: &Record) -> String {
    format!("{}:{}", r.kind(), r.key())
}

#[cfg(test)]
mod tests {
    use cashtag_core::{Quote, Record, Ticker, Trade};

    use super::identity;

    /// The soak lost a quote this way: killed between a trade's acceptance and its quote's,
    /// the restarted intake took the resent quote for the trade it had accepted.
    #[test]
    fn a_trade_and_its_quote_share_a_key_but_not_an_identity() {
        let at = "2026-11-24T15:00:00Z".parse().unwrap();
        let ticker = Ticker::parse("AAPL").unwrap();
        let trade = Record::Trade(Trade {
            provider: "sim".into(),
            ticker: ticker.clone(),
            ts: at,
            received_at: at,
            price: 10.0,
            size: 1.0,
            exchange: None,
            trade_id: None,
            conditions: vec![],
            seq: 7,
        });
        let quote = Record::Quote(Quote {
            provider: "sim".into(),
            ticker,
            ts: at,
            received_at: at,
            bid_price: Some(9.9),
            bid_size: Some(1.0),
            ask_price: Some(10.1),
            ask_size: Some(1.0),
            last_price: Some(10.0),
            volume: None,
            seq: 7,
        });
        assert_eq!(trade.key(), quote.key());
        assert_ne!(identity(&trade), identity(&quote));
    }
}
