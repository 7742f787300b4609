//! Heartbeats: each service instance refreshes a key with a TTL; whoever has a live key
//! is alive. The manager lists them and reports who went missing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{Bus, BusError, Context};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub service: String,
    pub instance: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
    #[serde(with = "cashtag_core::time::ts")]
    pub started_at: DateTime<Utc>,
    /// Whatever the service wants to show in the manager's status (state, counts ...).
    #[serde(default)]
    pub info: serde_json::Value,
}

impl Bus {
    /// Writes one heartbeat.
    pub async fn beat(&self, hb: &Heartbeat, ttl: Duration) -> Result<(), BusError> {
        let mut c = self.conn();
        let key = self.keys().heartbeat(&hb.service, &hb.instance);
        let _: () = c
            .set_ex(key, serde_json::to_string(hb).expect("serializes"), ttl.as_secs().max(1))
            .await
            .context("SET heartbeat")?;
        Ok(())
    }

    /// Beats every `interval` until `stop` is cancelled; then deletes the key, so a clean
    /// shutdown is not mistaken for a crash. `info` is called before each beat.
    pub fn spawn_heartbeat(
        &self,
        interval: Duration,
        ttl: Duration,
        stop: CancellationToken,
        info: impl Fn() -> serde_json::Value + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        let started_at = bus.clock().now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => break,
                }
                bus.send_held_back();
                let hb = Heartbeat {
                    service: bus.identity().service.clone(),
                    instance: bus.identity().instance.clone(),
                    at: bus.clock().now(),
                    started_at,
                    info: info(),
                };
                if let Err(e) = bus.beat(&hb, ttl).await {
                    tracing::debug!(error = %e, "heartbeat not written");
                }
            }
            let mut c = bus.conn();
            let key = bus.keys().heartbeat(&bus.identity().service, &bus.identity().instance);
            let _: Result<(), _> = c.del(key).await;
        })
    }

    /// Every live heartbeat, sorted by service and instance.
    pub async fn alive(&self) -> Result<Vec<Heartbeat>, BusError> {
        let mut c = self.conn();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys().heartbeat_pattern())
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await
                .context("SCAN heartbeats")?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut c).await.context("MGET heartbeats")?;
        let mut out: Vec<Heartbeat> =
            values.into_iter().flatten().filter_map(|v| serde_json::from_str(&v).ok()).collect();
        out.sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
        Ok(out)
    }

    /// Waits until a live heartbeat of `service` satisfies `pred` (polling every 100 ms);
    /// None when none did within `timeout`. What a service says of itself (market on or
    /// off, sinks idle, backlog) is how its state is awaited, by tests and tools alike.
    pub async fn heartbeat_where(
        &self,
        service: &str,
        timeout: std::time::Duration,
        pred: impl Fn(&Heartbeat) -> bool,
    ) -> Option<Heartbeat> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(beats) = self.alive().await
                && let Some(hb) = beats.into_iter().find(|h| h.service == service && pred(h))
            {
                return Some(hb);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
