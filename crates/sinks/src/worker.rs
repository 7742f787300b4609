//! One sink's worker: batches records by size and age, writes with retries, spools
//! batches while the sink is unreachable, and replays the spool in order when it is back.
//!
//! States: **up** — batches are written directly, retried with exponential backoff and
//! jitter for the retry budget; **down** — batches go straight to the spool, and every
//! `probe_every` the oldest spooled batch is tried; when the spool is drained the sink is up
//! again. While the spool holds anything, new batches go behind it, so order is kept.
//! A full spool stops the worker from taking records, which slows intake (back-pressure).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cashtag_bus::Bus;
use cashtag_core::{Backoff, Record, catalog};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::SinkMetrics;
use crate::sink::{Sink, WriteReport};
use crate::spool::{Spool, SpoolError};

/// How a worker batches and retries.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub batch_size: usize,
    pub batch_age: Duration,
    pub retry_budget: Duration,
    /// While down, how often the oldest spooled batch is tried.
    pub probe_every: Duration,
    /// Records buffered in memory before intake waits.
    pub queue_capacity: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch_size: 500,
            batch_age: Duration::from_secs(1),
            retry_budget: Duration::from_secs(10),
            probe_every: Duration::from_secs(1),
            queue_capacity: 20_000,
        }
    }
}

pub(crate) enum Cmd {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
}

/// What the fan-out and tests can see of a worker.
#[derive(Debug, Default)]
pub struct WorkerState {
    /// Records handed to the worker and not yet written, spooled or rejected.
    pub pending: AtomicU64,
    pub up: AtomicBool,
    pub spool_bytes: AtomicU64,
    pub written: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub rejected: AtomicU64,
}

/// The handle to a running worker.
pub struct SinkHandle {
    pub(crate) name: &'static str,
    pub(crate) tx: mpsc::Sender<Cmd>,
    pub(crate) state: Arc<WorkerState>,
    pub(crate) join: tokio::task::JoinHandle<()>,
}

impl SinkHandle {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn state(&self) -> &WorkerState {
        &self.state
    }

    /// Whether everything handed over is written (nothing in memory, nothing spooled).
    pub fn is_idle(&self) -> bool {
        self.state.pending.load(Ordering::SeqCst) == 0 && self.state.spool_bytes.load(Ordering::SeqCst) == 0
    }
}

/// Starts a worker for a sink with its spool.
pub fn spawn_worker<S: Sink>(
    sink: S,
    spool: Spool,
    config: WorkerConfig,
    bus: Bus,
    metrics: SinkMetrics,
) -> SinkHandle {
    let name = sink.name();
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let state = Arc::new(WorkerState::default());
    state.spool_bytes.store(spool.bytes(), Ordering::SeqCst);
    state.up.store(spool.is_empty(), Ordering::SeqCst);
    let worker = Worker {
        sink,
        spool,
        config,
        bus,
        metrics,
        state: state.clone(),
        rx,
        down_since: None,
        down_reason: String::new(),
        next_probe: Instant::now(),
        replayed_since_down: 0,
        spool_oldest: None,
        full_reported: false,
        io_reported: false,
    };
    let join = tokio::spawn(worker.run());
    SinkHandle { name, tx, state, join }
}

struct Worker<S: Sink> {
    sink: S,
    spool: Spool,
    config: WorkerConfig,
    bus: Bus,
    metrics: SinkMetrics,
    state: Arc<WorkerState>,
    rx: mpsc::Receiver<Cmd>,
    down_since: Option<Instant>,
    down_reason: String,
    next_probe: Instant,
    replayed_since_down: u64,
    spool_oldest: Option<Instant>,
    full_reported: bool,
    io_reported: bool,
}

/// Spooled batches replayed per turn of the loop, so intake keeps flowing during a long replay.
const REPLAY_PER_TURN: usize = 8;

impl<S: Sink> Worker<S> {
    fn label(&self) -> [&'static str; 1] {
        [self.sink.name()]
    }

