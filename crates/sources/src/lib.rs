//! cashtag-sources: the providers cashtag reads, one module per provider, each turning
//! the provider's own payloads into cashtag records.
//!
//! Every provider has a pure **parser** (payload → records), used live and by [`replay`];
//! and a **client** that connects, authenticates, subscribes, reconnects with backoff, and
//! emits records, raw payloads (for `--record`) and events through a [`SourceCtx`]. A
//! source runs until its context is cancelled (the market closed, or shutdown) and then
//! closes its connections. Which source runs is configuration
//! ([`market::from_settings`]), never a branch in a service.

pub mod backoff;
pub mod cashtag;
pub mod market;
pub mod recorder;
pub mod replay;
pub mod social;
pub mod ws;

use cashtag_bus::Bus;
use cashtag_core::{Clock, EventKind, Record, Watchlist};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use recorder::Recorder;

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The provider refused our credentials; retrying soon will not help.
    #[error("{provider}: authentication failed: {message}")]
    Auth { provider: &'static str, message: String },
    /// Configuration that cannot work (bad URL, missing key).
    #[error("{provider}: {message}")]
    Config { provider: &'static str, message: String },
    /// Anything else; the intake restarts the source after a pause.
    #[error("{provider}: {message}")]
    Other { provider: &'static str, message: String },
}

/// What a running source has to talk to.
#[derive(Clone)]
pub struct SourceCtx {
    /// Normalized records out.
    pub out: mpsc::Sender<Record>,
    /// Events (and the clock).
    pub bus: Bus,
    /// Raw payloads, when recording.
    pub recorder: Option<Recorder>,
    pub watchlist: watch::Receiver<Watchlist>,
    /// Cancelled when the source must stop (market closed, shutdown).
    pub cancel: CancellationToken,
    /// Where data was last received before this start, for providers that can backfill.
    pub resume_from: Option<DateTime<Utc>>,
}

impl SourceCtx {
    pub fn clock(&self) -> &Clock {
        self.bus.clock()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.bus.clock().now()
    }

    /// Sends a record on; false when the intake has gone away.
    pub async fn emit(&self, record: Record) -> bool {
        self.out.send(record).await.is_ok()
    }

    /// Keeps a raw payload for replay, if recording.
    pub fn record_raw(&self, provider: &str, channel: &str, payload: &str, at: DateTime<Utc>) {
        if let Some(r) = &self.recorder {
            r.write(provider, channel, payload, at);
        }
    }

    /// Emits an event from this source.
    pub fn event(&self, kind: EventKind, code: &str, message: impl Into<String>) {
        self.bus.emit(self.bus.event(kind, code, message));
    }

    /// Reports a payload that does not parse, with a short sample (never a secret: payloads
    /// come from the provider, credentials are only in headers and auth messages).
    pub fn malformed(&self, provider: &str, error: &str, payload: &str) {
        let sample: String = payload.chars().take(200).collect();
        self.bus.emit(
            self.bus
                .event(EventKind::Error, "source.malformed", format!("{provider}: malformed payload skipped: {error}"))
                .with("provider", provider)
                .with("sample", sample),
        );
    }

    /// The watched tickers now.
    pub fn tickers(&self) -> Vec<String> {
        self.watchlist.borrow().tickers().iter().map(|t| t.to_string()).collect()
    }
}

/// A stable 64-bit hash of a payload item, used as the sequence number of records whose
/// provider gives no id (quotes), so live and replayed records have the same key.
pub fn content_seq(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)) >> 1
}
