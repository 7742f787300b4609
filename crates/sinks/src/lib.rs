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

/// Why the sinks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mongo.uri: {0}")]
    Mongo(#[source] mongodb::error::Error),
    #[error("sinks.spool_dir: {0}")]
    Spool(#[from] spool::SpoolError),
}

impl cashtag_core::exit::ExitStatus for SetupError {
    fn exit_code(&self) -> u8 {
        cashtag_core::exit::CONFIG
    }
}

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

/// The suite's fan-out from its settings: a MongoDB worker behind `mongo_write` and a
/// Kinesis worker behind `kinesis_write`, each with its spool, flags live from the bus.
pub async fn fanout_from_settings(
    settings: &cashtag_core::Settings,
    bus: &cashtag_bus::Bus,
    telemetry: &cashtag_telemetry::Telemetry,
) -> Result<FanOut, SetupError> {
    let s = &settings.sinks;
    let metrics = SinkMetrics::register(telemetry);
    let config = worker_config(s);
    let service = bus.identity().service.clone();
    let client = mongo::connect(settings.mongo.uri.expose(), &service).await.map_err(SetupError::Mongo)?;
    let mongo = spawn_worker(
        MongoSink::new(&client, &settings.mongo.database),
        open_spool(s, "mongo")?,
        config.clone(),
        bus.clone(),
        metrics.clone(),
    );
    let kin = kinesis::client(&settings.aws.region, &settings.aws.endpoint).await;
    let kinesis = spawn_worker(
        KinesisSink::new(kin, &s.kinesis_posts_stream, &s.kinesis_market_stream),
        open_spool(s, "kinesis")?,
        config,
        bus.clone(),
        metrics,
    );
    Ok(FanOut::new(
        bus,
        bus.watch_flags(),
        settings.flags.clone(),
        vec![("mongo_write".into(), mongo), ("kinesis_write".into(), kinesis)],
    ))
}
