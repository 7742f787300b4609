//! The suite's own state, as the services publish it on the bus: the control state and
//! any maintenance stop, the manager's market decision, the flags, who is alive, each
//! fetcher's sinks and journal (from its heartbeat), and the last error events.

use std::collections::BTreeMap;

use cashtag_bus::{Bus, ControlHold, ControlState, Heartbeat};
use cashtag_core::{Event, EventKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many of the newest events are searched for errors.
const EVENTS_SEARCHED: usize = 2_000;
/// How many errors the status shows.
pub const ERRORS_SHOWN: usize = 5;

/// The manager's view of the market (from its heartbeat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketView {
    pub market_on: bool,
    pub reason: Option<String>,
    pub next_change: Option<String>,
    pub session_date: Option<String>,
}

/// One sink of a fetcher, from its heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkView {
    pub sink: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub up: bool,
    #[serde(default)]
    pub written: u64,
    /// Journal bytes this sink has not written yet.
    #[serde(default)]
    pub backlog_bytes: u64,
    #[serde(default)]
    pub down_seconds: f64,
}

/// A fetcher's journal and sinks, from its heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetcherView {
    pub service: String,
    pub instance: String,
    pub records: u64,
    pub journal_bytes: u64,
    pub journal_max_bytes: u64,
    /// The journal is full: no record can be accepted.
    pub blocked: bool,
    pub sinks: Vec<SinkView>,
}

impl FetcherView {
    /// The fetcher part of a heartbeat, if it is a fetcher's.
    pub fn from_heartbeat(hb: &Heartbeat) -> Option<FetcherView> {
        let info = hb.info.as_object()?;
        let journal = info.get("journal")?;
        let sinks: Vec<SinkView> = serde_json::from_value(info.get("sinks")?.clone()).ok()?;
        let n = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_u64()).unwrap_or(0);
        Some(FetcherView {
            service: hb.service.clone(),
            instance: hb.instance.clone(),
            records: n(info.get("records")),
            journal_bytes: n(journal.get("bytes")),
            journal_max_bytes: n(journal.get("max_bytes")),
            blocked: journal.get("blocked").and_then(|b| b.as_bool()).unwrap_or(false),
            sinks,
        })
    }
}

/// Everything the bus says about the suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteState {
    /// What the data sources are told now.
    pub control: ControlState,
    pub hold: Option<ControlHold>,
    /// None when no manager heartbeat is alive.
    pub market: Option<MarketView>,
    pub flags: BTreeMap<String, bool>,
    pub heartbeats: Vec<Heartbeat>,
    pub fetchers: Vec<FetcherView>,
    /// The newest error events, newest first.
    pub errors: Vec<Event>,
    /// The newest `backup.done` or `backup.failed` among the recent events.
    pub last_backup: Option<Event>,
}

impl SuiteState {
    /// Reads it all (a handful of Redis commands).
    pub async fn read(bus: &Bus) -> Result<SuiteState, cashtag_bus::BusError> {
        let control = bus.control_state().await?;
        let hold = bus.control_hold().await?;
        let flags = bus.flags().await?.0;
        let heartbeats = bus.alive().await?;
        let events = bus.recent_events(EVENTS_SEARCHED).await?;
        Ok(SuiteState::assemble(control, hold, flags, heartbeats, events))
    }

    /// Puts read parts together (tests build it from recorded parts).
    pub fn assemble(
        control: ControlState,
        hold: Option<ControlHold>,
        flags: BTreeMap<String, bool>,
        heartbeats: Vec<Heartbeat>,
        events: Vec<Event>,
    ) -> SuiteState {
        let market = heartbeats
            .iter()
            .find(|h| h.service == "manager")
            .and_then(|h| serde_json::from_value::<MarketView>(h.info.clone()).ok());
        let fetchers = heartbeats.iter().filter_map(FetcherView::from_heartbeat).collect();
        let backup_codes = [cashtag_core::catalog::BACKUP_DONE, cashtag_core::catalog::BACKUP_FAILED];
        let last_backup =
            events.iter().filter(|e| backup_codes.contains(&e.code.as_str())).max_by_key(|e| e.at).cloned();
        let mut errors: Vec<Event> = events.into_iter().filter(|e| e.kind == EventKind::Error).collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.at));
        errors.truncate(ERRORS_SHOWN);
        SuiteState { control, hold, market, flags, heartbeats, fetchers, errors, last_backup }
    }

    /// The live heartbeat of a service, if any.
    pub fn heartbeat(&self, service: &str) -> Option<&Heartbeat> {
        self.heartbeats.iter().find(|h| h.service == service)
    }

    /// Whether a maintenance stop is in force at `now`.
    pub fn held_at(&self, now: DateTime<Utc>) -> Option<&ControlHold> {
        self.hold.as_ref().filter(|h| h.holds_at(now))
    }
}
