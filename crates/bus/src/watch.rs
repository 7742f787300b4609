//! A Redis-backed value kept current in a `tokio::sync::watch` channel.
//!
//! Each watcher subscribes to a change channel and re-reads the authoritative state key
//! on connect, on every message and every few seconds (so a missed message costs at most
//! that long). When the subscription breaks it reconnects with backoff, resubscribes and
//! re-reads the state; the outage is reported once as an event. A state that does not
//! parse (garbage written by hand, a newer version's value) is not an outage: the watcher
//! keeps the value it last read, says so once in the log, and goes on following changes
//! until the state's owner (the manager) writes it again.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::{Bus, BusError};

/// How often a watcher re-reads its state even without a message.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Shared between the watchers of one [`Bus`], so one outage is reported once.
#[derive(Default)]
pub(crate) struct OutageTracker {
    down_since: Mutex<Option<DateTime<Utc>>>,
}

impl OutageTracker {
    fn down(&self, at: DateTime<Utc>) {
        let mut d = self.down_since.lock().unwrap();
        if d.is_none() {
            *d = Some(at);
        }
    }

    fn up(&self, bus: &Bus, at: DateTime<Utc>) {
        let Some(since) = self.down_since.lock().unwrap().take() else { return };
        bus.emit(cashtag_core::catalog::redis_outage(since, at));
    }
}

async fn load_with_retry<T, L, Fut>(load: &L, conn: &ConnectionManager) -> Result<T, BusError>
where
    L: Fn(ConnectionManager) -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut last = None;
    for attempt in 0..10u64 {
        match load(conn.clone()).await {
            Ok(v) => return Ok(v),
            // Reading it again gives the same answer.
            Err(e @ BusError::Malformed { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    Err(last.expect("at least one attempt"))
}

/// Turns a state that does not parse into "no new value" (the last one stays), logged
/// once per distinct problem.
struct Unparsed {
    channel: String,
    last: Option<String>,
}

impl Unparsed {
    fn settle<T>(&mut self, r: Result<Option<T>, BusError>) -> Result<Option<T>, BusError> {
        match r {
            Err(BusError::Malformed { what, message }) => {
                let problem = format!("{what}: {message}");
                if self.last.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(
                        channel = %self.channel,
                        %problem,
                        "bus state does not parse; keeping the last value until its owner writes it again"
                    );
                    self.last = Some(problem);
                }
                Ok(None)
            }
            Ok(v) => {
                self.last = None;
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }
}

/// Spawns a watcher task; it ends when every receiver is dropped.
pub(crate) fn spawn_watch<T, L, Fut>(bus: &Bus, channel: String, initial: T, load: L) -> watch::Receiver<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
    L: Fn(ConnectionManager) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<T>, BusError>> + Send,
{
    let (tx, rx) = watch::channel(initial);
    let bus = bus.clone();
    let outages = bus_outages(&bus);
    tokio::spawn(async move {
        let mut unparsed = Unparsed { channel: channel.clone(), last: None };
        let mut backoff = Duration::from_millis(100);
        // An absent key (Redis restarted without persistence, FLUSHALL, eviction) keeps the
        // value last seen until its owner writes it again.
        let apply = |tx: &watch::Sender<T>, v: Option<T>| {
            let Some(v) = v else { return };
            tx.send_if_modified(|cur| {
                if *cur != v {
                    *cur = v;
                    true
                } else {
                    false
                }
            });
        };
        loop {
            if tx.is_closed() {
                return;
            }
            let pubsub = async {
                let mut ps = bus.client().get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            let ps = match tokio::time::timeout(Duration::from_secs(3), pubsub).await {
                Ok(Ok(ps)) => ps,
                Ok(Err(e)) => {
                    outages.down(bus.clock().now());
                    tracing::debug!(%channel, error = %e, "bus subscription failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(_) => {
                    outages.down(bus.clock().now());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            match unparsed.settle(load_with_retry(&load, &bus.conn()).await) {
                Ok(v) => apply(&tx, v),
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "cannot read bus state; retrying");
                    outages.down(bus.clock().now());
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
            outages.up(&bus, bus.clock().now());
            backoff = Duration::from_millis(100);
            let mut messages = ps.into_on_message();
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    msg = messages.next() => match msg {
                        Some(_) => match unparsed.settle(load_with_retry(&load, &bus.conn()).await) {
                            Ok(v) => apply(&tx, v),
                            Err(e) => tracing::warn!(%channel, error = %e, "cannot re-read bus state after a change message"),
                        },
                        None => break,
                    },
                    _ = tick.tick() => {
                        if let Ok(v) = unparsed.settle(load(bus.conn()).await) {
                            apply(&tx, v);
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
            tracing::warn!(%channel, "bus subscription lost; reconnecting");
            outages.down(bus.clock().now());
        }
    });
    rx
}

fn bus_outages(bus: &Bus) -> Arc<OutageTracker> {
    bus.outages.clone()
}
