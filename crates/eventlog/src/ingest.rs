//! The ingest loops: read the events and counts streams through the `cashtag-log`
//! consumer group, store each entry (exactly once: the stream id is the `_id`), write the
//! daily files and a readable line on stdout, feed the stale-feed and error-burst
//! detectors, and only then acknowledge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cashtag_bus::{Bus, StreamConsumer, StreamEntry};
use cashtag_core::{CountSample, Event, EventKind, Ticker, catalog};
use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::burst::BurstDetector;
use crate::files::DailyFiles;
use crate::incidents::Incidents;
use crate::stale::{FeedChange, StaleDetector};
use crate::store::{LogStore, StoredCount};
use crate::webhook::Webhook;

/// How the ingest behaves.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub consumer: String,
    pub stale_after: TimeDelta,
    pub burst_errors: usize,
    pub burst_window: TimeDelta,
    /// How often staleness is checked (wall time).
    pub check_every: Duration,
    /// Print a readable line per event on stdout.
    pub print: bool,
}

pub struct Ingest {
    bus: Bus,
    store: Arc<LogStore>,
    event_files: Option<DailyFiles>,
    count_files: Option<DailyFiles>,
    webhook: Option<Webhook>,
    config: IngestConfig,
    stats: Arc<IngestStats>,
}

/// Counters shared with the status page and tests.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub events: std::sync::atomic::AtomicU64,
    pub counts: std::sync::atomic::AtomicU64,
    pub malformed: std::sync::atomic::AtomicU64,
}

type CountKey = (String, Option<Ticker>, cashtag_core::CountKind, String);

impl Ingest {
    pub fn new(
        bus: Bus,
        store: LogStore,
        files: Option<(DailyFiles, DailyFiles)>,
        webhook: Option<Webhook>,
        config: IngestConfig,
    ) -> Self {
        let (event_files, count_files) = match files {
            Some((e, c)) => (Some(e), Some(c)),
            None => (None, None),
        };
        Ingest { bus, store: Arc::new(store), event_files, count_files, webhook, config, stats: Arc::default() }
    }

