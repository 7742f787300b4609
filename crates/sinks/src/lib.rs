//! cashtag-sinks: every accepted record to MongoDB and/or Kinesis, losing nothing.
//!
//! - [`FanOut`] sends each record to every sink whose feature flag (`mongo_write`,
//!   `kinesis_write`) is on at the moment it is accepted; flags change live from the bus.
//! - [`MongoSink`] batches `insert_many` (unordered) with the natural key as `_id`, so
//!   retries never duplicate; [`KinesisSink`] batches `PutRecords` (500 records / 5 MiB),
//!   partitioned by ticker, resending only failed entries.
//! - Each sink runs in a worker ([`spawn_worker`]) that retries with backoff and jitter,
//!   spools batches to disk ([`Spool`]) while the sink stays unreachable, replays them in
//!   order when it is back (also after a restart), and slows intake when the spool is full.
//! - On shutdown ([`FanOut::shutdown`]) everything held is written or spooled.
//!
//! What survives what: a stopped store, or SIGTERM, loses nothing. SIGKILL loses only what
//! was still in memory — at most the records of the batch being formed and the queue
//! (about one second of intake while the store is up); everything already spooled replays.

pub mod fanout;
pub mod kinesis;
pub mod metrics;
pub mod mongo;
pub mod sink;
pub mod spool;
pub mod worker;

use std::path::Path;
use std::time::Duration;

pub use fanout::{FanOut, SinkStatus};
pub use kinesis::{KinesisSink, PutRecordsApi};
pub use metrics::SinkMetrics;
pub use mongo::MongoSink;
pub use sink::{Rejected, Sink, WriteFailure, WriteReport};
pub use spool::Spool;
pub use worker::{SinkHandle, WorkerConfig, spawn_worker};

/// Worker settings from the suite settings.
pub fn worker_config(s: &cashtag_core::config::SinkSettings) -> WorkerConfig {
    WorkerConfig {
        batch_size: s.batch_size as usize,
        batch_age: Duration::from_millis(s.batch_age_ms),
        retry_budget: Duration::from_secs(s.retry_budget_secs),
        probe_every: Duration::from_secs(1),
        queue_capacity: s.queue_capacity as usize,
    }
}

/// Opens a sink's spool under the configured spool directory.
pub fn open_spool(s: &cashtag_core::config::SinkSettings, sink: &str) -> Result<Spool, spool::SpoolError> {
    Spool::open(Path::new(&s.spool_dir).join(sink), s.spool_max_mb * 1024 * 1024, s.spool_segment_mb * 1024 * 1024)
}