    async fn run(mut self) {
        let name = self.sink.name();
        if !self.spool.is_empty() {
            self.spool_oldest = Some(Instant::now());
            self.down_since = Some(Instant::now());
            self.down_reason = "backlog from a previous run".into();
            self.bus.emit(catalog::sink_backlog(name, self.spool.bytes()));
        }
        self.metrics.up.with_label_values(&self.label()).set(if self.down_since.is_none() { 1.0 } else { 0.0 });
        let mut batch: Vec<Record> = Vec::with_capacity(self.config.batch_size);
        let mut batch_since: Option<Instant> = None;
        loop {
            if !self.spool.is_empty() && Instant::now() >= self.next_probe {
                self.replay(REPLAY_PER_TURN).await;
            }
            let now = Instant::now();
            let wait = match batch_since {
                Some(t) => self.config.batch_age.saturating_sub(now - t),
                None if !self.spool.is_empty() => {
                    self.next_probe.saturating_duration_since(now).max(Duration::from_millis(5))
                }
                None => Duration::from_secs(1),
            };
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(Cmd::Record(r)) => {
                        batch.push(*r);
                        batch_since.get_or_insert_with(Instant::now);
                        if batch.len() >= self.config.batch_size {
                            self.flush(std::mem::take(&mut batch)).await;
                            batch_since = None;
                        }
                    }
                    Some(Cmd::Flush(ack)) => {
                        if !batch.is_empty() {
                            self.flush(std::mem::take(&mut batch)).await;
                            batch_since = None;
                        }
                        let _ = ack.send(());
                    }
                    None => {
                        if !batch.is_empty() {
                            self.flush_final(std::mem::take(&mut batch)).await;
                        }
                        break;
                    }
                },
                _ = tokio::time::sleep(wait) => {
                    if batch_since.is_some_and(|t| t.elapsed() >= self.config.batch_age) && !batch.is_empty() {
                        self.flush(std::mem::take(&mut batch)).await;
                        batch_since = None;
                    }
                }
            }
            self.update_gauges(batch_since);
        }
        self.update_gauges(None);
    }

    fn update_gauges(&self, batch_since: Option<Instant>) {
        let l = self.label();
        self.state.spool_bytes.store(self.spool.bytes(), Ordering::SeqCst);
        self.metrics.spool_bytes.with_label_values(&l).set(self.spool.bytes() as f64);
        let oldest = [batch_since, self.spool_oldest.filter(|_| !self.spool.is_empty())].into_iter().flatten().min();
        self.metrics
            .oldest_unflushed_seconds
            .with_label_values(&l)
            .set(oldest.map_or(0.0, |t| t.elapsed().as_secs_f64()));
    }

    fn account(&mut self, report: &WriteReport, replay: bool) {
        let l = self.label();
        let n = (report.written + report.duplicates) as u64;
        self.metrics.records_out.with_label_values(&l).inc_by(n);
        self.metrics.duplicates.with_label_values(&l).inc_by(report.duplicates as u64);
        self.metrics.retries.with_label_values(&l).inc_by(report.retries as u64);
        self.state.written.fetch_add(n, Ordering::SeqCst);
        if !report.rejected.is_empty() {
            let k = report.rejected.len() as u64;
            self.metrics.rejected.with_label_values(&l).inc_by(k);
            self.state.rejected.fetch_add(k, Ordering::SeqCst);
            let sample: Vec<String> =
                report.rejected.iter().take(5).map(|r| format!("{}: {}", r.key, r.reason)).collect();
            self.bus.emit(catalog::sink_rejected(self.sink.name(), k, sample));
        }
        if !replay {
            self.state.pending.fetch_sub(n + report.rejected.len() as u64, Ordering::SeqCst);
        }
    }

    async fn flush(&mut self, batch: Vec<Record>) {
        self.metrics.batch_size.with_label_values(&self.label()).observe(batch.len() as f64);
        self.metrics.records_in.with_label_values(&self.label()).inc_by(batch.len() as u64);
        if self.down_since.is_some() || !self.spool.is_empty() {
            self.spool_batch(batch).await;
            return;
        }
        if let Err((remaining, reason)) = self.write_with_retry(batch, self.config.retry_budget).await {
            self.mark_down(&reason);
            self.spool_batch(remaining).await;
        }
    }

    async fn flush_final(&mut self, batch: Vec<Record>) {
        self.metrics.records_in.with_label_values(&self.label()).inc_by(batch.len() as u64);
        if self.down_since.is_none() && self.spool.is_empty() {
            match self.write_with_retry(batch, Duration::from_secs(2)).await {
                Ok(()) => {}
                Err((remaining, _)) => self.spool_batch(remaining).await,
            }
        } else {
            self.spool_batch(batch).await;
        }
    }

    async fn write_with_retry(
        &mut self,
        mut batch: Vec<Record>,
        budget: Duration,
    ) -> Result<(), (Vec<Record>, String)> {
        let deadline = Instant::now() + budget;
        let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).with_jitter(0.5);
        loop {
            match self.sink.write(batch).await {
                Ok(report) => {
                    self.account(&report, false);
                    return Ok(());
                }
                Err(failure) => {
                    self.account(&failure.done, false);
                    if failure.remaining.is_empty() {
                        return Ok(());
                    }
                    self.metrics.retries.with_label_values(&self.label()).inc();
                    let pause = backoff.next_delay();
                    if Instant::now() + pause >= deadline {
                        return Err((failure.remaining, failure.reason));
                    }
                    tracing::debug!(sink = self.sink.name(), reason = %failure.reason, "write failed; retrying");
                    tokio::time::sleep(pause).await;
                    batch = failure.remaining;
                }
            }
        }
    }

    async fn spool_batch(&mut self, records: Vec<Record>) {
        let n = records.len() as u64;
        loop {
            match self.spool.append(&records) {
                Ok(()) => {
                    self.spool_oldest.get_or_insert_with(Instant::now);
                    self.metrics.spooled.with_label_values(&self.label()).inc_by(n);
                    self.state.spooled.fetch_add(n, Ordering::SeqCst);
                    self.state.pending.fetch_sub(n, Ordering::SeqCst);
                    self.state.spool_bytes.store(self.spool.bytes(), Ordering::SeqCst);
                    self.full_reported = false;
                    self.io_reported = false;
                    return;
                }
                Err(SpoolError::Full { bytes, max }) => {
                    if !self.full_reported {
                        self.full_reported = true;
                        self.bus.emit(catalog::spool_full(self.sink.name(), bytes, max));
                    }
                }
                Err(e) => {
                    if !self.io_reported {
                        self.io_reported = true;
                        self.bus.emit(catalog::spool_io(
                            self.sink.name(),
                            format!("cannot write the spool: {e}; retrying"),
                        ));
                    }
                }
            }
            // Make room by replaying if the sink is back, else wait.
            if Instant::now() >= self.next_probe {
                self.replay(REPLAY_PER_TURN).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn replay(&mut self, max_batches: usize) {
        for _ in 0..max_batches {
            let (batch, damages) = match self.spool.oldest() {
                Ok(x) => x,
                Err(e) => {
                    self.bus.emit(catalog::spool_io(self.sink.name(), format!("cannot read the spool: {e}")));
                    self.next_probe = Instant::now() + self.config.probe_every;
                    return;
                }
            };
            for d in damages {
                self.bus.emit(catalog::spool_corrupt(
                    self.sink.name(),
                    &d.segment,
                    d.offset,
                    &d.reason,
                    &d.quarantined_as,
                ));
            }
            self.state.spool_bytes.store(self.spool.bytes(), Ordering::SeqCst);
            let Some(batch) = batch else {
                self.mark_up();
                return;
            };
            let n = batch.records.len() as u64;
            match self.sink.write(batch.records.clone()).await {
                Ok(report) => {
                    self.account(&report, true);
                    if let Err(e) = self.spool.commit(&batch) {
                        tracing::error!(error = %e, "cannot commit spool progress");
                    }
                    self.replayed_since_down += n;
                    self.metrics.replayed.with_label_values(&self.label()).inc_by(n);
                    self.state.replayed.fetch_add(n, Ordering::SeqCst);
                    if self.spool.is_empty() {
                        self.mark_up();
                        break;
                    }
                }
                Err(failure) => {
                    self.account(&failure.done, true);
                    if failure.remaining.len() < batch.records.len() && !failure.remaining.is_empty() {
                        // Part was written: keep only the rest, at the end of the spool, so
                        // nothing is written twice.
                        if self.spool.append(&failure.remaining).is_ok() {
                            let _ = self.spool.commit(&batch);
                            self.replayed_since_down += n - failure.remaining.len() as u64;
                        }
                    } else if failure.remaining.is_empty() {
                        let _ = self.spool.commit(&batch);
                    }
                    self.mark_down(&failure.reason);
                    self.next_probe = Instant::now() + self.config.probe_every;
                    return;
                }
            }
        }
        self.state.spool_bytes.store(self.spool.bytes(), Ordering::SeqCst);
    }

    fn mark_down(&mut self, reason: &str) {
        if self.down_since.is_some() {
            return;
        }
        self.down_since = Some(Instant::now());
        self.down_reason = reason.to_string();
        self.next_probe = Instant::now() + self.config.probe_every;
        self.state.up.store(false, Ordering::SeqCst);
        self.metrics.up.with_label_values(&self.label()).set(0.0);
        self.bus.emit(catalog::sink_down(self.sink.name(), reason));
    }

    fn mark_up(&mut self) {
        self.spool_oldest = None;
        let Some(since) = self.down_since.take() else { return };
        self.state.up.store(true, Ordering::SeqCst);
        self.metrics.up.with_label_values(&self.label()).set(1.0);
        let secs = since.elapsed().as_secs_f64();
        let reason = std::mem::take(&mut self.down_reason);
        self.bus.emit(catalog::sink_recovered(self.sink.name(), secs, self.replayed_since_down, &reason));
        self.replayed_since_down = 0;
    }
}