    /// The counters, live while `run` runs.
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown`; entries being stored when it comes get a few seconds to finish,
    /// else they stay pending in the stream (never acknowledged unstored).
    pub async fn run(self, shutdown: CancellationToken) -> Arc<IngestStats> {
        let stats = self.stats.clone();
        let stale = Arc::new(Mutex::new(StaleDetector::new(self.config.stale_after)));
        let keys = self.bus.keys().clone();
        let group = keys.log_group();
        let events = self.bus.consumer(&keys.events_stream(), group, &self.config.consumer).expect("consumer");
        let counts = self.bus.consumer(&keys.counts_stream(), group, &self.config.consumer).expect("consumer");

        let market =
            tokio::spawn(market_loop(self.bus.clone(), stale.clone(), self.config.check_every, shutdown.clone()));
        let ev = EventsLoop {
            bus: self.bus.clone(),
            store: self.store.clone(),
            files: self.event_files,
            bursts: BurstDetector::new(self.config.burst_errors, self.config.burst_window),
            incidents: Incidents::default(),
            webhook: self.webhook.clone(),
            print: self.config.print,
            stats: stats.clone(),
        };
        let co = CountsLoop {
            bus: self.bus.clone(),
            store: self.store.clone(),
            files: self.count_files,
            stale: stale.clone(),
            last: HashMap::new(),
            stats: stats.clone(),
        };
        let a = tokio::spawn(ev.run(events, shutdown.clone()));
        let b = tokio::spawn(co.run(counts, shutdown.clone()));
        let _ = tokio::join!(a, b, market);
        stats
    }
}

/// Keeps the stale detector's idea of the market current and checks it periodically.
async fn market_loop(bus: Bus, stale: Arc<Mutex<StaleDetector>>, every: Duration, shutdown: CancellationToken) {
    let mut control = bus.watch_control();
    let apply = |s: &cashtag_bus::ControlState, d: &Mutex<StaleDetector>| {
        d.lock().unwrap().set_market(s.is_on().then_some(s.at));
    };
    apply(&control.borrow_and_update(), &stale);
    loop {
        tokio::select! {
            changed = control.changed() => {
                if changed.is_err() { return; }
                apply(&control.borrow_and_update(), &stale);
            }
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = bus.clock().now();
        let changes = stale.lock().unwrap().check(now);
        for c in changes {
            emit_feed_change(&bus, c);
        }
    }
}

fn emit_feed_change(bus: &Bus, c: FeedChange) {
    match c {
        FeedChange::Stale { source, silent_since, minutes } => {
            bus.emit(catalog::feed_stale(&source, silent_since, minutes))
        }
        FeedChange::Recovered { source, silent_minutes } => bus.emit(catalog::feed_recovered(&source, silent_minutes)),
    }
}

/// The deadline of one store attempt.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a store already under way may finish after shutdown comes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Stores a batch, retrying until it is stored or shutdown comes (then it stays pending
/// in the stream for the next run).
async fn store_with_retry<F, Fut>(what: &str, shutdown: &CancellationToken, mut store: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, mongodb::error::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut reported = false;
    loop {
        // A store that hangs (an overloaded server) must not hold up shutdown for ever:
        // after a grace period the entries are left pending, stored at the next start.
        // Every attempt has a deadline: a server that accepts and never answers is retried.
        let attempt = tokio::time::timeout(STORE_TIMEOUT, store());
        tokio::pin!(attempt);
        let result = tokio::select! {
            r = &mut attempt => r,
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!("shutting down while storing {what}; the entries stay pending and are stored at the next start");
                return false;
            }
        };
        let result = result.unwrap_or_else(|_| {
            Err(mongodb::error::Error::custom(format!("no answer within {} s", STORE_TIMEOUT.as_secs())))
        });
        match result {
            Ok(_) => return true,
            Err(e) => {
                if !reported {
                    tracing::warn!(error = %e, "cannot store {what} in MongoDB; retrying (entries stay pending)");
                    reported = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Splits a batch into valid entries and reports malformed ones as an error event.
fn split<T>(
    bus: &Bus,
    stream: &str,
    batch: Vec<StreamEntry<T>>,
    stats: &IngestStats,
) -> (Vec<(String, T)>, Vec<String>) {
    let mut valid = Vec::new();
    let mut ids = Vec::new();
    for e in batch {
        ids.push(e.id.clone());
        match e.value {
            Ok(v) => valid.push((e.id, v)),
            Err(reason) => {
                stats.malformed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                bus.emit(catalog::log_malformed(stream, &e.id, reason));
            }
        }
    }
    (valid, ids)
}

async fn read<T: serde::de::DeserializeOwned>(
    c: &mut StreamConsumer,
    shutdown: &CancellationToken,
) -> Option<Vec<StreamEntry<T>>> {
    tokio::select! {
        r = c.read::<T>() => match r {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::debug!(error = %e, "stream read failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                Some(Vec::new())
            }
        },
        _ = shutdown.cancelled() => None,
    }
}

struct EventsLoop {
    bus: Bus,
    store: Arc<LogStore>,
    files: Option<DailyFiles>,
    bursts: BurstDetector,
    incidents: Incidents,
    webhook: Option<Webhook>,
    print: bool,
    stats: Arc<IngestStats>,
}

impl EventsLoop {
    async fn run(mut self, mut consumer: StreamConsumer, shutdown: CancellationToken) {
        while let Some(batch) = read::<Event>(&mut consumer, &shutdown).await {
            if batch.is_empty() {
                continue;
            }
            let (valid, ids) = split(&self.bus, "events", batch, &self.stats);
            let store = self.store.clone();
            if !store_with_retry("events", &shutdown, || store.store_events(&valid)).await {
                return;
            }
            for (id, e) in &valid {
                self.after_store(id, e);
            }
            self.stats.events.fetch_add(valid.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = consumer.ack(&ids).await {
                tracing::warn!(error = %e, "cannot acknowledge events; they will be re-read and deduplicated");
            }
        }
    }

    fn after_store(&mut self, id: &str, e: &Event) {
        if let Some(f) = self.files.as_mut() {
            let mut line = serde_json::to_value(e).expect("serializes");
            line["id"] = id.into();
            if let Err(err) = f.append(e.at.date_naive(), &line) {
                tracing::warn!(error = %err, "cannot write the events file");
            }
        }
        if self.print {
            println!(
                "{} {:<8} {}/{} {}: {}",
                cashtag_core::time::rfc3339(&e.at),
                e.kind.as_str().to_uppercase(),
                e.service,
                e.instance,
                e.code,
                e.message
            );
        }
        if let Some((key, change)) = self.incidents.observe(e)
            && let Some(w) = &self.webhook
        {
            w.send(crate::incidents::payload(&key, &change, e));
        }
        if e.kind == EventKind::Error
            && let Some(b) = self.bursts.error(&e.service, e.at, &e.message)
        {
            let alert =
                self.bus.stamp(catalog::alert_error_burst(&b.service, b.errors, b.window_secs, b.samples.clone()));
            if let Some(w) = &self.webhook {
                w.send(serde_json::to_value(&alert).expect("serializes"));
            }
            self.bus.publish(alert);
        }
    }
}

struct CountsLoop {
    bus: Bus,
    store: Arc<LogStore>,
    files: Option<DailyFiles>,
    stale: Arc<Mutex<StaleDetector>>,
    /// Last count per source/ticker/kind/instance: (minute, count).
    last: HashMap<CountKey, (chrono::DateTime<Utc>, u64)>,
    stats: Arc<IngestStats>,
}

impl CountsLoop {
    async fn run(mut self, mut consumer: StreamConsumer, shutdown: CancellationToken) {
        while let Some(batch) = read::<CountSample>(&mut consumer, &shutdown).await {
            if batch.is_empty() {
                continue;
            }
            let (valid, ids) = split(&self.bus, "counts", batch, &self.stats);
            let mut stored = Vec::with_capacity(valid.len());
            for (id, s) in valid {
                let delta = self.delta(&s).await;
                stored.push((id, StoredCount { sample: s, delta }));
            }
            let store = self.store.clone();
            if !store_with_retry("counts", &shutdown, || store.store_counts(&stored)).await {
                return;
            }
            for (id, c) in &stored {
                if let Some(f) = self.files.as_mut() {
                    let mut line = serde_json::to_value(&c.sample).expect("serializes");
                    line["id"] = id.as_str().into();
                    line["delta"] = c.delta.into();
                    if let Err(err) = f.append(c.sample.minute.date_naive(), &line) {
                        tracing::warn!(error = %err, "cannot write the counts file");
                    }
                }
                if c.sample.ticker.is_none() {
                    let change = self.stale.lock().unwrap().sample(
                        &c.sample.source,
                        c.sample.minute,
                        c.sample.count,
                        self.bus.clock().now(),
                    );
                    if let Some(change) = change {
                        emit_feed_change(&self.bus, change);
                    }
                }
            }
            self.stats.counts.fetch_add(stored.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = consumer.ack(&ids).await {
                tracing::warn!(error = %e, "cannot acknowledge counts; they will be re-read and deduplicated");
            }
        }
    }

    /// The change from the previous minute's count of the same series.
    async fn delta(&mut self, s: &CountSample) -> Option<i64> {
        let key: CountKey = (s.source.clone(), s.ticker.clone(), s.kind, s.instance.clone());
        let prev_minute = s.minute - TimeDelta::minutes(1);
        let prev = match self.last.get(&key) {
            Some((m, c)) if *m == prev_minute => Some(*c),
            // Seen, but not in the previous minute: a series' samples arrive in minute
            // order, so that minute has none (a ticker without posts for a while) — no
            // need to ask the store, which would cost a query per sparse sample.
            Some(_) => None,
            // Not seen since this service started: the store may have it.
            None => self.store.count_at(s, prev_minute).await.ok().flatten(),
        };
        if self.last.get(&key).is_none_or(|(m, _)| *m <= s.minute) {
            self.last.insert(key, (s.minute, s.count));
        }
        prev.map(|p| s.count as i64 - p as i64)
    }
}
