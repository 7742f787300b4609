//! Incidents: the conditions an operator must hear about once when they start and once
//! when they end — a sink down past its retry budget, a failed or overdue backup, a full
//! journal, a service restarting after unclean ends (a crash, an OOM kill, a loop) —
//! rather than in a burst of errors or not at all. The log sees every event, so it pairs
//! the one that opens an incident with the one that resolves it and sends both to the
//! webhook. Open incidents live in memory: after a restart of the log, an incident still
//! going on is announced again by its next opening event.

use std::collections::HashMap;

use cashtag_core::{Event, catalog};
use chrono::{DateTime, Utc};

/// What an event did to an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened,
    Resolved { after_secs: f64 },
}

/// The incidents open now, by key.
#[derive(Debug, Default)]
pub struct Incidents {
    open: HashMap<String, DateTime<Utc>>,
}

/// The incident an event opens (true) or resolves (false), by key.
fn classify(e: &Event) -> Option<(String, bool)> {
    let field = |name: &str| e.fields.get(name).and_then(|v| v.as_str()).unwrap_or("-").to_string();
    let (key, opens) = match e.code.as_str() {
        catalog::SINK_DOWN => (format!("sink {} of {}", field("sink"), e.service), true),
        catalog::SINK_RECOVERED => (format!("sink {} of {}", field("sink"), e.service), false),
        catalog::BACKUP_FAILED | catalog::BACKUP_OVERDUE => ("backups".to_string(), true),
        catalog::BACKUP_DONE => ("backups".to_string(), false),
        catalog::JOURNAL_FULL => (format!("journal of {}", e.service), true),
        catalog::JOURNAL_RECOVERED => (format!("journal of {}", e.service), false),
        catalog::SERVICE_RESTARTED => (format!("restarts of {}", e.service), true),
        catalog::SERVICE_STABLE => (format!("restarts of {}", e.service), false),
        _ => return None,
    };
    Some((key, opens))
}

impl Incidents {
    /// Whether this event opens or resolves an incident (repeats of an open one, and
    /// resolutions of none, change nothing).
    pub fn observe(&mut self, e: &Event) -> Option<(String, Change)> {
        let (key, opens) = classify(e)?;
        if opens {
            if self.open.contains_key(&key) {
                return None;
            }
            self.open.insert(key.clone(), e.at);
            Some((key, Change::Opened))
        } else {
            let since = self.open.remove(&key)?;
            let after_secs = (e.at - since).num_milliseconds() as f64 / 1000.0;
            Some((key, Change::Resolved { after_secs }))
        }
    }
}

/// The webhook's payload for an incident change: `text` for chat webhooks, the fields for
/// scripts, and the event itself.
pub fn payload(key: &str, change: &Change, e: &Event) -> serde_json::Value {
    let (state, text) = match change {
        Change::Opened => ("opened", format!("cashtag: {key}: {}", e.message)),
        Change::Resolved { after_secs } => {
            ("resolved", format!("cashtag: {key} resolved after {after_secs:.0} s: {}", e.message))
        }
    };
    serde_json::json!({
        "text": text,
        "incident": key,
        "state": state,
        "code": e.code,
        "service": e.service,
        "at": cashtag_core::time::rfc3339(&e.at),
        "event": e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(code: &str, service: &str, at: i64, fields: serde_json::Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": format!("{code}-{at}"), "at": format!("2026-12-07T10:00:{at:02}Z"), "service": service,
            "instance": "i", "kind": "error", "code": code, "message": code, "fields": fields
        }))
        .unwrap()
    }

    #[test]
    fn an_incident_is_announced_once_and_resolved_once() {
        let mut i = Incidents::default();
        let kinesis = serde_json::json!({"sink": "kinesis"});
        assert_eq!(i.observe(&event("sink.down", "stocks", 0, kinesis.clone())).unwrap().1, Change::Opened);
        assert_eq!(i.observe(&event("sink.down", "stocks", 5, kinesis.clone())), None, "a repeat is not news");
        assert!(i.observe(&event("sink.down", "twitter", 6, kinesis.clone())).is_some(), "another service's sink");
        assert_eq!(i.observe(&event("source.error", "stocks", 7, kinesis.clone())), None);
        let (key, change) = i.observe(&event("sink.recovered", "stocks", 30, kinesis.clone())).unwrap();
        assert_eq!((key.as_str(), change), ("sink kinesis of stocks", Change::Resolved { after_secs: 30.0 }));
        assert_eq!(i.observe(&event("backup.done", "backup", 31, serde_json::json!({}))), None, "nothing was open");
        assert!(i.observe(&event("backup.failed", "backup", 32, serde_json::json!({}))).is_some());
        let (_, change) = i.observe(&event("backup.done", "backup", 40, serde_json::json!({}))).unwrap();
        assert_eq!(change, Change::Resolved { after_secs: 8.0 });
        assert!(i.observe(&event("backup.overdue", "backup", 41, serde_json::json!({}))).is_some());
        assert_eq!(i.observe(&event("backup.failed", "backup", 42, serde_json::json!({}))), None, "the same incident");
    }

    #[test]
    fn a_restart_loop_is_one_incident_until_the_service_runs_stably() {
        let mut i = Incidents::default();
        let (key, change) = i.observe(&event("service.restarted", "stocks", 0, serde_json::json!({}))).unwrap();
        assert_eq!((key.as_str(), change), ("restarts of stocks", Change::Opened));
        for at in [10, 20, 30] {
            assert_eq!(i.observe(&event("service.restarted", "stocks", at, serde_json::json!({}))), None);
        }
        let (_, change) = i.observe(&event("service.stable", "stocks", 50, serde_json::json!({}))).unwrap();
        assert_eq!(change, Change::Resolved { after_secs: 50.0 });
    }
}
