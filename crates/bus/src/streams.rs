//! Events and counts as Redis streams.
//!
//! [`StreamWriter`] queues items in memory (bounded) and appends them with `XADD MAXLEN ~`
//! in pipelined batches from a background task, retrying while Redis is away, so the
//! caller never blocks. [`StreamConsumer`] reads through a consumer group: first the
//! entries this consumer was given before a restart and never acknowledged, then entries
//! that a dead consumer left pending (`XAUTOCLAIM`), then new ones. An entry stays
//! pending until [`StreamConsumer::ack`], so nothing is lost while a reader restarts.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::{BusError, Context};

/// The one field of every stream entry: the item as JSON.
pub const DATA_FIELD: &str = "data";
/// Most items appended per pipeline.
const WRITE_BATCH: usize = 500;

enum Cmd<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

/// Counters of a [`StreamWriter`].
#[derive(Debug, Default)]
pub struct StreamWriterStats {
    pub written: AtomicU64,
    /// Items dropped because the in-memory buffer was full (Redis away for too long).
    pub dropped: AtomicU64,
    pub failures: AtomicU64,
}

/// Appends items to a stream from a background task.
pub struct StreamWriter<T> {
    tx: mpsc::Sender<Cmd<T>>,
    stats: Arc<StreamWriterStats>,
    stream: Arc<str>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for StreamWriter<T> {
    fn clone(&self) -> Self {
        StreamWriter { tx: self.tx.clone(), stats: self.stats.clone(), stream: self.stream.clone(), _t: PhantomData }
    }
}

impl<T: Serialize + Send + 'static> StreamWriter<T> {
    /// Starts the writer task for `stream`, capped at about `maxlen` entries, buffering up
    /// to `buffer` items while Redis is unreachable.
    pub fn spawn(client: redis::Client, stream: String, maxlen: u64, buffer: usize) -> Result<Self, BusError> {
        let conn = ConnectionManager::new_lazy_with_config(client, crate::manager_config())
            .context("stream writer connection")?;
        let (tx, rx) = mpsc::channel(buffer);
        let stats = Arc::new(StreamWriterStats::default());
        tokio::spawn(write_loop(conn, stream.clone(), maxlen, rx, stats.clone()));
        Ok(StreamWriter { tx, stats, stream: stream.into(), _t: PhantomData })
    }

    /// Queues an item; never blocks. If the buffer is full the item is dropped and counted.
    pub fn push(&self, item: T) {
        if self.tx.try_send(Cmd::Item(item)).is_err() {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(stream = %self.stream, dropped = n, "stream buffer full: items dropped");
            }
        }
    }

    /// Waits until everything queued so far is in Redis; false on timeout.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        let fut = async { self.tx.send(Cmd::Flush(done)).await.is_ok() && wait.await.is_ok() };
        tokio::time::timeout(timeout, fut).await.unwrap_or(false)
    }

    pub fn stats(&self) -> &StreamWriterStats {
        &self.stats
    }
}

