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
    /// Unique: `<instance>:<process start>:<sequence>`, so a re-sent event is stored once.
    /// Empty for events from before ids existed (the log store then uses the stream id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
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
            id: String::new(),
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

/// When this process started (ms since the Unix epoch, hex): with the instance name and a
/// sequence number it makes event and count ids unique across restarts.
pub fn process_tag() -> &'static str {
    static START: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    START.get_or_init(|| {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        format!("{ms:x}")
    })
}

/// A unique id for an event or count sample of this process: `<instance>:<process
/// start>:<sequence>` (the sequence is process-wide, so every bus of a process differs).
pub fn next_id(instance: &str, kind: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{instance}:{}:{kind}{n}", process_tag())
}

/// Longest event message kept.
pub const MAX_MESSAGE_CHARS: usize = 2_000;
/// Largest value of one event field (as JSON) kept.
pub const MAX_FIELD_BYTES: usize = 4_096;
/// Largest sum of an event's field values kept.
pub const MAX_FIELDS_BYTES: usize = 16_384;
const TRUNCATED: &str = "…[truncated]";

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

    /// A structured field, if set.
    pub fn field(&self, key: &str) -> Option<&serde_json::Value> {
        self.fields.get(key)
    }

    /// This event standing for `n` like it that were held back over `secs` seconds (by
    /// the bus's limiter): the count in the message and in a `held_back` field.
    pub fn held_back(mut self, n: u64, secs: u64) -> EventDraft {
        self.message = format!("{n} like this in the last {secs} s were held back; the last: {}", self.message);
        self.fields.insert("held_back".into(), n.into());
        self
    }

    /// The event, stamped with its id, time and origin, and capped in size: a message
    /// longer than [`MAX_MESSAGE_CHARS`] and field values larger than [`MAX_FIELD_BYTES`]
    /// are cut with a marker, so no event is too large to store.
    pub fn stamp(self, id: String, at: DateTime<Utc>, service: &str, instance: &str) -> Event {
        let mut message = self.message;
        if let Some((i, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(i);
            message.push_str(TRUNCATED);
        }
        let mut fields = self.fields;
        let mut total = 0;
        for (_, v) in fields.iter_mut() {
            let size = v.to_string().len();
            if size > MAX_FIELD_BYTES || total + size > MAX_FIELDS_BYTES {
                *v = serde_json::Value::String(format!("{TRUNCATED} ({size} bytes)"));
            } else {
                total += size;
            }
        }
        Event {
            id,
            at,
            service: service.to_string(),
            instance: instance.to_string(),
            kind: self.kind,
            code: self.code.to_string(),
            message,
            fields,
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
    /// Unique (like an event's id), so a sample sent twice is stored once.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_caps_the_message_and_the_fields() {
        let d = EventDraft::ad_hoc(EventKind::Error, "test.big", "m".repeat(10_000))
            .with("huge", "x".repeat(100_000))
            .with("small", 1);
        let e = d.stamp("i:1:1".into(), Utc::now(), "svc", "i");
        assert!(e.message.chars().count() < MAX_MESSAGE_CHARS + 20 && e.message.ends_with(TRUNCATED));
        assert!(e.fields["huge"].as_str().unwrap().starts_with(TRUNCATED));
        assert_eq!(e.fields["small"], 1);
        assert!(serde_json::to_string(&e).unwrap().len() < 10_000);
    }
}
