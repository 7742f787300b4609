//! The events and counts collections: exactly-once storage (the stream entry id is the
//! `_id`), retention by TTL index, and the queries behind `tail` and `counts`.

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

    async fn insert(
        coll: Collection<RawDocumentBuf>,
        docs: Vec<RawDocumentBuf>,
    ) -> Result<usize, mongodb::error::Error> {
        if docs.is_empty() {
            return Ok(0);
        }
        let n = docs.len();
        match coll.insert_many(docs).ordered(false).await {
            Ok(_) => Ok(n),
            Err(e) => match *e.kind {
                ErrorKind::InsertMany(ref ime)
                    if ime.write_concern_error.is_none()
                        && ime.write_errors.as_ref().is_some_and(|w| w.iter().all(|we| we.code == DUPLICATE_KEY)) =>
                {
                    Ok(n - ime.write_errors.as_ref().map_or(0, |w| w.len()))
                }
                _ => Err(e),
            },
        }
    }

    /// Stores events keyed by stream id; returns how many were new (duplicates are fine).
    pub async fn store_events(&self, entries: &[(String, Event)]) -> Result<usize, mongodb::error::Error> {
        let docs = entries.iter().filter_map(|(id, e)| with_id(id, e).ok()).collect();
        Self::insert(self.events(), docs).await
    }

    pub async fn store_counts(&self, entries: &[(String, StoredCount)]) -> Result<usize, mongodb::error::Error> {
        let docs = entries.iter().filter_map(|(id, c)| c.document(id)).collect();
        Self::insert(self.counts(), docs).await
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
