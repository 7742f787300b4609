//! Watches heartbeats and reports services that go missing and come back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cashtag_bus::{Bus, Heartbeat};
use cashtag_core::catalog;
use tokio_util::sync::CancellationToken;

/// The live services, as last seen.
pub struct HeartbeatMonitor {
    bus: Bus,
    every: Duration,
    alive: Arc<Mutex<Vec<Heartbeat>>>,
}

/// What changed between two looks at the heartbeats.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub appeared: Vec<String>,
    pub missing: Vec<String>,
}

fn id(h: &Heartbeat) -> String {
    format!("{}/{}", h.service, h.instance)
}

/// Compares two sets of heartbeats.
pub fn compare(before: &[Heartbeat], after: &[Heartbeat]) -> Changes {
    let b: BTreeMap<String, ()> = before.iter().map(|h| (id(h), ())).collect();
    let a: BTreeMap<String, ()> = after.iter().map(|h| (id(h), ())).collect();
    Changes {
        appeared: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
        missing: b.keys().filter(|k| !a.contains_key(*k)).cloned().collect(),
    }
}

impl HeartbeatMonitor {
    pub fn new(bus: Bus, every: Duration) -> Self {
        HeartbeatMonitor { bus, every, alive: Default::default() }
    }

    /// The live services, shared with the status page.
    pub fn alive(&self) -> Arc<Mutex<Vec<Heartbeat>>> {
        self.alive.clone()
    }

    pub async fn run(self, shutdown: CancellationToken) {
        // Services seen missing, so that their return is reported as a return.
        let mut gone: BTreeMap<String, ()> = BTreeMap::new();
        let mut first = true;
        loop {
            if let Ok(now) = self.bus.alive().await {
                let before = self.alive.lock().unwrap().clone();
                let changes = compare(&before, &now);
                for svc in &changes.missing {
                    gone.insert(svc.clone(), ());
                    self.bus.emit(catalog::service_missing(svc));
                }
                for svc in &changes.appeared {
                    if gone.remove(svc).is_some() {
                        self.bus.emit(catalog::service_returned(svc));
                    } else if !first {
                        self.bus.emit(catalog::service_seen(svc));
                    }
                }
                *self.alive.lock().unwrap() = now;
                first = false;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(s: &str) -> Heartbeat {
        Heartbeat {
            service: s.into(),
            instance: "i".into(),
            at: chrono::Utc::now(),
            started_at: chrono::Utc::now(),
            info: serde_json::Value::Null,
        }
    }

    #[test]
    fn compares_sets() {
        let c = compare(&[hb("stocks"), hb("twitter")], &[hb("twitter"), hb("log")]);
        assert_eq!(c.appeared, vec!["log/i"]);
        assert_eq!(c.missing, vec!["stocks/i"]);
    }
}
