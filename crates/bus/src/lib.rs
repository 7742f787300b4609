//! cashtag-bus: how the services talk to each other, over Redis.
//!
//! - **control**: the manager publishes start/stop on a channel and keeps the current
//!   state in a key; [`Bus::watch_control`] gives the state on connect, then every change.
//! - **flags**: a hash of named booleans; a change is published and applied by every
//!   subscriber at once ([`Bus::watch_flags`]).
//! - **heartbeats**: a key per service instance with a TTL ([`Bus::spawn_heartbeat`],
//!   [`Bus::alive`]).
//! - **watchlist**: the manager's list of followed companies ([`Bus::watch_watchlist`]).
//! - **events and counts**: Redis streams written with a cap ([`StreamWriter`]) and read
//!   through a consumer group with acknowledgement ([`StreamConsumer`]).
//!
//! Redis may go away and come back: commands go through a reconnecting connection
//! manager, subscriptions reconnect with backoff, resubscribe and re-read their state
//! key, and the outage is reported as an event. Names live in [`keys`].

mod control;
mod flags;
mod heartbeat;
pub mod keys;
pub mod limit;
mod streams;
mod watch;
mod watchlist;

use std::time::Duration;

use cashtag_core::{Clock, Event, EventDraft, EventKind};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use control::{ControlCommand, ControlHold, ControlState};
pub use flags::{FlagChange, Flags};
pub use heartbeat::Heartbeat;
pub use keys::Keys;
pub use streams::{StreamCap, StreamConsumer, StreamEntry, StreamWriter, StreamWriterStats};

/// Errors from the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {context}: {source}")]
    Redis {
        context: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("malformed {what} in redis: {message}")]
    Malformed { what: String, message: String },
    #[error("the outbox in {dir}: {message}")]
    Outbox { dir: String, message: String },
}

pub(crate) trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T, BusError>;
}

impl<T> Context<T> for redis::RedisResult<T> {
    fn context(self, what: impl Into<String>) -> Result<T, BusError> {
        self.map_err(|source| BusError::Redis { context: what.into(), source })
    }
}

/// Who is talking on the bus: the identity stamped on heartbeats and events.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: String,
    pub instance: String,
}

/// A connection to the bus. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    identity: Identity,
    clock: Clock,
    events: StreamWriter<Event>,
    /// Where the outboxes live (events, counts), for a long-running service.
    outbox_dir: Option<std::path::PathBuf>,
    pub(crate) outages: std::sync::Arc<watch::OutageTracker>,
    /// Holds back storms of one error (see [`limit`]).
    limiter: std::sync::Arc<limit::EventLimiter>,
    /// The counts stream's memory cap, for [`Bus::counts_writer`].
    counts_max_mb: u64,
}

/// The stream caps a bus is opened with.
struct Caps {
    events: StreamCap,
    counts_max_mb: u64,
}

/// Opens an outbox journal (one writer: this process).
fn open_outbox(dir: &std::path::Path, name: &str, group: &str) -> Result<streams::Outbox, BusError> {
    let journal = cashtag_journal::Journal::open(
        cashtag_journal::JournalConfig {
            dir: dir.join(name),
            segment_bytes: 4 * 1024 * 1024,
            max_bytes: 256 * 1024 * 1024,
            fsync: cashtag_journal::Fsync::Interval(Duration::from_millis(200)),
        },
        &[streams::OUTBOX_READER],
    )
    .map_err(|e| BusError::Outbox { dir: dir.display().to_string(), message: e.to_string() })?;
    Ok(streams::Outbox { journal, group: group.to_string() })
}

/// How long one Redis command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2))
}

impl Bus {
    /// Opens the bus. Does not fail when Redis is down: the connection is made lazily and
    /// re-made whenever it breaks. Fails only on an unusable URL. Events wait in memory
    /// while Redis is away (see [`Bus::open_durable`] for an outbox on disk).
    pub fn open(
        url: &str,
        prefix: &str,
        identity: Identity,
        clock: Clock,
        events_maxlen: u64,
    ) -> Result<Self, BusError> {
        Self::open_with(url, prefix, identity, clock, Self::default_caps(events_maxlen), None)
    }

