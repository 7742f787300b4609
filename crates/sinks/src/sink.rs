//! What a sink is: something that writes a batch of records and says what happened.

use std::future::Future;

use cashtag_core::Record;

/// A record a sink will never accept (too large, invalid), with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub key: String,
    pub reason: String,
    /// The record as the journal holds it (its JSON), for the dead letters.
    pub data: Vec<u8>,
}

impl Rejected {
    /// A record refused for this reason.
    pub fn record(record: &Record, reason: String) -> Rejected {
        Rejected { key: record.key(), reason, data: serde_json::to_vec(record).expect("records serialize") }
    }
}

/// The outcome of a successful write.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteReport {
    /// Records newly written.
    pub written: usize,
    /// Records the sink already had (a retried batch): counted as written.
    pub duplicates: usize,
    /// Their keys, where the sink can tell (MongoDB): history imports count duplicates
    /// per file with them.
    pub duplicate_keys: Vec<String>,
    /// Records refused for good; reported, never retried.
    pub rejected: Vec<Rejected>,
    /// Retries the sink did inside the call (e.g. Kinesis entries resent).
    pub retries: usize,
}

/// A write that did not complete: `remaining` are the records still to write.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    pub remaining: Vec<Record>,
    pub done: WriteReport,
    pub reason: String,
}

/// A destination for records.
pub trait Sink: Send + 'static {
    /// `mongo` or `kinesis`: the name in metrics, events and the spool directory.
    fn name(&self) -> &'static str;

    /// Writes a batch; records written before a failure are reported in `done`, the rest
    /// come back (copied) in the failure. The batch is borrowed, so a write abandoned at
    /// its deadline loses nothing and a successful one copies nothing.
    fn write(&mut self, batch: &[Record]) -> impl Future<Output = Result<WriteReport, WriteFailure>> + Send;
}