async fn write_loop<T: Serialize>(
    mut conn: ConnectionManager,
    stream: String,
    maxlen: u64,
    mut rx: mpsc::Receiver<Cmd<T>>,
    stats: Arc<StreamWriterStats>,
) {
    let mut batch: Vec<String> = Vec::with_capacity(WRITE_BATCH);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Item(item) => match serde_json::to_string(&item) {
                    Ok(json) => batch.push(json),
                    Err(e) => tracing::error!(%stream, error = %e, "item does not serialize; skipped"),
                },
                Cmd::Flush(done) => flushes.push(done),
            }
            if batch.len() >= WRITE_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        let mut backoff = Duration::from_millis(50);
        while !batch.is_empty() {
            let mut pipe = redis::pipe();
            for json in &batch {
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(maxlen)
                    .arg("*")
                    .arg(DATA_FIELD)
                    .arg(json)
                    .ignore();
            }
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {
                    stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%stream, error = %e, "XADD failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// One entry read from a stream. A payload that does not parse is returned as an error
/// (with the raw text) so the reader can report it and acknowledge it, not crash on it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry<T> {
    pub id: String,
    pub value: Result<T, String>,
}

/// A consumer in a consumer group.
pub struct StreamConsumer {
    conn: ConnectionManager,
    stream: String,
    group: String,
    consumer: String,
    count: usize,
    block: Duration,
    min_idle: Duration,
    /// Where re-reading this consumer's own pending entries continues; None when done.
    own_pending: Option<String>,
    claim_cursor: String,
    last_claim: Option<Instant>,
    group_ready: bool,
}

impl StreamConsumer {
    pub(crate) fn new(client: redis::Client, stream: &str, group: &str, consumer: &str) -> Result<Self, BusError> {
        let block = Duration::from_secs(1);
        let config = crate::manager_config().set_response_timeout(Some(block + Duration::from_secs(5)));
        let conn = ConnectionManager::new_lazy_with_config(client, config).context("stream consumer connection")?;
        Ok(StreamConsumer {
            conn,
            stream: stream.to_string(),
            group: group.to_string(),
            consumer: consumer.to_string(),
            count: 500,
            block,
            min_idle: Duration::from_secs(30),
            own_pending: Some("0".into()),
            claim_cursor: "0-0".into(),
            last_claim: None,
            group_ready: false,
        })
    }

    /// Entries per read (default 500).
    pub fn with_count(mut self, count: usize) -> Self {
        self.count = count.max(1);
        self
    }

    /// How long a read waits for new entries (default 1 s).
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// How long an entry must sit unacknowledged with another consumer before this one
    /// claims it (default 30 s).
    pub fn with_min_idle(mut self, min_idle: Duration) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// Creates the group (reading from the start of the stream) if it does not exist.
    pub async fn ensure_group(&mut self) -> Result<(), BusError> {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e).context("XGROUP CREATE"),
        }
        self.group_ready = true;
        Ok(())
    }

    /// The next entries: own pending first, then claimed from dead consumers, then new.
    /// Returns an empty batch when nothing arrived within the block time.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Vec<StreamEntry<T>>, BusError> {
        if !self.group_ready {
            self.ensure_group().await?;
        }
        let result = self.read_inner().await;
        match result {
            Err(BusError::Redis { source, .. }) if source.code() == Some("NOGROUP") => {
                // The stream or group vanished (Redis restarted without persistence).
                self.group_ready = false;
                self.own_pending = Some("0".into());
                self.ensure_group().await?;
                Ok(Vec::new())
            }
            other => other.map(|entries| entries.into_iter().map(decode).collect()),
        }
    }

    async fn read_inner(&mut self) -> Result<Vec<(String, Option<String>)>, BusError> {
        if let Some(from) = self.own_pending.clone() {
            let reply: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(self.count)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(&from)
                .query_async(&mut self.conn)
                .await
                .context("XREADGROUP pending")?;
            let entries = parse_read_reply(reply)?;
            match entries.last() {
                None => self.own_pending = None,
                Some((last, _)) => {
                    self.own_pending = Some(last.clone());
                    // Entries trimmed away while pending come back without a payload;
                    // they are returned too so the caller acknowledges them.
                    return Ok(entries);
                }
            }
        }
        let claim_due = self.claim_cursor != "0-0" || self.last_claim.is_none_or(|t| t.elapsed() >= self.min_idle / 2);
        if claim_due {
            self.last_claim = Some(Instant::now());
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(self.min_idle.as_millis() as u64)
                .arg(&self.claim_cursor)
                .arg("COUNT")
                .arg(self.count)
                .query_async(&mut self.conn)
                .await
                .context("XAUTOCLAIM")?;
            let (next, mut claimed, deleted) = parse_autoclaim_reply(reply)?;
            self.claim_cursor = next;
            claimed.extend(deleted.into_iter().map(|id| (id, None)));
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.count)
            .arg("BLOCK")
            .arg(self.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.conn)
            .await
            .context("XREADGROUP")?;
        parse_read_reply(reply)
    }

    /// Acknowledges entries; returns how many were pending.
    pub async fn ack(&mut self, ids: &[String]) -> Result<usize, BusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let n: usize = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(ids)
            .query_async(&mut self.conn)
            .await
            .context("XACK")?;
        Ok(n)
    }

    /// Number of entries pending (delivered, not acknowledged) in the whole group.
    pub async fn pending_count(&mut self) -> Result<u64, BusError> {
        let reply: Value = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .query_async(&mut self.conn)
            .await
            .context("XPENDING")?;
        match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(n)) => Ok(*n as u64),
                _ => Ok(0),
            },
            _ => Ok(0),
        }
    }
}