    /// The stream caps of [`Bus::open`]: the events' entries as given, memory as the
    /// default settings say.
    fn default_caps(events_maxlen: u64) -> Caps {
        let d = cashtag_core::config::StreamSettings::default();
        Caps { events: StreamCap::new(events_maxlen, d.events_max_mb), counts_max_mb: d.counts_max_mb }
    }

    /// Like [`Bus::open`], with the events and counts outboxes in `outbox_dir` (locked: one
    /// process per directory): an event or count sample is on disk once emitted, and kept
    /// until cashtag-log has read it, also across `kill -9` and Redis restarts.
    pub fn open_durable(
        url: &str,
        prefix: &str,
        identity: Identity,
        clock: Clock,
        events_maxlen: u64,
        outbox_dir: &std::path::Path,
    ) -> Result<Self, BusError> {
        Self::open_with(url, prefix, identity, clock, Self::default_caps(events_maxlen), Some(outbox_dir.to_path_buf()))
    }

    fn open_with(
        url: &str,
        prefix: &str,
        identity: Identity,
        clock: Clock,
        caps: Caps,
        outbox_dir: Option<std::path::PathBuf>,
    ) -> Result<Self, BusError> {
        let client = redis::Client::open(url).context("redis URL")?;
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config()).context("connection manager")?;
        let keys = Keys::new(prefix);
        let outbox = outbox_dir.as_deref().map(|d| open_outbox(d, "events", keys.log_group())).transpose()?;
        let events = StreamWriter::spawn(client.clone(), keys.events_stream(), caps.events, 100_000, outbox)?;
        Ok(Bus {
            client,
            conn,
            keys,
            identity,
            clock,
            events,
            outbox_dir,
            outages: Default::default(),
            limiter: Default::default(),
            counts_max_mb: caps.counts_max_mb,
        })
    }

    /// Opens the bus from the suite settings (no outbox).
    pub fn from_settings(settings: &cashtag_core::Settings, service: &str, clock: Clock) -> Result<Self, BusError> {
        Self::from_settings_with(settings, service, clock, None)
    }

    /// Opens the bus for a long-running service: outboxes in `<sinks.spool_dir>/outbox`.
    pub fn from_settings_durable(
        settings: &cashtag_core::Settings,
        service: &str,
        clock: Clock,
    ) -> Result<Self, BusError> {
        let outbox = std::path::Path::new(&settings.sinks.spool_dir).join("outbox");
        Self::from_settings_with(settings, service, clock, Some(outbox))
    }

    fn from_settings_with(
        settings: &cashtag_core::Settings,
        service: &str,
        clock: Clock,
        outbox_dir: Option<std::path::PathBuf>,
    ) -> Result<Self, BusError> {
        Self::open_with(
            settings.redis.url.expose(),
            &settings.redis.prefix,
            Identity { service: service.to_string(), instance: settings.instance() },
            clock,
            Caps {
                events: StreamCap::new(settings.streams.events_maxlen, settings.streams.events_max_mb),
                counts_max_mb: settings.streams.counts_max_mb,
            },
            outbox_dir,
        )
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A command connection (reconnecting); clones share one multiplexed connection.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), BusError> {
        let mut c = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut c).await.context("PING")?;
        Ok(())
    }

    /// A draft with any code, for tests; services use the constructors of
    /// [`cashtag_core::catalog`].
    pub fn event(&self, kind: EventKind, code: &'static str, message: impl Into<String>) -> EventDraft {
        EventDraft::ad_hoc(kind, code, message)
    }

    /// Stamps a draft with a unique id, the clock's time and this service's identity.
    pub fn stamp(&self, draft: EventDraft) -> Event {
        let id = cashtag_core::event::next_id(&self.identity.instance, "e");
        draft.stamp(id, self.clock.now(), &self.identity.service, &self.identity.instance)
    }

    /// Stamps an event and queues it for the events stream (never blocks, survives Redis
    /// outages up to the writer's buffer); also logs it through `tracing`. Errors and
    /// warnings past the [`limit`]er's burst are counted, not sent one by one.
    pub fn emit(&self, draft: EventDraft) {
        let now = std::time::Instant::now();
        self.send_held_back_at(now);
        if let Some(draft) = self.limiter.admit(draft, now) {
            self.publish(self.stamp(draft));
        }
    }

    /// Sends the summaries of held-back events whose window has ended (the heartbeat calls
    /// this, so a storm's count arrives even when nothing else is emitted).
    pub fn send_held_back(&self) {
        self.send_held_back_at(std::time::Instant::now());
    }

    fn send_held_back_at(&self, now: std::time::Instant) {
        for summary in self.limiter.due(now) {
            self.publish(self.stamp(summary));
        }
    }

    /// This bus as the [`Emitter`] that sources, roll-ups, backups and the predictor report
    /// through (they hold no Redis connection of their own).
    pub fn emitter(&self) -> cashtag_core::Emitter {
        cashtag_core::Emitter::new(self.clone())
    }

    /// Queues a stamped event for the events stream (on disk first, with an outbox) and
    /// logs it.
    pub fn publish(&self, event: Event) {
        let fields = serde_json::Value::Object(event.fields.clone());
        self.events.push(event.clone());
        match event.kind {
            EventKind::Error => tracing::error!(code = %event.code, id = %event.id, %fields, "{}", event.message),
            EventKind::Warning => tracing::warn!(code = %event.code, id = %event.id, %fields, "{}", event.message),
            EventKind::Activity => tracing::info!(code = %event.code, id = %event.id, %fields, "{}", event.message),
        }
    }

    /// The events stream writer (to flush on shutdown, or read its statistics).
    pub fn events(&self) -> &StreamWriter<Event> {
        &self.events
    }

    /// A writer for the counts stream.
    pub fn counts_writer(&self, maxlen: u64) -> Result<StreamWriter<cashtag_core::CountSample>, BusError> {
        let outbox = self.outbox_dir.as_deref().map(|d| open_outbox(d, "counts", self.keys.log_group())).transpose()?;
        let cap = StreamCap::new(maxlen, self.counts_max_mb);
        StreamWriter::spawn(self.client.clone(), self.keys.counts_stream(), cap, 100_000, outbox)
    }

    /// The oldest `count` events on the events stream (valid ones only), without
    /// consuming them.
    pub async fn peek_events(&self, count: usize) -> Result<Vec<Event>, BusError> {
        let mut c = self.conn();
        let entries = streams::peek::<Event>(&mut c, &self.keys.events_stream(), count, false).await?;
        Ok(entries.into_iter().filter_map(|e| e.value.ok()).collect())
    }

    /// The newest `count` events on the stream, newest first (what an operator looks at).
    pub async fn recent_events(&self, count: usize) -> Result<Vec<Event>, BusError> {
        let mut c = self.conn();
        let entries = streams::peek::<Event>(&mut c, &self.keys.events_stream(), count, true).await?;
        Ok(entries.into_iter().filter_map(|e| e.value.ok()).collect())
    }

    /// A consumer in a consumer group of a stream, on its own connection (reads block).
    pub fn consumer(&self, stream: &str, group: &str, consumer: &str) -> Result<StreamConsumer, BusError> {
        StreamConsumer::new(self.client.clone(), stream, group, consumer)
    }
}

impl cashtag_core::Emit for Bus {
    fn emit(&self, draft: EventDraft) {
        Bus::emit(self, draft)
    }

    fn clock(&self) -> &Clock {
        Bus::clock(self)
    }
}
