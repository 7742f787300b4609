//! One sink's worker: reads the journal through the sink's own cursor, writes batches with
//! a deadline per write, and commits the cursor only once a batch is written.
//!
//! The cursor is committed in the background: a cursor write (two syncs) runs on a
//! blocking thread while the next batches are written, and the batches written meanwhile
//! are committed together by the next cursor write — at most one runs at a time, so the
//! cursor on disk only moves forward. After a crash the sink writes again what it had
//! written but not yet committed (at least once; MongoDB keeps one copy by key). When the
//! worker is idle or stops, every commit has landed.
//!
//! States: **up** — a failed write is retried with exponential backoff and jitter for the
//! retry budget; **down** (past the budget) — the same batch is tried every `probe_every`
//! while the journal keeps what arrives, in order; once the sink's backlog is written it
//! is **up** again. Nothing is held in memory beyond the batch in flight, so a slow or
//! stalled sink never stops the intake or another sink. A rejected record (too large,
//! invalid) is kept in the dead letters ([`crate::dead`]), reported and skipped; a failed
//! cursor commit is retried, never the write.
//!
//! A write that misses its deadline is retried with half as many records (down to one),
//! and the smaller size holds for the batches after it until a write finishes well
//! within the deadline: a store too slow for a whole batch per `op_timeout` still gets
//! everything, in smaller writes, instead of the same batch timing out for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cashtag_bus::Bus;
use cashtag_core::config::SinkSettings;
use cashtag_core::{Backoff, Record, catalog};
use cashtag_journal::{Batch, Cursor, PendingCommit, Reader};
use tokio::sync::watch;

use crate::dead::DeadLetters;
use crate::metrics::SinkMetrics;
use crate::sink::{Rejected, Sink, WriteReport};

/// How a worker batches and retries.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub batch_size: usize,
    /// A batch smaller than `batch_size` waits this long for more records.
    pub batch_age: Duration,
    /// A failing write is retried this long before the sink counts as down.
    pub retry_budget: Duration,
    /// While down, how often the waiting batch is tried.
    pub probe_every: Duration,
    /// The deadline of one write: a server that accepts connections but never answers
    /// fails the write after this long.
    pub op_timeout: Duration,
}

impl From<&SinkSettings> for WorkerConfig {
    /// The `sinks.*` settings a worker follows.
    fn from(s: &SinkSettings) -> Self {
        WorkerConfig {
            batch_size: s.batch_size as usize,
            batch_age: Duration::from_millis(s.batch_age_ms),
            retry_budget: Duration::from_secs(s.retry_budget_secs),
            probe_every: Duration::from_secs(1),
            op_timeout: Duration::from_millis(s.op_timeout_ms),
        }
    }
}

impl Default for WorkerConfig {
    /// What the default settings say.
    fn default() -> Self {
        WorkerConfig::from(&SinkSettings::default())
    }
}

/// What a worker shows: read by status pages, heartbeats and tests.
#[derive(Debug)]
pub struct WorkerState {
    pub up: AtomicBool,
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    /// Records written while the sink was catching up (after an outage or a restart).
    pub replayed: AtomicU64,
    pub backlog_bytes: AtomicU64,
    /// When the current outage began (ms since the Unix epoch); 0 while up.
    pub down_since_ms: AtomicU64,
}

impl Default for WorkerState {
    fn default() -> Self {
        WorkerState {
            up: AtomicBool::new(true),
            written: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            backlog_bytes: AtomicU64::new(0),
            down_since_ms: AtomicU64::new(0),
        }
    }
}

impl WorkerState {
    /// How long the sink has been down, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        let since = self.down_since_ms.load(Ordering::SeqCst);
        (since > 0).then(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.saturating_sub(Duration::from_millis(since))
        })
    }
}

/// What the workers are told to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Run {
    Running,
    /// Write what the journal holds, then stop; give up (leaving the rest in the journal)
    /// at the deadline.
    Drain(Instant),
}

pub(crate) struct Worker<S: Sink> {
    pub sink: S,
    pub reader: Reader,
    pub config: WorkerConfig,
    pub bus: Bus,
    pub metrics: SinkMetrics,
    pub state: Arc<WorkerState>,
    pub run: watch::Receiver<Run>,
    /// Catching up: since when, why, and how many records so far.
    pub catching_up: Option<(Instant, String, u64)>,
    pub commits: Commits,
    /// The most records one write sends: the batch size, less after a write missed its
    /// deadline (see [`Worker::write`]).
    pub write_limit: usize,
    /// Where refused records are kept.
    pub dead: DeadLetters,
    /// Refused by the writes of the batch in hand, not yet kept.
    pub refused: Vec<Rejected>,
}

