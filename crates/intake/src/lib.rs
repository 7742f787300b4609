//! cashtag-intake: runs a data source while the market is open and hands what it
//! delivers to the sinks.
//!
//! The manager's control state decides: when it turns on, the source starts (with the
//! time the market turned on, so it can backfill); when it turns off, the source is
//! cancelled and closes its connections — no paying for data that would be dropped. A
//! source that fails is restarted after a pause (a long one after an authentication
//! failure). Every record passes an optional transform (the twitter service scores posts
//! there), is counted per minute, source and ticker, contributes to one-minute bars built
//! from trades, and goes to the fan-out.

pub mod bars;
pub mod counts;
#[cfg(feature = "harness")]
pub mod harness;
pub mod posts;
pub mod service;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cashtag_bus::{Bus, StreamWriter};
use cashtag_core::{CountKind, CountSample, Record, Watchlist, catalog};
use cashtag_sinks::FanOut;
use cashtag_sources::supervisor::{RestartPolicy, supervise};
use cashtag_sources::{Recorder, Source, SourceCtx};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bars::{BarBuilder, minute_of};
use crate::counts::CountBook;

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
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            bars_from_trades: true,
            primary_kind: CountKind::Trades,
            restart: RestartPolicy::default(),
            max_backfill: TimeDelta::hours(8),
        }
    }
}

/// What the service shows in heartbeats and /healthz.
#[derive(Debug, Default)]
pub struct IntakeStatus {
    pub on: AtomicBool,
    pub records: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct Intake {
    bus: Bus,
    fanout: Arc<FanOut>,
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
        fanout: Arc<FanOut>,
        sources: impl Into<Sources>,
        watchlist: watch::Receiver<Watchlist>,
        counts_writer: StreamWriter<CountSample>,
        config: IntakeConfig,
    ) -> Self {
        let sources = sources.into();
        Intake {
            bus,
            fanout,
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
                bus: self.bus.clone(),
                recorder: self.recorder.clone(),
                watchlist: self.watchlist.clone(),
                cancel: stop.clone(),
                resume_from,
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
                    r = rx.recv() => match r {
                        Some(record) => {
                            let minute = minute_of(self.bus.clock().now());
                            accepted += self.handle(record, minute, &mut book, &mut bars).await;
                        }
                        None => break,
                    },
                    _ = self.bus.clock().sleep_until(next_minute) => {}
                    r = control.changed(), if !stop.is_cancelled() => {
                        if r.is_err() || !control.borrow_and_update().is_on() {
                            stop.cancel();
                        }
                    }
                    _ = shutdown.cancelled(), if !stop.is_cancelled() => stop.cancel(),
                }
                let now = self.bus.clock().now();
                self.close_minutes(now, &mut counted_through, &mut book, &mut bars, &names, false).await;
            }
            // The source has stopped (its sender is dropped): the last bars and counts.
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
            self.close_minutes(now, &mut counted_through, &mut book, &mut bars, &names, true).await;
            self.status.on.store(false, Ordering::SeqCst);
            self.bus.emit(catalog::intake_stop(&source_name, accepted));
            if shutdown.is_cancelled() {
                return;
            }
        }
    }

    async fn handle(
        &mut self,
        record: Record,
        minute: DateTime<Utc>,
        book: &mut CountBook,
        bars: &mut BarBuilder,
    ) -> u64 {
        let record = match self.transform.as_mut() {
            Some(t) => match t(record) {
                Some(r) => r,
                None => {
                    self.status.dropped.fetch_add(1, Ordering::Relaxed);
                    return 0;
                }
            },
            None => record,
        };
        if self.config.bars_from_trades
            && let Record::Trade(t) = &record
        {
            bars.add(t);
        }
        book.add(minute, &record);
        self.fanout.accept(record).await;
        self.status.records.fetch_add(1, Ordering::Relaxed);
        1
    }

    /// Emits the bars that are due and publishes the counts of every minute that is over
    /// (with `all`, also the current one).
    async fn close_minutes(
        &mut self,
        now: DateTime<Utc>,
        counted_through: &mut DateTime<Utc>,
        book: &mut CountBook,
        bars: &mut BarBuilder,
        sources: &[String],
        all: bool,
    ) {
        for bar in bars.take_due(now, all) {
            book.add(minute_of(now), &bar);
            self.fanout.accept(bar).await;
        }
        let current = minute_of(now);
        let last = if all { current } else { current - TimeDelta::minutes(1) };
        // After a clock jump, at most an hour of minutes is reported.
        if last - *counted_through > TimeDelta::hours(1) {
            *counted_through = last - TimeDelta::hours(1);
        }
        let always: Vec<(String, CountKind)> = sources.iter().map(|s| (s.clone(), self.config.primary_kind)).collect();
        while *counted_through < last {
            *counted_through += TimeDelta::minutes(1);
            book.close_minute(*counted_through, &always, &self.counts_writer);
        }
    }
}
