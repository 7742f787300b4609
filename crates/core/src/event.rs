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

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "activity" => Ok(EventKind::Activity),
            "warning" => Ok(EventKind::Warning),
            "error" => Ok(EventKind::Error),
            other => Err(format!("unknown event kind {other:?} (activity, warning, error)")),
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