fn decode<T: DeserializeOwned>((id, payload): (String, Option<String>)) -> StreamEntry<T> {
    let value = match payload {
        None => Err("entry has no data (trimmed from the stream before it was acknowledged)".to_string()),
        Some(raw) => serde_json::from_str(&raw).map_err(|e| {
            let sample: String = raw.chars().take(200).collect();
            format!("malformed entry: {e}; payload starts {sample:?}")
        }),
    };
    StreamEntry { id, value }
}

fn malformed(message: impl Into<String>) -> BusError {
    BusError::Malformed { what: "stream reply".into(), message: message.into() }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// `[id, [field, value, ...] | nil]` → (id, data field).
fn parse_entry(v: &Value) -> Result<(String, Option<String>), BusError> {
    let Value::Array(parts) = v else { return Err(malformed("entry is not an array")) };
    let id = parts.first().and_then(as_string).ok_or_else(|| malformed("entry without id"))?;
    let data = match parts.get(1) {
        Some(Value::Array(fv)) => fv
            .chunks(2)
            .find(|c| c.first().and_then(as_string).as_deref() == Some(DATA_FIELD))
            .and_then(|c| c.get(1).and_then(as_string)),
        Some(Value::Map(fv)) => {
            fv.iter().find(|(k, _)| as_string(k).as_deref() == Some(DATA_FIELD)).and_then(|(_, v)| as_string(v))
        }
        _ => None,
    };
    Ok((id, data))
}

fn parse_entries(v: &Value) -> Result<Vec<(String, Option<String>)>, BusError> {
    match v {
        Value::Array(items) => items.iter().map(parse_entry).collect(),
        Value::Nil => Ok(Vec::new()),
        _ => Err(malformed("entries are not an array")),
    }
}

/// XREAD/XREADGROUP reply for one stream.
fn parse_read_reply(reply: Value) -> Result<Vec<(String, Option<String>)>, BusError> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in &streams {
                let Value::Array(kv) = s else { return Err(malformed("stream is not an array")) };
                if let Some(entries) = kv.get(1) {
                    out.extend(parse_entries(entries)?);
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, entries) in &streams {
                out.extend(parse_entries(entries)?);
            }
            Ok(out)
        }
        other => Err(malformed(format!("unexpected reply {other:?}"))),
    }
}

/// XAUTOCLAIM reply: (next cursor, claimed entries, deleted ids).
#[allow(clippy::type_complexity)]
fn parse_autoclaim_reply(reply: Value) -> Result<(String, Vec<(String, Option<String>)>, Vec<String>), BusError> {
    let Value::Array(parts) = reply else { return Err(malformed("XAUTOCLAIM reply is not an array")) };
    let next = parts.first().and_then(as_string).ok_or_else(|| malformed("XAUTOCLAIM without cursor"))?;
    let claimed = match parts.get(1) {
        Some(v) => parse_entries(v)?.into_iter().collect(),
        None => Vec::new(),
    };
    let deleted = match parts.get(2) {
        Some(Value::Array(ids)) => ids.iter().filter_map(as_string).collect(),
        _ => Vec::new(),
    };
    Ok((next, claimed, deleted))
}

/// Reads up to `count` entries of a stream from its start, without a consumer group
/// (nothing is acknowledged or claimed): for status pages, tools and tests.
pub(crate) async fn peek<T: DeserializeOwned>(
    conn: &mut ConnectionManager,
    stream: &str,
    count: usize,
) -> Result<Vec<StreamEntry<T>>, BusError> {
    let reply: Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .context("XRANGE")?;
    Ok(parse_entries(&reply)?.into_iter().map(decode).collect())
}
