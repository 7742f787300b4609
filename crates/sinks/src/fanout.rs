//! The fan-out: every accepted record goes to every sink whose flag is on at that moment.
//!
//! Flags come live from the bus (falling back to configured defaults for flags Redis does
//! not hold). A record accepted while a sink's flag is off is not written to that sink;
//! switching a flag off flushes what that sink was given before the switch; every switch is
//! an event. `accept` waits when a sink's queue is full (back-pressure), never drops.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, Flags};
use cashtag_core::{Record, catalog};
use tokio::sync::{oneshot, watch};

use crate::worker::{Cmd, SinkHandle};

struct Route {
    flag: String,
    handle: SinkHandle,
}

/// Records in, to every enabled sink.
pub struct FanOut {
    routes: Vec<Route>,
    flags: watch::Receiver<Flags>,
    defaults: BTreeMap<String, bool>,
    watcher: tokio::task::JoinHandle<()>,
}

/// One sink's numbers, for status pages and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkStatus {
    pub sink: &'static str,
    pub flag: String,
    pub enabled: bool,
    pub up: bool,
    pub pending: u64,
    pub written: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub rejected: u64,
    pub spool_bytes: u64,
}

fn flag_on(flags: &Flags, defaults: &BTreeMap<String, bool>, name: &str) -> bool {
    flags.0.get(name).or_else(|| defaults.get(name)).copied().unwrap_or(false)
}

impl FanOut {
    /// `sinks` pairs each sink's worker with the flag that enables it.
    pub fn new(
        bus: &Bus,
        flags: watch::Receiver<Flags>,
        defaults: BTreeMap<String, bool>,
        sinks: Vec<(String, SinkHandle)>,
    ) -> Self {
        let routes: Vec<Route> = sinks.into_iter().map(|(flag, handle)| Route { flag, handle }).collect();
        let watcher = spawn_switch_watcher(
            bus.clone(),
            flags.clone(),
            defaults.clone(),
            routes
                .iter()
                .map(|r| (r.flag.clone(), r.handle.name, r.handle.tx.clone(), r.handle.state.clone()))
                .collect(),
        );
        FanOut { routes, flags, defaults, watcher }
    }

    /// Whether a flag is on right now, as this fan-out sees it.
    pub fn flag_enabled(&self, name: &str) -> bool {
        flag_on(&self.flags.borrow(), &self.defaults, name)
    }

    /// Accepts one record; waits while a sink's queue is full. Cancel-safe per sink: a
    /// record is either queued for a sink or not, never half-counted.
    pub async fn accept(&self, record: Record) {
        let flags = self.flags.borrow().clone();
        let targets: Vec<&Route> = self.routes.iter().filter(|r| flag_on(&flags, &self.defaults, &r.flag)).collect();
        let last = targets.len().saturating_sub(1);
        let mut record = Some(record);
        for (i, route) in targets.into_iter().enumerate() {
            let r = if i == last { record.take().expect("moved once") } else { record.clone().expect("present") };
            // Reserve first: if this future is dropped while waiting (a caller's timeout),
            // nothing was queued and nothing is counted.
            match route.handle.tx.reserve().await {
                Ok(permit) => {
                    route.handle.state.pending.fetch_add(1, Ordering::SeqCst);
                    permit.send(Cmd::Record(Box::new(r)));
                }
                Err(_) => tracing::error!(sink = route.handle.name, "sink worker has stopped; record not queued"),
            }
        }
    }

    /// Accepts many records.
    pub async fn accept_all(&self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            self.accept(r).await;
        }
    }

    /// Writes (or spools) every partial batch now.
    pub async fn flush(&self) {
        for r in &self.routes {
            let (ack, done) = oneshot::channel();
            if r.handle.tx.send(Cmd::Flush(ack)).await.is_ok() {
                let _ = done.await;
            }
        }
    }

    /// Waits until every sink has written everything (queue, batch and spool empty).
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush().await;
            if self.routes.iter().all(|r| r.handle.is_idle()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn status(&self) -> Vec<SinkStatus> {
        let flags = self.flags.borrow().clone();
        self.routes
            .iter()
            .map(|r| {
                let s = &r.handle.state;
                SinkStatus {
                    sink: r.handle.name,
                    flag: r.flag.clone(),
                    enabled: flag_on(&flags, &self.defaults, &r.flag),
                    up: s.up.load(Ordering::SeqCst),
                    pending: s.pending.load(Ordering::SeqCst),
                    written: s.written.load(Ordering::SeqCst),
                    spooled: s.spooled.load(Ordering::SeqCst),
                    replayed: s.replayed.load(Ordering::SeqCst),
                    rejected: s.rejected.load(Ordering::SeqCst),
                    spool_bytes: s.spool_bytes.load(Ordering::SeqCst),
                }
            })
            .collect()
    }

    /// Stops intake and lets every worker write or spool what it holds; waits up to
    /// `deadline`. Returns false if a worker did not finish in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        self.watcher.abort();
        let FanOut { routes, .. } = self;
        let joins: Vec<_> = routes
            .into_iter()
            .map(|r| {
                drop(r.handle.tx);
                r.handle.join
            })
            .collect();
        tokio::time::timeout(deadline, futures::future::join_all(joins)).await.is_ok()
    }
}

type WatchedRoute = (String, &'static str, tokio::sync::mpsc::Sender<Cmd>, std::sync::Arc<crate::worker::WorkerState>);

fn spawn_switch_watcher(
    bus: Bus,
    mut flags: watch::Receiver<Flags>,
    defaults: BTreeMap<String, bool>,
    routes: Vec<WatchedRoute>,
) -> tokio::task::JoinHandle<()> {
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
            for (i, (flag, sink, tx, state)) in routes.iter().enumerate() {
                if now[i] == last[i] {
                    continue;
                }
                let pending = state.pending.load(Ordering::SeqCst);
                bus.emit(catalog::flag_switched(flag, now[i], sink, pending));
                if !now[i] {
                    let (ack, _done) = oneshot::channel();
                    let _ = tx.send(Cmd::Flush(ack)).await;
                }
            }
            last = now;
        }
    })
}
