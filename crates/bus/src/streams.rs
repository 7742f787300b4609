//! Events and counts as Redis streams.
//!
//! [`StreamWriter`] appends items with `XADD MAXLEN ~` in pipelined batches from a
//! background task, retrying while Redis is away, so the caller never blocks. With an
//! **outbox** (a journal of its own process) every item is on disk before `push`
//! returns, and stays there until the stream's reader group (cashtag-log) has read and
//! acknowledged it: the writer asks Redis every second how far the group got. If Redis
//! loses the stream (a restart without persistence, a flush), the unconfirmed items are
//! sent again; readers store by the item's own id, so nothing is stored twice. Without an
//! outbox (command-line tools) items wait in a bounded memory buffer.
//!
//! [`StreamConsumer`] reads through a consumer group: first the entries this consumer was
//! given before a restart and never acknowledged, then entries that a dead consumer left
//! pending (`XAUTOCLAIM`), then new ones. An entry stays pending until
//! [`StreamConsumer::ack`], so nothing is lost while a reader restarts.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cashtag_journal::{Batch, Journal, Reader};
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
/// How often an outbox asks Redis how far the reader group got.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);

enum Cmd {
    Item(String),
    Flush(oneshot::Sender<()>),
}

/// Counters of a [`StreamWriter`].
#[derive(Debug, Default)]
pub struct StreamWriterStats {
    pub written: AtomicU64,
    /// Items dropped because the memory buffer was full (Redis away for too long, and no
    /// room in the outbox).
    pub dropped: AtomicU64,
    pub failures: AtomicU64,
    /// Items sent again after Redis lost them.
    pub resent: AtomicU64,
    /// Items the reader group acknowledged (with an outbox).
    pub confirmed: AtomicU64,
}

/// Where a writer keeps items until the reader group has them.
#[derive(Clone)]
pub struct Outbox {
    pub journal: Journal,
    /// The reader group whose acknowledgement confirms an item.
    pub group: String,
}

