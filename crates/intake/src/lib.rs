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

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cashtag_bus::{Bus, StreamWriter};
use cashtag_core::{CountKind, CountSample, EventKind, Record, Watchlist};
use cashtag_sinks::FanOut;
use cashtag_sources::{Recorder, SourceCtx, SourceError};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bars::{BarBuilder, minute_of};
use crate::counts::CountBook;

/// A source the intake can run.
pub trait RunSource: Send + 'static {
    /// The names records carry as their origin (one per provider run together).
    fn names(&self) -> Vec<String>;
    fn run(&mut self, ctx: &SourceCtx) -> impl Future<Output = Result<(), SourceError>> + Send;
}

impl RunSource for cashtag_sources::market::MarketSource {
    fn names(&self) -> Vec<String> {
        vec![cashtag_sources::market::MarketSource::name(self).to_string()]
    }
    async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        cashtag_sources::market::MarketSource::run(self, ctx).await
    }
}

impl RunSource for cashtag_sources::social::SocialSources {
    fn names(&self) -> Vec<String> {
        cashtag_sources::social::SocialSources::names(self)
    }
    async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        cashtag_sources::social::SocialSources::run(self, ctx).await
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
    pub restart_pause: Duration,
    pub auth_pause: Duration,
    /// Longest gap a source is asked to backfill.
    pub max_backfill: TimeDelta,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            bars_from_trades: true,
            primary_kind: CountKind::Trades,
            restart_pause: Duration::from_secs(5),
            auth_pause: Duration::from_secs(60),
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

pub struct Intake<S: RunSource> {
    bus: Bus,
    fanout: Arc<FanOut>,
    source: Option<S>,
    recorder: Option<Recorder>,
    watchlist: watch::Receiver<Watchlist>,
    counts_writer: StreamWriter<CountSample>,
    transform: Option<Transform>,
    config: IntakeConfig,
    status: Arc<IntakeStatus>,
}

impl<S: RunSource> Intake<S> {
    pub fn new(
        bus: Bus,
        fanout: Arc<FanOut>,
        source: S,
        watchlist: watch::Receiver<Watchlist>,
        counts_writer: StreamWriter<CountSample>,
        config: IntakeConfig,
    ) -> Self {
        Intake {
            bus,
            fanout,
            source: Some(source),
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
        let names = self.source.as_ref().expect("source").names();
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
            self.bus.emit(
                self.bus
                    .event(
                        EventKind::Activity,
                        "intake.start",
                        format!("{source_name}: market on, starting the source"),
                    )
                    .with("source", source_name.clone()),
            );
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
            let source = self.source.take().expect("source is home while off");
            let config = self.config.clone();
            let bus = self.bus.clone();
            let task = tokio::spawn(supervise(source, ctx, config, bus));
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
                    Ok(s) => self.source = Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "source task panicked");
                        return;
                    }
                }
            }
            let now = self.bus.clock().now();
            self.close_minutes(now, &mut counted_through, &mut book, &mut bars, &names, true).await;
            self.status.on.store(false, Ordering::SeqCst);
            self.bus.emit(
                self.bus
                    .event(
                        EventKind::Activity,
                        "intake.stop",
                        format!("{source_name}: stopped; {accepted} records this session"),
                    )
                    .with("source", source_name.clone())
                    .with("records", accepted),
            );
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
        if self.config.bars_from_trades {
            if let Record::Trade(t) = &record {
                bars.add(t);
            }
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

/// Runs the source, restarting it after failures, until cancelled; hands it back.
async fn supervise<S: RunSource>(mut source: S, mut ctx: SourceCtx, config: IntakeConfig, bus: Bus) -> S {
    loop {
        let result = source.run(&ctx).await;
        if ctx.cancel.is_cancelled() {
            return source;
        }
        let pause = match result {
            Ok(()) => config.restart_pause,
            Err(e @ SourceError::Auth { .. }) => {
                bus.emit(bus.event(
                    EventKind::Error,
                    "source.failed",
                    format!("{e}; retrying in {} s", config.auth_pause.as_secs()),
                ));
                config.auth_pause
            }
            Err(e) => {
                bus.emit(bus.event(
                    EventKind::Error,
                    "source.failed",
                    format!("{e}; restarting in {} s", config.restart_pause.as_secs()),
                ));
                config.restart_pause
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = ctx.cancel.cancelled() => return source,
        }
        ctx.resume_from = Some(bus.clock().now() - TimeDelta::from_std(pause).unwrap_or_default());
    }
}
