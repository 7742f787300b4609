//! The events and counts collections: exactly-once storage (an event's own id, or the
//! stream entry id for older producers, is the `_id`; a count sample's natural key is its
//! `_id`), retention by TTL index, a `dead_letters` collection for what the server refuses,
//! and the queries behind `tail` and `counts`.

use std::time::Duration;

use bson::{RawDocumentBuf, doc};
use cashtag_core::bsondoc::with_id;
use cashtag_core::{CountSample, Event, EventKind, collections};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::error::ErrorKind;
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};

const DUPLICATE_KEY: i32 = 11000;
/// The largest document MongoDB stores.
const MAX_DOCUMENT: usize = 16 * 1024 * 1024;

/// A count sample as stored: with the change from the previous minute.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCount {
    pub sample: CountSample,
    /// `count` minus the same source/ticker/kind/instance's count of the previous minute,
    /// if known.
    pub delta: Option<i64>,
}

impl StoredCount {
    fn document(&self, id: &str) -> Option<RawDocumentBuf> {
        let mut d = with_id(id, &self.sample).ok()?;
        match self.delta {
            Some(v) => d.append("delta", v),
            None => d.append("delta", bson::RawBson::Null),
        }
        Some(d)
    }

    fn from_raw(d: &RawDocumentBuf) -> Option<Self> {
        let sample: CountSample = bson::from_slice(d.as_bytes()).ok()?;
        Some(StoredCount { sample, delta: d.get_i64("delta").ok() })
    }
}

/// An event as stored, with its stream entry id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: String,
    pub event: Event,
}

pub struct LogStore {
    db: Database,
}

impl LogStore {
    pub fn new(client: &Client, database: &str) -> Self {
        LogStore { db: client.database(database) }
    }

