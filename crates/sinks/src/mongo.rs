//! The MongoDB writer: `insert_many` unordered, one collection per record type, the
//! record's natural key as `_id`, so a retried batch can never create a duplicate —
//! duplicate-key errors (code 11000) count as already written.

use bson::RawDocumentBuf;
use cashtag_core::bsondoc::with_id;
use cashtag_core::{Record, collections};
use mongodb::error::{ErrorKind, InsertManyError};
use mongodb::options::IndexOptions;
use mongodb::{Client, Database, IndexModel};

use crate::sink::{Rejected, Sink, WriteFailure, WriteReport};

const DUPLICATE_KEY: i32 = 11000;

/// The BSON document of a record: the record's fields (dates as BSON dates) with `_id` =
/// its natural key.
pub fn document(record: &Record) -> Result<RawDocumentBuf, cashtag_core::bsondoc::BsonError> {
    let key = record.key();
    match record {
        Record::Post(p) => with_id(&key, p),
        Record::Trade(t) => with_id(&key, t),
        Record::Quote(q) => with_id(&key, q),
        Record::Bar(b) => with_id(&key, b),
    }
}

/// The indexes readers rely on, by collection.
fn indexes() -> Vec<(&'static str, bson::Document)> {
    use bson::doc;
    vec![
        (collections::POSTS, doc! {"tickers": 1, "created_at": 1}),
        (collections::POSTS, doc! {"created_at": 1}),
        (collections::TRADES, doc! {"ticker": 1, "ts": 1}),
        (collections::QUOTES, doc! {"ticker": 1, "ts": 1}),
        (collections::BARS, doc! {"ticker": 1, "start": 1}),
        (collections::BARS_1D, doc! {"ticker": 1, "start": 1}),
    ]
}

/// Writes records into a database.
pub struct MongoSink {
    db: Database,
    indexes_ready: bool,
}

impl MongoSink {
    pub fn new(client: &Client, database: &str) -> Self {
        MongoSink { db: client.database(database), indexes_ready: false }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Creates the indexes (idempotent).
    pub async fn ensure_indexes(&mut self) -> Result<(), mongodb::error::Error> {
        for (coll, keys) in indexes() {
            let model = IndexModel::builder().keys(keys).options(IndexOptions::builder().build()).build();
            self.db.collection::<bson::Document>(coll).create_index(model).await?;
        }
        self.indexes_ready = true;
        Ok(())
    }
}

/// Splits a failed `insert_many` into duplicates (their keys), rejected documents and a
/// retryable rest.
fn classify(e: &InsertManyError, group: &[&Record]) -> (Vec<String>, Vec<Rejected>, Vec<usize>) {
    let mut dup = Vec::new();
    let mut rejected = Vec::new();
    let mut failed_idx = Vec::new();
    for we in e.write_errors.iter().flatten() {
        if we.code == DUPLICATE_KEY {
            dup.extend(group.get(we.index).map(|r| r.key()));
        } else if let Some(r) = group.get(we.index) {
            // A document the server refuses (too large, invalid) will never be accepted.
            rejected.push(Rejected::record(r, format!("MongoDB error {}: {}", we.code, we.message)));
        }
        failed_idx.push(we.index);
    }
    (dup, rejected, failed_idx)
}

impl Sink for MongoSink {
    fn name(&self) -> &'static str {
        "mongo"
    }

    async fn write(&mut self, batch: &[Record]) -> Result<WriteReport, WriteFailure> {
        if !self.indexes_ready
            && let Err(e) = self.ensure_indexes().await
        {
            return Err(WriteFailure {
                remaining: batch.to_vec(),
                done: WriteReport::default(),
                reason: format!("creating indexes: {e}"),
            });
        }
        let mut report = WriteReport::default();
        // Group by collection, keeping order within each.
        let mut groups: Vec<(&'static str, Vec<&Record>)> = Vec::new();
        for r in batch {
            let c = collections::for_record(r);
            match groups.iter_mut().find(|(n, _)| *n == c) {
                Some((_, v)) => v.push(r),
                None => groups.push((c, vec![r])),
            }
        }
        let mut remaining: Vec<Record> = Vec::new();
        let mut reason = String::new();
        let mut groups = groups.into_iter();
        for (coll, group) in groups.by_ref() {
            let mut docs = Vec::with_capacity(group.len());
            let mut ok_records = Vec::with_capacity(group.len());
            for r in group {
                match document(r) {
                    Ok(d) if d.as_bytes().len() <= 16 * 1024 * 1024 => {
                        docs.push(d);
                        ok_records.push(r);
                    }
                    Ok(d) => report.rejected.push(Rejected::record(
                        r,
                        format!("document of {} bytes exceeds MongoDB's 16 MiB", d.as_bytes().len()),
                    )),
                    Err(e) => report.rejected.push(Rejected::record(r, format!("does not encode as BSON: {e}"))),
                }
            }
            if docs.is_empty() {
                continue;
            }
            let n = docs.len();
            match self.db.collection::<RawDocumentBuf>(coll).insert_many(docs).ordered(false).await {
                Ok(_) => report.written += n,
                Err(e) => match *e.kind {
                    ErrorKind::InsertMany(ref ime)
                        if ime.write_concern_error.is_none() && ime.write_errors.is_some() =>
                    {
                        let (dup, rejected, failed) = classify(ime, &ok_records);
                        report.duplicates += dup.len();
                        report.duplicate_keys.extend(dup);
                        report.written += n - failed.len();
                        report.rejected.extend(rejected);
                    }
                    _ => {
                        // Network, timeout, write concern: retry all of it (duplicates are harmless).
                        reason = format!("{coll}: {e}");
                        remaining.extend(ok_records.into_iter().cloned());
                        break;
                    }
                },
            }
        }
        for (_, group) in groups {
            remaining.extend(group.into_iter().cloned());
        }
        if remaining.is_empty() { Ok(report) } else { Err(WriteFailure { remaining, done: report, reason }) }
    }
}