/// The cursor commits of written batches: the one under way, and the end of the newest
/// batch written since it started.
#[derive(Debug, Default)]
pub(crate) struct Commits {
    running: Option<PendingCommit>,
    waiting: Option<Cursor>,
}

/// Waits for the cursor write under way to end; never, when there is none.
async fn ended(running: &mut Option<PendingCommit>) {
    match running {
        Some(p) => p.ended().await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl<S: Sink> Worker<S> {
    fn label(&self) -> [&'static str; 1] {
        [self.sink.name()]
    }

    fn deadline(&self) -> Option<Instant> {
        if self.run.has_changed().is_err() {
            // The delivery is gone without a shutdown: stop now.
            return Some(Instant::now());
        }
        match *self.run.borrow() {
            Run::Running => None,
            Run::Drain(d) => Some(d),
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Sleeps `d`, or less if a drain deadline comes first; false when past the deadline.
    async fn pause(&mut self, d: Duration) -> bool {
        let until = match self.deadline() {
            Some(deadline) => deadline.min(Instant::now() + d),
            None => Instant::now() + d,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = self.run.changed() => {}
        }
        !self.past_deadline()
    }

    pub async fn run(mut self) {
        let name = self.sink.name();
        if !self.reader.is_caught_up() {
            let backlog = self.reader.backlog_bytes();
            self.bus.emit(catalog::sink_backlog(name, backlog));
            self.catching_up = Some((Instant::now(), "backlog from a previous run".into(), 0));
        }
        self.metrics.up.with_label_values(&self.label()).set(1.0);
        while let Some(batch) = self.next_batch().await {
            if !self.deliver(batch).await {
                break;
            }
            self.update_gauges();
        }
        self.settle_commits().await;
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let backlog = self.reader.backlog_bytes();
        self.state.backlog_bytes.store(backlog, Ordering::SeqCst);
        self.metrics.backlog_bytes.with_label_values(&self.label()).set(backlog as f64);
        let behind = self.state.down_for().map_or(0.0, |d| d.as_secs_f64());
        self.metrics.down_seconds.with_label_values(&self.label()).set(behind);
    }

    /// The next batch to write; None when draining and caught up (or past the deadline).
    async fn next_batch(&mut self) -> Option<Batch> {
        loop {
            if self.past_deadline() {
                return None;
            }
            if self.reader.has_unread() {
                let mut batch = self.read(self.config.batch_size).await?;
                // A small batch waits a little for more, unless we are draining.
                let fill_until = Instant::now() + self.config.batch_age;
                while batch.len() < self.config.batch_size && self.deadline().is_none() {
                    tokio::select! {
                        _ = self.reader.wait() => {
                            let more = self.read(self.config.batch_size - batch.len()).await?;
                            batch.absorb(more);
                        }
                        // A cursor write that ends meanwhile lands now (and the one waiting
                        // behind it starts), not with the next batch.
                        _ = ended(&mut self.commits.running) => {
                            if !self.land_commit().await {
                                return None;
                            }
                        }
                        _ = tokio::time::sleep_until(fill_until.into()) => break,
                        _ = self.run.changed() => break,
                    }
                }
                return Some(batch);
            }
            // Nothing to write: every written batch is committed before the sink counts
            // as caught up (and idle).
            if !self.settle_commits().await {
                return None;
            }
            self.caught_up();
            if self.deadline().is_some() {
                return None;
            }
            tokio::select! {
                _ = self.reader.wait() => {}
                _ = self.run.changed() => {}
            }
        }
    }

    /// Reads from the journal, retrying a failing disk; None past the drain deadline.
    async fn read(&mut self, max: usize) -> Option<Batch> {
        let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
        let mut reported = false;
        loop {
            match self.reader.read(max) {
                Ok(b) => return Some(b),
                Err(e) => {
                    if !reported {
                        self.bus.emit(catalog::journal_io(format!("{} cannot read: {e}", self.sink.name())));
                        reported = true;
                    }
                    if !self.pause(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        }
    }

    fn caught_up(&mut self) {
        let Some((since, reason, replayed)) = self.catching_up.take() else { return };
        let was_down = !self.state.up.swap(true, Ordering::SeqCst);
        self.state.down_since_ms.store(0, Ordering::SeqCst);
        self.metrics.up.with_label_values(&self.label()).set(1.0);
        if was_down || replayed > 0 {
            let secs = since.elapsed().as_secs_f64();
            self.bus.emit(catalog::sink_recovered(self.sink.name(), secs, replayed, &reason));
        }
    }

    fn account(&mut self, report: &WriteReport) {
        let l = self.label();
        let n = (report.written + report.duplicates) as u64;
        self.metrics.records_out.with_label_values(&l).inc_by(n);
        self.metrics.duplicates.with_label_values(&l).inc_by(report.duplicates as u64);
        self.metrics.retries.with_label_values(&l).inc_by(report.retries as u64);
        self.state.written.fetch_add(n, Ordering::SeqCst);
        self.state.duplicates.fetch_add(report.duplicates as u64, Ordering::SeqCst);
        if let Some((_, _, replayed)) = self.catching_up.as_mut() {
            *replayed += n;
            self.state.replayed.fetch_add(n, Ordering::SeqCst);
        }
        self.refused.extend(report.rejected.iter().cloned());
    }

    /// Keeps the records refused since the last call in the dead letters (retrying a
    /// failing disk), then reports them; false past the drain deadline (the batch is not
    /// committed, so it is written again after a restart).
    async fn keep_refused(&mut self) -> bool {
        if self.refused.is_empty() {
            return true;
        }
        let refused = std::mem::take(&mut self.refused);
        let name = self.sink.name();
        let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
        let mut reported = false;
        loop {
            let (dead, batch) = (self.dead.clone(), refused.clone());
            let kept = tokio::task::spawn_blocking(move || dead.append(name, &batch))
                .await
                .unwrap_or_else(|e| panic!("the dead-letter append panicked: {e}"));
            match kept {
                Ok(()) => break,
                Err(e) => {
                    if !reported {
                        self.bus.emit(catalog::journal_io(format!("{name} cannot keep refused records: {e}")));
                        reported = true;
                    }
                    if !self.pause(backoff.next_delay()).await {
                        return false;
                    }
                }
            }
        }
        let k = refused.len() as u64;
        self.metrics.rejected.with_label_values(&self.label()).inc_by(k);
        self.state.rejected.fetch_add(k, Ordering::SeqCst);
        let sample: Vec<String> = refused.iter().take(5).map(|r| format!("{}: {}", r.key, r.reason)).collect();
        self.bus.emit(catalog::sink_rejected(name, k, sample, &self.dead.path(name).display().to_string()));
        true
    }

    /// Writes a batch and commits it; false if the drain deadline passed first (the batch
    /// stays in the journal for the next run).
    async fn deliver(&mut self, batch: Batch) -> bool {
        let name = self.sink.name();
        for d in &batch.damages {
            self.bus.emit(catalog::journal_damaged(name, d.segment, d.offset, d.skipped, &d.reason));
        }
        let mut records = Vec::with_capacity(batch.len());
        for item in batch.items() {
            match Record::from_json(item) {
                Ok(r) => records.push(r),
                Err(e) => self.refused.push(Rejected {
                    key: String::from_utf8_lossy(item).chars().take(80).collect(),
                    reason: format!("does not decode: {e}"),
                    data: item.to_vec(),
                }),
            }
        }
        if !records.is_empty() {
            self.metrics.batch_size.with_label_values(&self.label()).observe(records.len() as f64);
            self.metrics.records_in.with_label_values(&self.label()).inc_by(records.len() as u64);
            if !self.write(records).await {
                return false;
            }
        }
        self.keep_refused().await && self.commit(batch.end()).await
    }

    /// Writes records until they are all written, at most `write_limit` per write; false
    /// past the drain deadline.
    async fn write(&mut self, mut pending: Vec<Record>) -> bool {
        let started = Instant::now();
        let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).with_jitter(0.5);
        while !pending.is_empty() {
            let n = pending.len().min(self.write_limit.max(1));
            let attempt = Instant::now();
            let reason = match tokio::time::timeout(self.config.op_timeout, self.sink.write(&pending[..n])).await {
                Ok(Ok(report)) => {
                    self.account(&report);
                    pending.drain(..n);
                    self.fitted(n, attempt.elapsed());
                    continue;
                }
                Ok(Err(failure)) => {
                    self.account(&failure.done);
                    let failed = !failure.remaining.is_empty();
                    pending.splice(..n, failure.remaining);
                    if !failed {
                        continue;
                    }
                    failure.reason
                }
                Err(_) => {
                    self.write_limit = (n / 2).max(1);
                    format!(
                        "no answer within {} ms (next writes carry at most {} records)",
                        self.config.op_timeout.as_millis(),
                        self.write_limit
                    )
                }
            };
            self.metrics.retries.with_label_values(&self.label()).inc();
            self.update_gauges();
            let down = !self.state.up.load(Ordering::SeqCst);
            if !down && started.elapsed() >= self.config.retry_budget {
                self.mark_down(&reason);
            }
            tracing::debug!(sink = self.sink.name(), %reason, "write failed; retrying");
            let pause = if down { self.config.probe_every } else { backoff.next_delay() };
            if !self.pause(pause).await {
                return false;
            }
        }
        true
    }

    /// After a write of `n` records that took `took`: a limit lowered by a missed deadline
    /// doubles again (up to the batch size) once a write at the limit takes under a
    /// quarter of the deadline, so that twice as many would still fit with room to spare.
    fn fitted(&mut self, n: usize, took: Duration) {
        if n >= self.write_limit && self.write_limit < self.config.batch_size && took < self.config.op_timeout / 4 {
            self.write_limit = (self.write_limit * 2).min(self.config.batch_size);
        }
    }

    /// Commits a written batch's end in the background: it starts a cursor write when none
    /// is under way, else it waits for the next. A finished write is taken in first (a
    /// failed one is retried before anything else, as the cursor must not fall behind
    /// for good); false past the drain deadline.
    async fn commit(&mut self, end: Cursor) -> bool {
        self.commits.waiting = Some(end);
        if self.commits.running.as_ref().is_some_and(PendingCommit::is_finished) && !self.land_commit().await {
            return false;
        }
        if self.commits.running.is_none() {
            self.start_waiting_commit();
        }
        true
    }

    fn start_waiting_commit(&mut self) {
        if let Some(c) = self.commits.waiting.take() {
            self.commits.running = Some(self.reader.start_commit(c));
        }
    }

    /// Waits for the cursor write under way; a failed one is reported (once) and retried,
    /// with the newest waiting cursor, until one lands. Then the waiting cursor, if any,
    /// starts. False past the drain deadline.
    async fn land_commit(&mut self) -> bool {
        let mut backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
        let mut reported = false;
        while let Some(pending) = self.commits.running.take() {
            let cursor = pending.cursor();
            match self.reader.finish_commit(pending).await {
                Ok(()) => {
                    self.update_gauges();
                    self.start_waiting_commit();
                    return true;
                }
                Err(e) => {
                    // The batches are written: only the cursor is retried, never the write.
                    if !reported {
                        self.bus.emit(catalog::journal_io(format!("{} cannot commit: {e}", self.sink.name())));
                        reported = true;
                    }
                    self.commits.waiting = Some(self.commits.waiting.map_or(cursor, |w| w.max(cursor)));
                    if !self.pause(backoff.next_delay()).await {
                        return false;
                    }
                    self.start_waiting_commit();
                }
            }
        }
        true
    }

    /// Lands every commit: the one under way, then the waiting one. False past the drain
    /// deadline (what is not committed is written again after a restart).
    async fn settle_commits(&mut self) -> bool {
        if self.commits.running.is_none() {
            self.start_waiting_commit();
        }
        while self.commits.running.is_some() {
            if !self.land_commit().await {
                return false;
            }
        }
        true
    }

    fn mark_down(&mut self, reason: &str) {
        if !self.state.up.swap(false, Ordering::SeqCst) {
            return;
        }
        self.state.down_since_ms.store(now_ms(), Ordering::SeqCst);
        self.metrics.up.with_label_values(&self.label()).set(0.0);
        if self.catching_up.is_none() {
            self.catching_up = Some((Instant::now(), reason.to_string(), 0));
        }
        self.bus.emit(catalog::sink_down(self.sink.name(), reason));
    }
}
