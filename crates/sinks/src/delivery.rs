//! Delivery: accepted records into the journal, and from it to every enabled sink.
//!
//! [`Delivery::accept`] writes a group of records to the journal (one frame, fsynced as
//! the policy says) with, per record, the sinks whose feature flag is on at that moment;
//! once it returns the records are accepted — they survive `kill -9` and outages. Each
//! sink's worker reads the journal on its own (see [`crate::worker`]). Flags come live
//! from the bus (configured defaults for flags Redis does not hold); every switch is an
//! event. A full journal or a failing disk makes `accept` fail, so the intake waits and
//! retries (back-pressure) — nothing is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, Flags};
use cashtag_core::{Record, catalog};
use cashtag_journal::{Journal, JournalError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dead::DeadLetters;
use crate::metrics::SinkMetrics;
use crate::sink::Sink;
use crate::worker::{Run, Worker, WorkerConfig, WorkerState};

/// Largest journal frame the intake writes (records are grouped up to this size).
const FRAME_BYTES: usize = 1 << 20;

struct Route {
    flag: String,
    sink: &'static str,
    bit: u8,
    state: Arc<WorkerState>,
}

/// One sink's numbers, for status pages, heartbeats and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkStatus {
    pub sink: &'static str,
    pub flag: String,
    pub enabled: bool,
    pub up: bool,
    /// Everything in the journal for this sink is written.
    pub idle: bool,
    pub written: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Written while catching up after an outage or a restart.
    pub replayed: u64,
    /// Journal bytes this sink has not written yet.
    pub backlog_bytes: u64,
    /// How long it has been down (0 while up).
    pub down_seconds: f64,
}

fn flag_on(flags: &Flags, defaults: &BTreeMap<String, bool>, name: &str) -> bool {
    flags.0.get(name).or_else(|| defaults.get(name)).copied().unwrap_or(false)
}

/// Records in, to every enabled sink, through the journal.
pub struct Delivery {
    journal: Journal,
    bus: Bus,
    routes: Vec<Route>,
    flags: watch::Receiver<Flags>,
    defaults: BTreeMap<String, bool>,
    run: watch::Sender<Run>,
    workers: Vec<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
    /// Since when `accept` fails, for the recovery event.
    failing_since: std::sync::Mutex<Option<Instant>>,
    full_reported: AtomicBool,
}

impl Delivery {
    /// A delivery over `journal`; add sinks with [`Delivery::sink`], then [`Delivery::start`].
    pub fn new(journal: Journal, bus: &Bus, flags: watch::Receiver<Flags>, defaults: BTreeMap<String, bool>) -> Self {
        let (run, _) = watch::channel(Run::Running);
        Delivery {
            journal,
            bus: bus.clone(),
            routes: Vec::new(),
            flags,
            defaults,
            run,
            workers: Vec::new(),
            watcher: None,
            syncer: None,
            failing_since: std::sync::Mutex::new(None),
            full_reported: AtomicBool::new(false),
        }
    }

    /// Adds a sink behind `flag`, reading the journal as the reader named like the sink.
    pub fn sink<S: Sink>(mut self, flag: &str, sink: S, config: WorkerConfig, metrics: SinkMetrics) -> Self {
        let name = sink.name();
        let bit = self.journal.bit(name).unwrap_or_else(|| panic!("the journal has no reader {name}"));
        let state = Arc::new(WorkerState::default());
        let worker = Worker {
            sink,
            reader: self.journal.reader(name),
            write_limit: config.batch_size,
            config,
            bus: self.bus.clone(),
            metrics,
            state: state.clone(),
            run: self.run.subscribe(),
            catching_up: None,
            commits: Default::default(),
            dead: DeadLetters::in_spool(self.journal.dir()),
            refused: Vec::new(),
        };
        self.workers.push(tokio::spawn(worker.run()));
        self.routes.push(Route { flag: flag.to_string(), sink: name, bit, state });
        self
    }

