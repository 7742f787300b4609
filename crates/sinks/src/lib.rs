//! cashtag-sinks: every accepted record to MongoDB and/or Kinesis, losing nothing.
//!
//! - [`Delivery`] accepts records into the process's write-ahead journal
//!   (`cashtag-journal`), each marked for the sinks whose feature flag (`mongo_write`,
//!   `kinesis_write`) is on at that moment; flags change live from the bus.
//! - Each sink has a worker ([`worker`]) that reads the journal through its own cursor,
//!   writes batches with a deadline per write, retries with backoff and jitter, and
//!   commits its cursor once a batch is written. A sink that stays unreachable is *down*:
//!   its records wait in the journal, in order, and the other sink and the intake go on.
//! - [`MongoSink`] batches `insert_many` (unordered) with the natural key as `_id`, so a
//!   repeated batch never duplicates; [`KinesisSink`] batches `PutRecords` (500 records /
//!   5 MiB), partitioned by ticker, resending only failed entries.
//! - A record a sink refuses for good is kept in [`dead`] letters beside the journal, to be
//!   listed and written again (`dead-letters` of the fetchers' command lines).
//!
//! What survives what: a stopped or stalled store, SIGTERM and `kill -9` lose nothing that
//! `accept` returned for. After a crash, a batch that was written but not yet committed is
//! written again: MongoDB ignores it (natural keys), Kinesis may hold it twice.

pub mod dead;
pub mod delivery;
pub mod kinesis;
pub mod metrics;
pub mod mongo;
pub mod sink;
pub mod worker;

use std::time::Duration;

use cashtag_core::config::{FsyncPolicy, SinkSettings};
use cashtag_journal::{Fsync, Journal, JournalConfig};

pub use dead::{DeadLetter, DeadLetters, Redriven};
pub use delivery::{Delivery, SinkStatus};
pub use kinesis::{KinesisSink, PutRecordsApi};
pub use metrics::SinkMetrics;
pub use mongo::MongoSink;
pub use sink::{Rejected, Sink, WriteFailure, WriteReport};
pub use worker::WorkerConfig;

/// The journal's readers: one per sink, in bit order.
pub const SINKS: [&str; 2] = ["mongo", "kinesis"];

/// Why the sinks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mongo.uri: {0}")]
    Mongo(#[source] mongodb::error::Error),
    #[error("sinks.spool_dir: {0}")]
    Journal(#[from] cashtag_journal::JournalError),
}

impl cashtag_core::exit::ExitStatus for SetupError {
    fn exit_code(&self) -> u8 {
        cashtag_core::exit::CONFIG
    }
}

/// The journal's fsync policy from the settings.
pub fn fsync(s: &SinkSettings) -> Fsync {
    match s.fsync {
        FsyncPolicy::Always => Fsync::Always,
        FsyncPolicy::Interval => Fsync::Interval(Duration::from_millis(s.fsync_interval_ms)),
        FsyncPolicy::Never => Fsync::Never,
    }
}

/// Opens (and locks) this process's journal in `sinks.spool_dir`.
pub fn open_journal(s: &SinkSettings) -> Result<Journal, cashtag_journal::JournalError> {
    Journal::open(
        JournalConfig {
            dir: s.spool_dir.clone().into(),
            segment_bytes: s.spool_segment_mb * 1024 * 1024,
            max_bytes: s.spool_max_mb * 1024 * 1024,
            fsync: fsync(s),
        },
        &SINKS,
    )
}

/// The suite's delivery from its settings: the journal, a MongoDB worker behind
/// `mongo_write` and a Kinesis worker behind `kinesis_write`, flags live from the bus.
pub async fn delivery_from_settings(
    settings: &cashtag_core::Settings,
    bus: &cashtag_bus::Bus,
    telemetry: &cashtag_telemetry::Telemetry,
) -> Result<Delivery, SetupError> {
    let s = &settings.sinks;
    let journal = open_journal(s)?;
    let metrics = SinkMetrics::register(telemetry);
    let config = WorkerConfig::from(s);
    let service = bus.identity().service.clone();
    let client =
        cashtag_stores::mongo::connect(settings.mongo.uri.expose(), &service).await.map_err(SetupError::Mongo)?;
    let kin = cashtag_stores::kinesis::client(&settings.aws.region, &settings.aws.endpoint).await;
    let sync_every = match s.fsync {
        FsyncPolicy::Interval => Some(Duration::from_millis(s.fsync_interval_ms)),
        _ => None,
    };
    Ok(Delivery::new(journal, bus, bus.watch_flags(), settings.flags.clone())
        .sink("mongo_write", MongoSink::new(&client, &settings.mongo.database), config.clone(), metrics.clone())
        .sink(
            "kinesis_write",
            KinesisSink::new(kin, &s.kinesis_posts_stream, &s.kinesis_market_stream),
            config,
            metrics,
        )
        .start(sync_every))
}
