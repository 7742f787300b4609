//! cashtag-eventlog: the logic of `cashtag-log`, the one place where the suite's events,
//! errors and per-minute counts are kept.
//!
//! - [`Ingest`] reads the events and counts streams through the `cashtag-log` consumer
//!   group and acknowledges an entry only after it is stored; the stream id is the MongoDB
//!   `_id`, so an entry re-read after a crash is stored once.
//! - [`LogStore`]: the `events` and `counts` collections with time and service indexes and
//!   TTL retention, and the queries behind `tail` and `counts`.
//! - [`DailyFiles`]: daily JSON-lines files with a retention count.
//! - [`StaleDetector`] and [`BurstDetector`]: one warning per silent feed during market
//!   hours (and one recovery), one alert per error burst; alerts go to a [`Webhook`].
//! - [`incidents`]: a sink down, a failed backup, a full journal go to the webhook once
//!   when they start and once when they are resolved.

pub mod burst;
pub mod files;
pub mod incidents;
pub mod ingest;
pub mod query;
pub mod stale;
pub mod store;
pub mod webhook;

pub use burst::BurstDetector;
pub use files::DailyFiles;
pub use ingest::{Ingest, IngestConfig, IngestStats};
pub use stale::StaleDetector;
pub use store::{LogStore, StoredCount, StoredEvent};
pub use webhook::Webhook;