/// Appends items to a stream from a background task.
pub struct StreamWriter<T> {
    tx: mpsc::Sender<Cmd>,
    outbox: Option<Journal>,
    outbox_failing: Arc<AtomicBool>,
    stats: Arc<StreamWriterStats>,
    stream: Arc<str>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for StreamWriter<T> {
    fn clone(&self) -> Self {
        StreamWriter {
            tx: self.tx.clone(),
            outbox: self.outbox.clone(),
            outbox_failing: self.outbox_failing.clone(),
            stats: self.stats.clone(),
            stream: self.stream.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Serialize + Send + 'static> StreamWriter<T> {
    /// Starts the writer task for `stream`, capped at about `maxlen` entries, buffering up
    /// to `buffer` items in memory while Redis is unreachable (and the outbox, if any, is
    /// full).
    pub fn spawn(
        client: redis::Client,
        stream: String,
        cap: StreamCap,
        buffer: usize,
        outbox: Option<Outbox>,
    ) -> Result<Self, BusError> {
        let conn = ConnectionManager::new_lazy_with_config(client, crate::manager_config())
            .context("stream writer connection")?;
        let (tx, rx) = mpsc::channel(buffer);
        let stats = Arc::new(StreamWriterStats::default());
        let journal = outbox.as_ref().map(|o| o.journal.clone());
        let task = WriteLoop {
            conn,
            stream: stream.clone(),
            cap,
            trim_len: cap.maxlen,
            measured: None,
            written_since: 0,
            stats: stats.clone(),
            outbox: outbox.map(|o| OutboxState {
                reader: o.journal.reader(OUTBOX_READER),
                group: o.group,
                unconfirmed: VecDeque::new(),
                last_confirm: Instant::now(),
                run_id: None,
            }),
        };
        tokio::spawn(task.run(rx));
        Ok(StreamWriter {
            tx,
            outbox: journal,
            outbox_failing: Arc::default(),
            stats,
            stream: stream.into(),
            _t: PhantomData,
        })
    }

    /// Queues an item; never blocks on the network. With an outbox the item is on disk
    /// when this returns.
    pub fn push(&self, item: T) {
        let json = match serde_json::to_string(&item) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(stream = %self.stream, error = %e, "item does not serialize; skipped");
                return;
            }
        };
        if let Some(j) = &self.outbox {
            match j.append([(1u8, json.as_bytes())]) {
                Ok(_) => {
                    self.outbox_failing.store(false, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    if !self.outbox_failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(stream = %self.stream, error = %e, "outbox cannot take items; keeping them in memory");
                    }
                }
            }
        }
        if self.tx.try_send(Cmd::Item(json)).is_err() {
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

/// The name of the outbox journal's one reader.
pub const OUTBOX_READER: &str = "redis";

struct OutboxState {
    reader: Reader,
    group: String,
    /// Sent batches not yet confirmed, with the stream id of their last entry.
    unconfirmed: VecDeque<(Batch, (u64, u64))>,
    last_confirm: Instant,
    /// The Redis server's run id when the unconfirmed batches were sent.
    run_id: Option<String>,
}

struct WriteLoop {
    conn: ConnectionManager,
    stream: String,
    cap: StreamCap,
    /// The `MAXLEN ~` the writes use: the entry cap, lower while the stream is over its
    /// memory cap.
    trim_len: u64,
    /// When the stream's memory was last measured, and entries written since.
    measured: Option<Instant>,
    written_since: u64,
    stats: Arc<StreamWriterStats>,
    outbox: Option<OutboxState>,
}

/// A stream id `ms-seq` as a comparable pair.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// How large a stream may grow: entries (`MAXLEN ~`) and memory in Redis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamCap {
    pub maxlen: u64,
    /// 0: no memory cap.
    pub max_bytes: u64,
}

impl StreamCap {
    /// A cap of entries and of MiB.
    pub fn new(maxlen: u64, max_mb: u64) -> Self {
        StreamCap { maxlen, max_bytes: max_mb * 1024 * 1024 }
    }
}

/// How often a writer measures its stream's memory.
const MEASURE_EVERY: Duration = Duration::from_secs(5);
/// … or every this many entries written.
const MEASURE_ENTRIES: u64 = 2_000;
/// The fewest entries a memory cap trims a stream to.
const MIN_TRIM_LEN: u64 = 1_000;

impl WriteLoop {
    /// Measures the stream (every [`MEASURE_EVERY`] or [`MEASURE_ENTRIES`] entries written,
    /// whichever comes first) and, when it is over its
    /// memory cap, lowers the `MAXLEN` of the writes to what fits in 90% of it (from the
    /// entries' average size) and trims at once. Every writer of a stream does the same,
    /// so the cap holds whoever writes.
    async fn keep_under_memory_cap(&mut self) {
        let recent = self.measured.is_some_and(|t| t.elapsed() < MEASURE_EVERY);
        if self.cap.max_bytes == 0 || (recent && self.written_since < MEASURE_ENTRIES) {
            return;
        }
        self.measured = Some(Instant::now());
        self.written_since = 0;
        let measured: Result<(Option<u64>, u64), _> = redis::pipe()
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&self.stream)
            .arg("SAMPLES")
            .arg(64)
            .cmd("XLEN")
            .arg(&self.stream)
            .query_async(&mut self.conn)
            .await;
        let Ok((Some(bytes), len)) = measured else { return };
        if bytes == 0 || len == 0 {
            return;
        }
        let fits = (len as f64 * 0.9 * self.cap.max_bytes as f64 / bytes as f64) as u64;
        let trim_len = fits.clamp(MIN_TRIM_LEN, self.cap.maxlen.max(MIN_TRIM_LEN)).min(self.cap.maxlen);
        if trim_len != self.trim_len && (bytes > self.cap.max_bytes || trim_len > self.trim_len) {
            if bytes > self.cap.max_bytes {
                tracing::warn!(
                    stream = %self.stream, bytes, max_bytes = self.cap.max_bytes, entries = len, keep = trim_len,
                    "the stream is over its memory cap: the oldest entries are trimmed"
                );
                let trimmed: Result<u64, _> = redis::cmd("XTRIM")
                    .arg(&self.stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(trim_len)
                    .query_async(&mut self.conn)
                    .await;
                if let Err(e) = trimmed {
                    tracing::debug!(stream = %self.stream, error = %e, "XTRIM failed");
                }
            }
            self.trim_len = trim_len;
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut memory: Vec<String> = Vec::new();
        loop {
            let outbox_unread = self.outbox.as_ref().is_some_and(|o| o.reader.has_unread());
            if memory.is_empty() && !outbox_unread {
                for f in flushes.drain(..) {
                    let _ = f.send(());
                }
                let wait_outbox = async {
                    match self.outbox.as_mut() {
                        Some(o) => o.reader.wait().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        Some(Cmd::Item(j)) => memory.push(j),
                        Some(Cmd::Flush(f)) => flushes.push(f),
                        None => return,
                    },
                    _ = wait_outbox => {}
                    _ = tokio::time::sleep(CONFIRM_EVERY) => {}
                }
            }
            while memory.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(Cmd::Item(j)) => memory.push(j),
                    Ok(Cmd::Flush(f)) => flushes.push(f),
                    Err(_) => break,
                }
            }
            if !memory.is_empty() {
                let batch = std::mem::take(&mut memory);
                self.send(&batch).await;
            }
            self.send_outbox().await;
            self.confirm().await;
        }
    }

    /// XADDs items (retrying until Redis takes them); returns their stream ids.
    async fn send(&mut self, items: &[String]) -> Vec<String> {
        let mut backoff = cashtag_core::Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            let mut pipe = redis::pipe();
            for json in items {
                pipe.cmd("XADD")
                    .arg(&self.stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.trim_len)
                    .arg("*")
                    .arg(DATA_FIELD)
                    .arg(json);
            }
            match pipe.query_async::<Vec<String>>(&mut self.conn).await {
                Ok(ids) => {
                    self.stats.written.fetch_add(items.len() as u64, Ordering::Relaxed);
                    self.written_since += items.len() as u64;
                    self.keep_under_memory_cap().await;
                    return ids;
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(stream = %self.stream, error = %e, "XADD failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Sends what the outbox holds beyond what was sent already.
    async fn send_outbox(&mut self) {
        loop {
            let Some(o) = self.outbox.as_mut() else { return };
            if !o.reader.has_unread() {
                return;
            }
            let batch = match o.reader.read(WRITE_BATCH) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(stream = %self.stream, error = %e, "cannot read the outbox");
                    return;
                }
            };
            // The outbox is the events' own way out, so what it had to skip goes to the log.
            for d in &batch.damages {
                tracing::error!(
                    stream = %self.stream,
                    segment = d.segment,
                    offset = d.offset,
                    skipped = d.skipped,
                    reason = %d.reason,
                    "the outbox skipped damaged data"
                );
            }
            let items: Vec<String> = batch.items().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
            if items.is_empty() {
                self.outbox.as_mut().expect("outbox").unconfirmed.push_back((batch, (0, 0)));
                continue;
            }
            if self.outbox.as_ref().expect("outbox").run_id.is_none() {
                let id = self.run_id().await;
                self.outbox.as_mut().expect("outbox").run_id = id;
            }
            let ids = self.send(&items).await;
            let last = ids.last().and_then(|i| parse_id(i)).unwrap_or((u64::MAX, u64::MAX));
            self.outbox.as_mut().expect("outbox").unconfirmed.push_back((batch, last));
        }
    }

    async fn run_id(&mut self) -> Option<String> {
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut self.conn).await.ok()?;
        info.lines().find_map(|l| l.strip_prefix("run_id:")).map(|s| s.trim().to_string())
    }

    /// Commits the outbox past what the reader group has read and acknowledged; sends the
    /// rest again if Redis lost it.
    async fn confirm(&mut self) {
        let Some(o) = self.outbox.as_ref() else { return };
        if o.unconfirmed.is_empty() || o.last_confirm.elapsed() < CONFIRM_EVERY {
            return;
        }
        let group = o.group.clone();
        let sent_run = o.run_id.clone();
        // The group's progress counts only on the server the batches were sent to, and only
        // if that server did not restart while it was asked (run ids before and after).
        let before = self.run_id().await;
        let progress = self.group_progress(&group).await;
        let after = self.run_id().await;
        let (upto, lost) = match confirmation(sent_run.as_deref(), before.as_deref(), after.as_deref(), progress) {
            Confirmation::Upto(upto) => (Some(upto), false),
            Confirmation::Nothing => (None, false),
            Confirmation::Lost => (None, true),
        };
        let o = self.outbox.as_mut().expect("outbox");
        if let Some(upto) = upto {
            let mut last = None;
            while o.unconfirmed.front().is_some_and(|(_, id)| *id <= upto) {
                last = o.unconfirmed.pop_front().map(|(b, _)| b);
                if let Some(b) = &last {
                    self.stats.confirmed.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
            }
            if let Some(b) = last
                && let Err(e) = o.reader.commit_async(&b).await
            {
                tracing::warn!(stream = %self.stream, error = %e, "cannot commit the outbox");
            }
        }
        o.last_confirm = Instant::now();
        if lost && !o.unconfirmed.is_empty() {
            let n: usize = o.unconfirmed.iter().map(|(b, _)| b.len()).sum();
            tracing::warn!(stream = %self.stream, items = n, "Redis lost the stream; sending unconfirmed items again");
            self.stats.resent.fetch_add(n as u64, Ordering::Relaxed);
            o.unconfirmed.clear();
            o.reader.rewind();
            o.run_id = after;
        }
    }

    /// How far the group has read *and* acknowledged: everything up to the returned id.
    async fn group_progress(&mut self, group: &str) -> Result<Option<(u64, u64)>, StreamGone> {
        let reply: Result<Value, _> =
            redis::cmd("XINFO").arg("GROUPS").arg(&self.stream).query_async(&mut self.conn).await;
        let groups = match reply {
            Ok(Value::Array(g)) => g,
            Ok(_) => return Ok(None),
            Err(e) if e.to_string().contains("no such key") => return Err(StreamGone),
            Err(_) => return Ok(None),
        };
        let mut last_delivered = None;
        let mut pending = 0i64;
        for g in groups {
            let fields = match g {
                Value::Array(f) => f,
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => continue,
            };
            let mut name = None;
            let mut last = None;
            let mut pend = 0;
            for pair in fields.chunks(2) {
                let (Some(k), Some(v)) = (pair.first().and_then(as_string), pair.get(1)) else { continue };
                match k.as_str() {
                    "name" => name = as_string(v),
                    "last-delivered-id" => last = as_string(v),
                    "pending" => pend = if let Value::Int(i) = v { *i } else { 0 },
                    _ => {}
                }
            }
            if name.as_deref() == Some(group) {
                last_delivered = last.and_then(|l| parse_id(&l));
                pending = pend;
            }
        }
        let Some(last) = last_delivered else { return Ok(None) };
        if pending == 0 {
            return Ok(Some(last));
        }
        // The oldest entry still pending (read, not acknowledged) bounds the confirmation.
        let reply: Result<Value, _> =
            redis::cmd("XPENDING").arg(&self.stream).arg(group).query_async(&mut self.conn).await;
        let min = match reply {
            Ok(Value::Array(parts)) => parts.get(1).and_then(as_string).and_then(|s| parse_id(&s)),
            _ => None,
        };
        Ok(min
            .map(|(ms, seq)| if seq > 0 { (ms, seq - 1) } else { (ms.saturating_sub(1), u64::MAX) })
            .map(|m| m.min(last)))
    }
}

/// The stream no longer exists.
struct StreamGone;

/// What one confirmation round may conclude about the sent, unconfirmed batches.
#[derive(Debug, PartialEq)]
enum Confirmation {
    /// Everything up to this stream id is read and acknowledged.
    Upto((u64, u64)),
    /// Nothing can be concluded this round (Redis unreachable, no reader group yet).
    Nothing,
    /// Redis lost them: send them again.
    Lost,
}

/// Decides a confirmation round from the Redis run id the batches were sent under, the run
/// ids before and after asking for the group's progress, and that progress.
///
/// A server that restarted (another run id) lost what was sent to it unless it persisted
/// it, and its reader group's progress is about entries of the new run: stream ids are
/// times, so a group that read one new entry would seem to have read every older one. So
/// a changed run id confirms nothing and sends everything again (readers store by the
/// item's own id: a copy that survived is not stored twice). (The soak found this: an
/// event sent just before Redis restarted empty was confirmed by a reader group that had
/// read a newer entry of the new run.)
fn confirmation(
    sent: Option<&str>,
    before: Option<&str>,
    after: Option<&str>,
    progress: Result<Option<(u64, u64)>, StreamGone>,
) -> Confirmation {
    let (Some(before), Some(after)) = (before, after) else { return Confirmation::Nothing };
    // (Batches sent while the run id could not be read went who knows where: again.)
    if before != after || sent != Some(before) {
        return Confirmation::Lost;
    }
    match progress {
        Ok(Some(upto)) => Confirmation::Upto(upto),
        Ok(None) => Confirmation::Nothing,
        Err(StreamGone) => Confirmation::Lost,
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

/// Reads up to `count` entries of a stream without a consumer group (nothing is
/// acknowledged or claimed), from its start, or with `newest_first` from its end: for
/// status pages, tools and tests.
pub(crate) async fn peek<T: DeserializeOwned>(
    conn: &mut ConnectionManager,
    stream: &str,
    count: usize,
    newest_first: bool,
) -> Result<Vec<StreamEntry<T>>, BusError> {
    let (command, from, to) = if newest_first { ("XREVRANGE", "+", "-") } else { ("XRANGE", "-", "+") };
    let reply: Value = redis::cmd(command)
        .arg(stream)
        .arg(from)
        .arg(to)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .context(command)?;
    Ok(parse_entries(&reply)?.into_iter().map(decode).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_only_on_the_server_the_batches_went_to() {
        let p = || Ok(Some((200, 0)));
        assert_eq!(confirmation(Some("a"), Some("a"), Some("a"), p()), Confirmation::Upto((200, 0)));
        // Redis restarted since the batches were sent: the new run's progress says nothing.
        assert_eq!(confirmation(Some("a"), Some("b"), Some("b"), p()), Confirmation::Lost);
        // ... or while its progress was asked.
        assert_eq!(confirmation(Some("a"), Some("a"), Some("b"), p()), Confirmation::Lost);
        // Sent while the run id was unknown: sent again.
        assert_eq!(confirmation(None, Some("a"), Some("a"), p()), Confirmation::Lost);
        // Redis unreachable: nothing concluded.
        assert_eq!(confirmation(Some("a"), None, Some("a"), p()), Confirmation::Nothing);
        assert_eq!(confirmation(Some("a"), Some("a"), None, p()), Confirmation::Nothing);
        assert_eq!(confirmation(Some("a"), Some("a"), Some("a"), Ok(None)), Confirmation::Nothing);
        assert_eq!(confirmation(Some("a"), Some("a"), Some("a"), Err(StreamGone)), Confirmation::Lost);
    }
}