    /// Starts watching flag switches and, with `fsync_every`, flushing the journal that often.
    /// Journal readers without a sink here stop holding data back.
    pub fn start(mut self, fsync_every: Option<Duration>) -> Self {
        let unused: Vec<String> = self
            .journal
            .readers()
            .iter()
            .filter(|r| !self.routes.iter().any(|x| x.sink == r.as_str()))
            .cloned()
            .collect();
        for r in unused {
            self.journal.detach(&r);
        }
        self.watcher = Some(spawn_switch_watcher(
            self.bus.clone(),
            self.flags.clone(),
            self.defaults.clone(),
            self.routes.iter().map(|r| (r.flag.clone(), r.sink, r.state.clone())).collect(),
        ));
        if let Some(every) = fsync_every {
            let journal = self.journal.clone();
            self.syncer = Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let j = journal.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || j.sync()).await {
                        tracing::warn!(error = %e, "journal sync failed");
                    }
                }
            }));
        }
        self
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Whether a flag is on right now, as this delivery sees it.
    pub fn flag_enabled(&self, name: &str) -> bool {
        flag_on(&self.flags.borrow(), &self.defaults, name)
    }

    /// The sinks a record accepted now goes to, as journal target bits.
    pub fn targets(&self) -> u8 {
        let flags = self.flags.borrow();
        self.routes.iter().filter(|r| flag_on(&flags, &self.defaults, &r.flag)).fold(0, |t, r| t | r.bit)
    }

    /// Accepts records: once this returns Ok they are in the journal. On a full journal or
    /// a failing disk it fails (reporting it once) and the caller retries.
    pub async fn accept(&self, records: &[Record]) -> Result<(), JournalError> {
        let targets = self.targets();
        if records.is_empty() || targets == 0 {
            return Ok(());
        }
        // All records serialized into one buffer (no allocation per record), cut into
        // frames of at most FRAME_BYTES: frame k holds spans[starts[k]..starts[k + 1]].
        let mut buf = Vec::with_capacity(records.len() * 256);
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(records.len());
        let mut starts = vec![0];
        let mut size = 0;
        for r in records {
            let start = buf.len();
            serde_json::to_writer(&mut buf, r).expect("records serialize");
            let len = buf.len() - start;
            if size + len > FRAME_BYTES && spans.len() > *starts.last().expect("one frame") {
                starts.push(spans.len());
                size = 0;
            }
            size += len + 5;
            spans.push((start, buf.len()));
        }
        starts.push(spans.len());
        let journal = self.journal.clone();
        let result = tokio::task::spawn_blocking(move || {
            for frame in starts.windows(2) {
                journal.append(spans[frame[0]..frame[1]].iter().map(|&(a, b)| (targets, &buf[a..b])))?;
            }
            Ok(())
        })
        .await
        .expect("journal append does not panic");
        self.report(&result);
        result
    }

    fn report(&self, result: &Result<(), JournalError>) {
        let mut since = self.failing_since.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if let Some(t) = since.take() {
                    self.full_reported.store(false, Ordering::SeqCst);
                    self.bus.emit(catalog::journal_recovered(t.elapsed().as_secs_f64()));
                }
            }
            Err(e) => {
                since.get_or_insert_with(Instant::now);
                if !self.full_reported.swap(true, Ordering::SeqCst) {
                    self.bus.emit(match e {
                        JournalError::Full { bytes, max } => catalog::journal_full(*bytes, *max),
                        other => catalog::journal_io(other),
                    });
                }
            }
        }
    }

    /// Whether `accept` is failing now (the journal is full or the disk fails).
    pub fn is_blocked(&self) -> bool {
        self.failing_since.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Waits until every sink has written everything accepted so far.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let end = self.journal.end();
        loop {
            // Each enabled sink has committed everything accepted before the call. (Not
            // the workers' idle flags: they lag an append that has not woken them yet.)
            let flags = self.flags.borrow().clone();
            let done =
                self.routes.iter().all(|r| !flag_on(&flags, &self.defaults, &r.flag) || self.caught_up(r.sink, end));
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn status(&self) -> Vec<SinkStatus> {
        let flags = self.flags.borrow().clone();
        self.routes
            .iter()
            .map(|r| {
                let s = &r.state;
                SinkStatus {
                    sink: r.sink,
                    flag: r.flag.clone(),
                    enabled: flag_on(&flags, &self.defaults, &r.flag),
                    up: s.up.load(Ordering::SeqCst),
                    idle: self.caught_up(r.sink, self.journal.end()),
                    written: s.written.load(Ordering::SeqCst),
                    duplicates: s.duplicates.load(Ordering::SeqCst),
                    rejected: s.rejected.load(Ordering::SeqCst),
                    replayed: s.replayed.load(Ordering::SeqCst),
                    backlog_bytes: s.backlog_bytes.load(Ordering::SeqCst),
                    down_seconds: s.down_for().map_or(0.0, |d| d.as_secs_f64()),
                }
            })
            .collect()
    }

    /// Lets every worker write what it can within `deadline`, then stops them; what is not
    /// written stays in the journal for the next start. True if everything was written.
    pub async fn shutdown(mut self, deadline: Duration) -> bool {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        if let Some(s) = self.syncer.take() {
            s.abort();
        }
        let _ = self.run.send(Run::Drain(Instant::now() + deadline));
        let workers = std::mem::take(&mut self.workers);
        let joined = tokio::time::timeout(deadline + Duration::from_secs(2), futures::future::join_all(workers)).await;
        let journal = self.journal.clone();
        let _ = tokio::task::spawn_blocking(move || journal.sync()).await;
        let end = self.journal.end();
        joined.is_ok() && self.routes.iter().all(|r| self.caught_up(r.sink, end))
    }

    /// Whether a sink has committed everything up to `end`. (Positions, not the workers'
    /// state: a worker learns of an append only when it wakes up.)
    fn caught_up(&self, sink: &str, end: cashtag_journal::Position) -> bool {
        self.journal.committed(sink).is_some_and(|c| c >= end)
    }
}

type WatchedRoute = (String, &'static str, Arc<WorkerState>);

fn spawn_switch_watcher(
    bus: Bus,
    mut flags: watch::Receiver<Flags>,
    defaults: BTreeMap<String, bool>,
    routes: Vec<WatchedRoute>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Vec<bool> = {
            let f = flags.borrow_and_update();
            routes.iter().map(|(flag, ..)| flag_on(&f, &defaults, flag)).collect()
        };
        while flags.changed().await.is_ok() {
            let now: Vec<bool> = {
                let f = flags.borrow_and_update();
                routes.iter().map(|(flag, ..)| flag_on(&f, &defaults, flag)).collect()
            };
            for (i, (flag, sink, state)) in routes.iter().enumerate() {
                if now[i] != last[i] {
                    let backlog = state.backlog_bytes.load(Ordering::SeqCst);
                    bus.emit(catalog::flag_switched(flag, now[i], sink, backlog));
                }
            }
            last = now;
        }
    })
}