    /// The database it stores in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn events(&self) -> Collection<RawDocumentBuf> {
        self.db.collection(collections::EVENTS)
    }

    fn counts(&self) -> Collection<RawDocumentBuf> {
        self.db.collection(collections::COUNTS)
    }

    /// Time and service indexes, and TTL indexes that delete entries older than `retention`.
    pub async fn ensure_indexes(&self, retention: Duration) -> Result<(), mongodb::error::Error> {
        let ttl = IndexOptions::builder().expire_after(retention).build();
        self.events().create_index(IndexModel::builder().keys(doc! {"at": 1}).options(ttl.clone()).build()).await?;
        self.events().create_index(IndexModel::builder().keys(doc! {"service": 1, "at": 1}).build()).await?;
        self.events().create_index(IndexModel::builder().keys(doc! {"kind": 1, "at": 1}).build()).await?;
        self.counts().create_index(IndexModel::builder().keys(doc! {"minute": 1}).options(ttl).build()).await?;
        self.counts()
            .create_index(IndexModel::builder().keys(doc! {"source": 1, "ticker": 1, "kind": 1, "minute": 1}).build())
            .await?;
        Ok(())
    }

    fn dead_letters(&self) -> Collection<bson::Document> {
        self.db.collection(collections::DEAD_LETTERS)
    }

    /// Inserts documents, duplicates counting as stored; a document the server refuses
    /// for good (too large, an invalid field name) goes to `dead_letters` instead, so it
    /// never blocks the stream. Errors only when the server could not be asked.
    async fn insert(
        &self,
        coll: Collection<RawDocumentBuf>,
        docs: Vec<(String, RawDocumentBuf)>,
        refused: Vec<(String, String)>,
    ) -> Result<usize, mongodb::error::Error> {
        let mut dead: Vec<(String, String)> = refused;
        // A document larger than the server accepts is refused before it is sent.
        let (docs, too_large): (Vec<_>, Vec<_>) =
            docs.into_iter().partition(|(_, d)| d.as_bytes().len() <= MAX_DOCUMENT);
        for (id, d) in &too_large {
            dead.push((id.clone(), format!("document of {} bytes exceeds MongoDB's 16 MiB", d.as_bytes().len())));
        }
        let n = docs.len();
        let mut stored = n;
        if !docs.is_empty() {
            let ids: Vec<String> = docs.iter().map(|(id, _)| id.clone()).collect();
            let raws: Vec<RawDocumentBuf> = docs.iter().map(|(_, d)| d.clone()).collect();
            match coll.insert_many(raws).ordered(false).await {
                Ok(_) => {}
                Err(e) => match *e.kind {
                    ErrorKind::InsertMany(ref ime)
                        if ime.write_concern_error.is_none() && ime.write_errors.is_some() =>
                    {
                        for we in ime.write_errors.iter().flatten() {
                            // Not newly stored: already there (a duplicate), or refused.
                            stored -= 1;
                            if we.code != DUPLICATE_KEY {
                                let id = ids.get(we.index).cloned().unwrap_or_default();
                                dead.push((id, format!("MongoDB error {}: {}", we.code, we.message)));
                            }
                        }
                    }
                    _ => return Err(e),
                },
            }
        }
        for (id, reason) in &dead {
            let doc = docs.iter().chain(&too_large).find(|(i, _)| i == id).map(|(_, d)| d);
            let text =
                doc.map(|d| String::from_utf8_lossy(&d.as_bytes()[..d.as_bytes().len().min(64 * 1024)]).into_owned());
            self.bury(coll.name(), id, reason, &text.unwrap_or_default()).await?;
        }
        Ok(stored)
    }

    /// Keeps what could not be stored, with why, for an operator to look at.
    async fn bury(&self, collection: &str, id: &str, reason: &str, text: &str) -> Result<(), mongodb::error::Error> {
        let text: String = text.chars().take(100_000).collect();
        let doc = doc! {"_id": format!("{collection}:{id}"), "collection": collection, "entry": id, "reason": reason, "text": text, "at": bson::DateTime::now()};
        match self.dead_letters().insert_one(doc).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(*e.kind, ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref we)) if we.code == DUPLICATE_KEY) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Stores events keyed by their id (the stream entry id for events without one);
    /// returns how many were new (duplicates are fine).
    pub async fn store_events(&self, entries: &[(String, Event)]) -> Result<usize, mongodb::error::Error> {
        let mut docs = Vec::with_capacity(entries.len());
        let mut refused = Vec::new();
        for (stream_id, e) in entries {
            let id = if e.id.is_empty() { stream_id.as_str() } else { e.id.as_str() };
            match with_id(id, e) {
                Ok(mut d) => {
                    d.append("stream_id", stream_id.as_str());
                    docs.push((id.to_string(), d));
                }
                Err(err) => refused.push((id.to_string(), err.to_string())),
            }
        }
        self.insert(self.events(), docs, refused).await
    }

    /// Stores count samples keyed by their id (the stream entry id for samples without
    /// one), so a sample sent twice is stored once.
    pub async fn store_counts(&self, entries: &[(String, StoredCount)]) -> Result<usize, mongodb::error::Error> {
        let mut docs = Vec::with_capacity(entries.len());
        let mut refused = Vec::new();
        for (stream_id, c) in entries {
            let id = if c.sample.id.is_empty() { stream_id.clone() } else { c.sample.id.clone() };
            match c.document(&id) {
                Some(d) => docs.push((id, d)),
                None => refused.push((id, "does not encode as BSON".into())),
            }
        }
        self.insert(self.counts(), docs, refused).await
    }

    /// The stored count of the same source, ticker, kind and instance for a minute.
    pub async fn count_at(&self, s: &CountSample, minute: DateTime<Utc>) -> Result<Option<u64>, mongodb::error::Error> {
        let filter = doc! {
            "source": &s.source,
            "ticker": s.ticker.as_ref().map(|t| t.to_string()),
            "kind": s.kind.as_str(),
            "instance": &s.instance,
            "minute": bson::DateTime::from_chrono(minute),
        };
        let found = self.counts().find_one(filter).await?;
        Ok(found.as_ref().and_then(StoredCount::from_raw).map(|c| c.sample.count))
    }

    /// Events from `since`, oldest first, at most `limit` (the newest ones when cut).
    pub async fn events_since(
        &self,
        since: DateTime<Utc>,
        service: Option<&str>,
        kind: Option<EventKind>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, mongodb::error::Error> {
        let mut filter = doc! {"at": {"$gte": bson::DateTime::from_chrono(since)}};
        if let Some(s) = service {
            filter.insert("service", s);
        }
        if let Some(k) = kind {
            filter.insert("kind", k.as_str());
        }
        let cursor = self.events().find(filter).sort(doc! {"at": -1, "_id": -1}).limit(limit as i64).await?;
        let raw: Vec<RawDocumentBuf> = cursor.try_collect().await?;
        let mut out: Vec<StoredEvent> = raw
            .into_iter()
            .filter_map(|d| {
                let id = d.get_str("_id").ok()?.to_string();
                let event: Event = bson::from_slice(d.as_bytes()).ok()?;
                Some(StoredEvent { id, event })
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    /// Count samples from `since`, filtered, oldest first.
    pub async fn counts_since(
        &self,
        since: DateTime<Utc>,
        source: Option<&str>,
        ticker: Option<&str>,
    ) -> Result<Vec<StoredCount>, mongodb::error::Error> {
        let mut filter = doc! {"minute": {"$gte": bson::DateTime::from_chrono(since)}};
        if let Some(s) = source {
            filter.insert("source", s);
        }
        if let Some(t) = ticker {
            filter.insert("ticker", t);
        }
        let cursor = self.counts().find(filter).sort(doc! {"minute": 1}).await?;
        let raw: Vec<RawDocumentBuf> = cursor.try_collect().await?;
        Ok(raw.iter().filter_map(StoredCount::from_raw).collect())
    }
}
