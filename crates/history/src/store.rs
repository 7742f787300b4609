//! Where history goes: the same MongoDB and Kinesis sinks as live records, each behind
//! its flag as the operator has it set now (`mongo_write`, `kinesis_write`), written in
//! batches and retried while a store is briefly down. History is re-readable from its
//! source, so it does not pass through the fetchers' journal: a write that keeps failing
//! past the deadline stops the command with a clear error, and a rerun continues (the
//! natural keys make the overlap harmless).

use std::time::{Duration, Instant};

use cashtag_core::{Backoff, Record, Settings};
use cashtag_sinks::kinesis::KinesisSink;
use cashtag_sinks::mongo::MongoSink;
use cashtag_sinks::sink::{Sink, WriteReport};

use crate::{Counts, HistoryError};

/// The sinks history is written to.
pub struct Store {
    mongo: Option<MongoSink>,
    kinesis: Option<KinesisSink<aws_sdk_kinesis::Client>>,
    /// The suite's database, for checkpoints and the roll-ups (also when `mongo_write` is off).
    pub db: mongodb::Database,
    /// How long a store may stay unreachable before the command gives up.
    pub deadline: Duration,
    /// Parse and score only: nothing is written (`--dry-run`, and the import bench's
    /// measure of the parsing alone).
    dry: bool,
}

/// Whether a flag is on: the bus's value, else the configured default.
fn flag(flags: &cashtag_bus::Flags, settings: &Settings, name: &str) -> bool {
    flags.0.get(name).copied().or_else(|| settings.flags.get(name).copied()).unwrap_or(false)
}

impl Store {
    /// The sinks the flags turn on now (read from the bus; its defaults from configuration).
    pub async fn open(settings: &Settings, bus: &cashtag_bus::Bus) -> Result<Store, HistoryError> {
        let flags = bus.flags().await.map_err(|e| HistoryError::Store(format!("reading the flags from Redis: {e}")))?;
        let client = cashtag_stores::mongo::connect(settings.mongo.uri.expose(), "history")
            .await
            .map_err(|e| HistoryError::Store(format!("MongoDB: {e}")))?;
        let mongo = flag(&flags, settings, "mongo_write").then(|| MongoSink::new(&client, &settings.mongo.database));
        let kinesis = if flag(&flags, settings, "kinesis_write") {
            let c = cashtag_stores::kinesis::client(&settings.aws.region, &settings.aws.endpoint).await;
            Some(KinesisSink::new(c, &settings.sinks.kinesis_posts_stream, &settings.sinks.kinesis_market_stream))
        } else {
            None
        };
        if mongo.is_none() && kinesis.is_none() {
            return Err(HistoryError::Input(
                "both mongo_write and kinesis_write are off: nothing would be stored (cashtag-manager flags set …)"
                    .into(),
            ));
        }
        Ok(Store {
            mongo,
            kinesis,
            db: client.database(&settings.mongo.database),
            deadline: Duration::from_secs(settings.sinks.retry_budget_secs.max(30)),
            dry: false,
        })
    }

    /// A store that writes nothing and counts every record as stored.
    pub async fn dry(settings: &Settings) -> Result<Store, HistoryError> {
        // The client connects on first use, which a dry run never makes.
        let client = cashtag_stores::mongo::connect(settings.mongo.uri.expose(), "history")
            .await
            .map_err(|e| HistoryError::Store(format!("MongoDB: {e}")))?;
        Ok(Store {
            mongo: None,
            kinesis: None,
            db: client.database(&settings.mongo.database),
            deadline: Duration::ZERO,
            dry: true,
        })
    }

    /// Whether nothing is written (`--dry-run`).
    pub fn is_dry(&self) -> bool {
        self.dry
    }

    /// Whether records go to MongoDB (where a stored post can be updated).
    pub fn writes_mongo(&self) -> bool {
        self.mongo.is_some() && !self.dry
    }

    /// Which sinks are on: `mongo`, `kinesis`, or both (`nothing (dry run)`).
    pub fn targets(&self) -> String {
        if self.dry {
            return "nothing (dry run)".into();
        }
        let mut t = vec![];
        if self.mongo.is_some() {
            t.push("mongo");
        }
        if self.kinesis.is_some() {
            t.push("kinesis");
        }
        t.join("+")
    }

    /// Writes records to every sink that is on. What comes back is MongoDB's account
    /// when it is on (it knows duplicates), Kinesis's otherwise.
    pub async fn write(&mut self, records: Vec<Record>) -> Result<Written, HistoryError> {
        let n = records.len() as u64;
        if records.is_empty() || self.dry {
            return Ok(Written { stored: n, ..Default::default() });
        }
        let deadline = self.deadline;
        let mut written = Written::default();
        if let Some(k) = self.kinesis.as_mut() {
            let r = write_all(k, records.clone(), deadline).await?;
            if self.mongo.is_none() {
                written = Written::from(r);
            }
        }
        if let Some(m) = self.mongo.as_mut() {
            written = Written::from(write_all(m, records, deadline).await?);
        }
        Ok(written)
    }
}

/// What a write did.
#[derive(Debug, Default)]
pub struct Written {
    /// Records newly stored.
    pub stored: u64,
    /// Keys of the records the store already had (a key twice when two were).
    pub duplicates: Vec<String>,
    /// (key, reason) of records refused for good.
    pub rejected: Vec<(String, String)>,
}

impl From<WriteReport> for Written {
    fn from(r: WriteReport) -> Self {
        Written {
            stored: r.written as u64,
            duplicates: r.duplicate_keys,
            rejected: r.rejected.into_iter().map(|x| (x.key, x.reason)).collect(),
        }
    }
}

impl Written {
    /// As counts (the duplicates' number, the rejected's number).
    pub fn counts(&self) -> Counts {
        Counts {
            stored: self.stored,
            duplicates: self.duplicates.len() as u64,
            rejected: self.rejected.len() as u64,
            ..Default::default()
        }
    }
}

/// Writes a batch, retrying what remains with backoff until `deadline`.
async fn write_all<S: Sink>(sink: &mut S, batch: Vec<Record>, deadline: Duration) -> Result<WriteReport, HistoryError> {
    let started = Instant::now();
    let mut backoff = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5));
    let mut total = WriteReport::default();
    let mut batch = batch;
    loop {
        match sink.write(&batch).await {
            Ok(r) => {
                total.written += r.written;
                total.duplicates += r.duplicates;
                total.duplicate_keys.extend(r.duplicate_keys);
                total.rejected.extend(r.rejected);
                return Ok(total);
            }
            Err(f) => {
                total.written += f.done.written;
                total.duplicates += f.done.duplicates;
                total.duplicate_keys.extend(f.done.duplicate_keys);
                total.rejected.extend(f.done.rejected);
                if started.elapsed() >= deadline {
                    return Err(HistoryError::Store(format!(
                        "{} unreachable for {} s ({}); what was stored stays, a rerun continues",
                        sink.name(),
                        deadline.as_secs(),
                        f.reason
                    )));
                }
                tracing::warn!(sink = sink.name(), reason = %f.reason, "write failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                batch = f.remaining;
            }
        }
    }
}
