//! The Kinesis writer: `PutRecords` with at most 500 records and 5 MiB per call, the ticker
//! as partition key (so load spreads over shards), and on a partial failure only the
//! failed entries resent, with exponential backoff and jitter. A record over 1 MiB is
//! rejected (an error event), never retried.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use cashtag_core::{Backoff, Record};

use crate::sink::{Rejected, Sink, WriteFailure, WriteReport};

/// Kinesis limits.
pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Resends of failed entries inside one write before the rest is handed back.
const ENTRY_ATTEMPTS: usize = 5;

/// One entry to put: data and partition key.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub data: Vec<u8>,
    pub partition_key: String,
}

/// The outcome of one `PutRecords` call: per entry, `None` if stored or the error code.
pub type PutResult = Result<Vec<Option<String>>, String>;

/// The `PutRecords` call, so tests can put a failing layer between the writer and Kinesis.
pub trait PutRecordsApi: Send + Sync + 'static {
    fn put_records(&self, stream: &str, entries: Vec<Entry>) -> impl Future<Output = PutResult> + Send;
}

impl PutRecordsApi for aws_sdk_kinesis::Client {
    async fn put_records(&self, stream: &str, entries: Vec<Entry>) -> PutResult {
        let mut req = self.put_records().stream_name(stream);
        for e in entries {
            req = req.records(
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(e.data))
                    .partition_key(e.partition_key)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let out =
            req.send().await.map_err(|e| format!("PutRecords: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
        Ok(out.records().iter().map(|r| r.error_code().map(str::to_string)).collect())
    }
}

/// Writes records to two streams: posts, and market data.
pub struct KinesisSink<A: PutRecordsApi> {
    api: A,
    posts_stream: String,
    market_stream: String,
    calls: Arc<AtomicU64>,
}

impl<A: PutRecordsApi> KinesisSink<A> {
    pub fn new(api: A, posts_stream: &str, market_stream: &str) -> Self {
        KinesisSink {
            api,
            posts_stream: posts_stream.into(),
            market_stream: market_stream.into(),
            calls: Default::default(),
        }
    }

    /// The number of `PutRecords` calls made so far.
    pub fn call_counter(&self) -> Arc<AtomicU64> {
        self.calls.clone()
    }

    fn stream_for(&self, r: &Record) -> &str {
        match r {
            Record::Post(_) => &self.posts_stream,
            _ => &self.market_stream,
        }
    }
}

/// The Kinesis entry of a record: its JSON (with a `type` tag) keyed by ticker.
pub fn entry(record: &Record) -> Entry {
    Entry {
        data: serde_json::to_vec(record).expect("records serialize"),
        partition_key: record.partition_ticker().map_or_else(|| record.origin().to_string(), |t| t.to_string()),
    }
}

impl<A: PutRecordsApi> Sink for KinesisSink<A> {
    fn name(&self) -> &'static str {
        "kinesis"
    }

    async fn write(&mut self, batch: &[Record]) -> Result<WriteReport, WriteFailure> {
        let mut report = WriteReport::default();
        // Streams in first-appearance order; records keep their order within a stream.
        let mut by_stream: Vec<(String, Vec<(&Record, Entry)>)> = Vec::new();
        for r in batch {
            let e = entry(r);
            if e.data.len() + e.partition_key.len() > MAX_RECORD_BYTES {
                report.rejected.push(Rejected::record(
                    r,
                    format!("{} bytes exceeds Kinesis' 1 MiB record limit", e.data.len() + e.partition_key.len()),
                ));
                continue;
            }
            let s = self.stream_for(r).to_string();
            match by_stream.iter_mut().find(|(n, _)| *n == s) {
                Some((_, v)) => v.push((r, e)),
                None => by_stream.push((s, vec![(r, e)])),
            }
        }
        let mut left: Vec<Record> = Vec::new();
        let mut reason = String::new();
        for (stream, items) in by_stream {
            if !left.is_empty() {
                left.extend(items.into_iter().map(|(r, _)| r.clone()));
                continue;
            }
            // Calls of at most 500 records and 5 MiB.
            let mut calls: Vec<Vec<(&Record, Entry)>> = Vec::new();
            let mut size = 0;
            for item in items {
                let sz = item.1.data.len() + item.1.partition_key.len();
                let start_new =
                    calls.last().is_none_or(|c| c.len() >= MAX_RECORDS_PER_CALL || size + sz > MAX_BYTES_PER_CALL);
                if start_new {
                    calls.push(Vec::new());
                    size = 0;
                }
                size += sz;
                calls.last_mut().expect("pushed").push(item);
            }
            let mut calls = calls.into_iter();
            for mut pending in calls.by_ref() {
                let mut backoff =
                    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2)).with_jitter(1.0);
                for attempt in 0..ENTRY_ATTEMPTS {
                    self.calls.fetch_add(1, Ordering::Relaxed);
                    let entries: Vec<Entry> = pending.iter().map(|(_, e)| e.clone()).collect();
                    match self.api.put_records(&stream, entries).await {
                        Ok(codes) => {
                            let mut failed = Vec::new();
                            let mut codes_seen = Vec::new();
                            for (item, code) in pending
                                .into_iter()
                                .zip(codes.into_iter().chain(std::iter::repeat(Some("Missing".into()))))
                            {
                                match code {
                                    None => report.written += 1,
                                    Some(c) => {
                                        codes_seen.push(c);
                                        failed.push(item);
                                    }
                                }
                            }
                            pending = failed;
                            if pending.is_empty() {
                                break;
                            }
                            reason = format!(
                                "{} entries failed ({})",
                                pending.len(),
                                codes_seen.first().cloned().unwrap_or_default()
                            );
                        }
                        Err(e) => reason = e,
                    }
                    if attempt + 1 < ENTRY_ATTEMPTS {
                        report.retries += 1;
                        tokio::time::sleep(backoff.next_delay().max(Duration::from_millis(10))).await;
                    }
                }
                if !pending.is_empty() {
                    left.extend(pending.into_iter().map(|(r, _)| r.clone()));
                    break;
                }
            }
            for rest in calls {
                left.extend(rest.into_iter().map(|(r, _)| r.clone()));
            }
        }
        if left.is_empty() { Ok(report) } else { Err(WriteFailure { remaining: left, done: report, reason }) }
    }
}
