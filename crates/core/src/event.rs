//! Operational records: events (activity, warnings, errors) and per-minute count samples.
//!
//! Every service writes these to the bus's Redis streams; cashtag-log stores them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ticker::Ticker;
use crate::time::ts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Activity,
    Warning,
    Error,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Activity => "activity",
            EventKind::Warning => "warning",
            EventKind::Error => "error",
        }
    }
}

/// A name that is not an event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?} (activity, warning, error)")]
pub struct UnknownKind(String);

impl std::str::FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        match s {
            "activity" => Ok(EventKind::Activity),
            "warning" => Ok(EventKind::Warning),
            "error" => Ok(EventKind::Error),
            other => Err(UnknownKind(other.to_string())),
        }
    }
}

/// Something that happened in a service, worth keeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "ts")]
    pub at: DateTime<Utc>,
    pub service: String,
    pub instance: String,
    pub kind: EventKind,
    /// A short machine-friendly name: `control.start`, `sink.down`, `feed.stale` ...
    pub code: String,
    /// A sentence for humans.
    pub message: String,
    /// Structured details.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    pub fn new(
        at: DateTime<Utc>,
        service: &str,
        instance: &str,
        kind: EventKind,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Event {
            at,
            service: service.to_string(),
            instance: instance.to_string(),
            kind,
            code: code.to_string(),
            message: message.into(),
            fields: Default::default(),
        }
    }

    /// Adds a structured field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

/// An event before it is stamped with its time and the emitting service's identity.
///
/// Drafts are made by the constructors of [`crate::catalog`] (one per event code), so every
/// code the suite emits is listed, with its kind and meaning, in one place; the bus stamps
/// and publishes them.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub(crate) kind: EventKind,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: serde_json::Map<String, serde_json::Value>,
}

impl EventDraft {
    pub(crate) fn new(kind: EventKind, code: &'static str, message: impl Into<String>) -> Self {
        EventDraft { kind, code, message: message.into(), fields: Default::default() }
    }

    /// A draft with any code, for tests. Services use the [`crate::catalog`] constructors;
    /// a test checks that no source file builds an event by hand.
    pub fn ad_hoc(kind: EventKind, code: &'static str, message: impl Into<String>) -> Self {
        EventDraft::new(kind, code, message)
    }

    /// Adds a structured field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    pub fn kind(&self) -> EventKind {
        self.kind
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The event, stamped.
    pub fn stamp(self, at: DateTime<Utc>, service: &str, instance: &str) -> Event {
        Event {
            at,
            service: service.to_string(),
            instance: instance.to_string(),
            kind: self.kind,
            code: self.code.to_string(),
            message: self.message,
            fields: self.fields,
        }
    }
}

/// What a count sample counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountKind {
    Posts,
    Trades,
    Quotes,
    Bars,
}

impl CountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CountKind::Posts => "posts",
            CountKind::Trades => "trades",
            CountKind::Quotes => "quotes",
            CountKind::Bars => "bars",
        }
    }
}

/// How many records of one kind a source delivered in one minute, for one ticker or
/// (with `ticker: None`) for all tickers together. A source that is running publishes its
/// total every minute, also when it is zero, so silence can be told from absence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountSample {
    /// Start of the minute.
    #[serde(with = "ts")]
    pub minute: DateTime<Utc>,
    pub service: String,
    pub instance: String,
    pub source: String,
    #[serde(default)]
    pub ticker: Option<Ticker>,
    pub kind: CountKind,
    pub count: u64,
}
