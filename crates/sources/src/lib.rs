//! cashtag-sources: the providers cashtag reads, one module per provider, each turning
//! the provider's own payloads into cashtag records.
//!
//! Every provider has the same two halves:
//! - a pure **parser**, `parse(channel, payload, received_at, watched) -> Parsed`, used live
//!   and by [`replay`]; [`Parsed`] is the one shape every provider's payload becomes:
//!   records, the items that did not parse, and [`Signal`]s (greetings, errors, cursors);
//! - a **client** implementing [`Source`]: it connects, authenticates, subscribes,
//!   reconnects with backoff and emits records, raw payloads (for `--record`) and events
//!   through a [`SourceCtx`]. Streaming providers plug into the shared WebSocket loop
//!   ([`ws`]), pollers into the shared HTTP loop ([`http`]).
//!
//! A source runs until its context is cancelled (the market closed, or shutdown) and then
//! closes its connections; [`supervisor`] restarts one that fails or panics. Which sources
//! run is configuration: [`registry`] knows every provider, and no provider knows it.

pub mod cashtag;
pub mod http;
pub mod market;
pub mod recorder;
pub mod registry;
pub mod replay;
pub mod social;
pub mod supervisor;
pub mod ws;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use cashtag_core::{Clock, Emitter, EventDraft, Record, Ticker, Watchlist, catalog};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use recorder::Recorder;
pub use supervisor::RestartPolicy;

/// A boxed future, as [`Source::run`] returns (sources are chosen at run time).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider client the intake can run.
pub trait Source: Send {
    /// The provider's name: records carry it as their origin, events name it.
    fn name(&self) -> &'static str;

    /// Runs until the context is cancelled (Ok) or the source fails.
    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>>;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        (**self).run(ctx)
    }
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The provider refused our credentials; retrying soon will not help.
    #[error("{provider}: authentication failed: {message}")]
    Auth { provider: &'static str, message: String },
    /// Configuration that cannot work (bad URL, missing directory).
    #[error("{provider}: {message}")]
    Config { provider: &'static str, message: String },
    /// A local file could not be read.
    #[error("{provider}: {path}: {source}")]
    Io {
        provider: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Anything else; the supervisor restarts the source after a pause.
    #[error("{provider}: {message}")]
    Other { provider: &'static str, message: String },
}

/// A payload that does not parse (or an item of it that does not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        ParseError(message.into())
    }
}

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        ParseError(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> Self {
        ParseError(s.to_string())
    }
}

/// What one provider payload says, the same shape for every provider, live or replayed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Normalized records, in payload order.
    pub records: Vec<Record>,
    /// Items that did not parse: each is reported as malformed and skipped.
    pub errors: Vec<String>,
    /// What the payload says that is not data.
    pub signals: Vec<Signal>,
}

impl Parsed {
    pub fn records(records: Vec<Record>) -> Self {
        Parsed { records, ..Default::default() }
    }

    pub fn signal(signal: Signal) -> Self {
        Parsed { signals: vec![signal], ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.errors.is_empty() && self.signals.is_empty()
    }
}

/// A provider message that is not data.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// A greeting or acknowledgement: `connected`, `authenticated` …
    Status(String),
    /// The subscription the provider confirmed.
    Subscribed(serde_json::Value),
    /// A keep-alive line or an application-level ping.
    KeepAlive,
    /// An error message from the provider, with its code when it has one.
    Error { code: Option<i64>, message: String },
    /// The provider asks the client to reconnect.
    Disconnect(String),
    /// Where a resumable stream is (Bluesky's `time_us`, StockTwits' newest message id).
    Cursor(i64),
    /// Where the next page starts (REST pagination).
    NextPage(String),
}

/// A provider's parser: `(channel, payload, received_at, watched tickers)`.
pub type ParseFn = fn(&str, &str, DateTime<Utc>, &HashSet<Ticker>) -> Result<Parsed, ParseError>;

/// What a running source has to talk to.
#[derive(Clone)]
pub struct SourceCtx {
    /// Normalized records out.
    pub out: mpsc::Sender<Record>,
    /// Events (and the clock): the bus in a service, a recorder in a unit test.
    pub events: Emitter,
    /// Raw payloads, when recording.
    pub recorder: Option<Recorder>,
    pub watchlist: watch::Receiver<Watchlist>,
    /// Cancelled when the source must stop (market closed, shutdown).
    pub cancel: CancellationToken,
    /// Where data was last received before this start, for providers that can backfill.
    pub resume_from: Option<DateTime<Utc>>,
    /// The newest event time accepted so far, per provider (kept by the intake, which reads
    /// it back from its journal after a restart): where a source that can recompute or
    /// re-read its data resumes.
    pub accepted: Marks,
}

/// Per provider, the event time of the newest record accepted.
#[derive(Debug, Clone, Default)]
pub struct Marks(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, DateTime<Utc>>>>);

impl Marks {
    pub fn get(&self, provider: &str) -> Option<DateTime<Utc>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(provider).copied()
    }

    /// Raises a provider's mark to `at` (never lowers it).
    pub fn raise(&self, provider: &str, at: DateTime<Utc>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(provider) {
            Some(t) if *t >= at => {}
            Some(t) => *t = at,
            None => {
                m.insert(provider.to_string(), at);
            }
        }
    }

    pub fn snapshot(&self) -> std::collections::BTreeMap<String, DateTime<Utc>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SourceCtx {
    pub fn clock(&self) -> &Clock {
        self.events.clock()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.events.clock().now()
    }

    /// Where a source that can recompute its data resumes: the start of the minute of the
    /// newest record accepted from it (so the whole minute is seen again, and derived
    /// minute bars are whole), but not before the market turned on; None on a first start.
    pub fn resume_point(&self, provider: &str) -> Option<DateTime<Utc>> {
        let mark = self.accepted.get(provider)?;
        let minute = DateTime::from_timestamp(mark.timestamp().div_euclid(60) * 60, 0)?;
        Some(match self.resume_from {
            Some(on) => minute.max(on),
            None => minute,
        })
    }

    /// Sends a record on; false when the intake has gone away.
    pub async fn emit(&self, record: Record) -> bool {
        self.out.send(record).await.is_ok()
    }

    /// Sends every record of a payload on, reporting the items that did not parse (in one
    /// event per payload: a frame of 100,000 bad items is one event); false when the
    /// intake has gone away.
    pub async fn deliver(&self, provider: &str, payload: &str, parsed: Parsed) -> bool {
        match parsed.errors.as_slice() {
            [] => {}
            [one] => self.malformed(provider, one, payload),
            [first, ..] => {
                let problem = format!("{} items skipped, the first: {first}", parsed.errors.len());
                self.malformed(provider, &problem, payload);
            }
        }
        for r in parsed.records {
            if !self.emit(r).await {
                return false;
            }
        }
        true
    }

    /// Keeps a raw payload for replay, if recording.
    pub fn record_raw(&self, provider: &str, channel: &str, payload: &str, at: DateTime<Utc>) {
        if let Some(r) = &self.recorder {
            r.write(provider, channel, payload, at);
        }
    }

    /// Emits an event.
    pub fn emit_event(&self, draft: EventDraft) {
        self.events.emit(draft);
    }

    /// Reports a payload that does not parse, with a short sample.
    pub fn malformed(&self, provider: &str, problem: &str, payload: &str) {
        self.events.emit(catalog::source_malformed(provider, problem, payload));
    }

    /// The watched tickers now.
    pub fn tickers(&self) -> Vec<String> {
        self.watchlist.borrow().tickers().iter().map(|t| t.to_string()).collect()
    }

    /// The watched tickers as a set (what the social parsers match against).
    pub fn watched(&self) -> HashSet<Ticker> {
        self.watchlist.borrow().tickers().into_iter().collect()
    }
}

/// A stable 64-bit hash of a payload item, used as the sequence number of records whose
/// provider gives no id (quotes), so live and replayed records have the same key.
pub fn content_seq(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)) >> 1
}
