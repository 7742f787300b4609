//! cashtag-journal: the write-ahead journal of a fetcher.
//!
//! A record is *accepted* when it is in the journal: the intake appends every group of
//! records it receives as one checksummed frame (group commit) before anything else sees
//! them, and each sink reads the journal at its own pace through its own cursor. So a
//! `kill -9` loses nothing that was appended (the kernel has the bytes once `write`
//! returned; `fsync` policy decides what survives a power loss), a slow or stalled sink
//! never holds up another sink or the source, and on restart each sink resumes where it
//! had committed.
//!
//! Layout of the directory (one process only: [`lock`]):
//! - `seg-<n>.log`: append-only segments of [`frame`]s; `n` only ever grows, so a cursor
//!   can never point into a newer segment that reused its number;
//! - `cursor-<reader>`: the reader's committed position (segment, offset, entries of that
//!   frame already delivered) with a checksum, replaced atomically;
//! - `LOCK`: held with `flock` for the life of the process.
//!
//! Failures it survives: a failed write (ENOSPC, EIO) is truncated back, so no partial
//! frame stays; a torn tail after a crash is cut at open; a damaged frame is skipped by
//! readers (reported as [`Damage`]) and the rest of the segment is read; a missing
//! segment is reported and skipped; directory entries are fsynced after every create,
//! rename and delete. A segment is deleted once every reader is past it. The journal is
//! bounded: an append beyond `max_bytes` fails with [`JournalError::Full`].

pub mod frame;
pub mod lock;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::frame::At;

/// When appended frames are flushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fsync {
    /// After every append: survives a power loss, costs one fsync per group commit.
    Always,
    /// At most this long after an append (and at every rotation).
    Interval(Duration),
    /// Left to the operating system: survives `kill -9`, not a power loss.
    Never,
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// A segment is closed when the next frame would make it larger than this.
    pub segment_bytes: u64,
    /// Appends fail with [`JournalError::Full`] beyond this many bytes on disk.
    pub max_bytes: u64,
    pub fsync: Fsync,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal directory {dir} is in use by {holder}; every process needs a directory of its own")]
    Locked { dir: String, holder: String },
    #[error("the journal is full ({bytes} of {max} bytes); intake waits until the sinks catch up")]
    Full { bytes: u64, max: u64 },
    #[error("a frame of {size} bytes does not fit a segment of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("journal: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl JournalError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        JournalError::Io { what, path: path.display().to_string(), source }
    }

    /// The disk is full or failing (as opposed to the journal's own limit).
    pub fn is_disk_error(&self) -> bool {
        matches!(self, JournalError::Io { .. })
    }
}

/// A place in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A reader's place: the frame at `pos`, of which `skip` entries are already delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub pos: Position,
    pub skip: u32,
}

/// Something a reader had to skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: u64,
    pub offset: u64,
    /// Bytes skipped (0 for a missing segment).
    pub skipped: u64,
    pub reason: String,
}

/// The journal's size, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub bytes: u64,
    pub max_bytes: u64,
    pub segments: usize,
}

struct Active {
    number: u64,
    /// Shared so an append can write and sync it without holding the state's lock.
    file: Arc<File>,
    size: u64,
    /// A failed write could not be truncated back: the next append starts a new segment.
    broken: bool,
}

struct State {
    /// Segment number → size on disk.
    segments: BTreeMap<u64, u64>,
    active: Option<Active>,
    bytes: u64,
    /// Committed cursor of each reader, by index.
    cursors: Vec<Cursor>,
    /// Readers that hold data back from deletion: all, unless detached.
    attached: Vec<bool>,
    /// Per reader, what opening found wrong with its cursor (reported with its next read).
    recovered: Vec<Option<Damage>>,
    unsynced: bool,
    last_sync: Instant,
    /// Written as the first entry (targets 0) of every new segment.
    header: Vec<u8>,
}

impl State {
    /// The cursors of the attached readers.
    fn live_cursors(&self) -> impl Iterator<Item = &Cursor> {
        self.cursors.iter().zip(&self.attached).filter(|(_, a)| **a).map(|(c, _)| c)
    }
}

struct Shared {
    config: JournalConfig,
    readers: Vec<String>,
    state: Mutex<State>,
    /// Held by an append from start to end (one at a time), while `state` is held only
    /// to read and update the bookkeeping: readers, cursor commits and the header never
    /// wait for an append's write and fsync.
    appending: Mutex<()>,
    end: watch::Sender<Position>,
    _lock: lock::DirLock,
}

/// The journal's writer side; cheap to clone. Readers come from [`Journal::reader`].
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:020}.log"))
}

fn cursor_path(dir: &Path, reader: &str) -> PathBuf {
    dir.join(format!("cursor-{reader}"))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| JournalError::io("syncing the directory", dir, e))
}

fn read_cursor(path: &Path) -> Option<Cursor> {
    let text = fs::read_to_string(path).ok()?;
    let (body, crc) = text.trim().rsplit_once(' ')?;
    if crc.parse::<u32>().ok()? != frame::crc32(body.as_bytes()) {
        return None;
    }
    let mut it = body.split(' ').map(|p| p.parse::<u64>());
    let (segment, offset, skip) = (it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?);
    Some(Cursor { pos: Position { segment, offset }, skip: skip as u32 })
}

/// The valid length of a segment's bytes: the end of its last valid frame, damage in the
/// middle kept (readers skip it), a torn or garbage tail cut off.
fn valid_end(bytes: &[u8]) -> usize {
    let mut off = 0;
    let mut last_good = 0;
    loop {
        match frame::at(bytes, off) {
            At::Frame { next, .. } => {
                off = next;
                last_good = next;
            }
            At::End | At::Torn => return last_good,
            At::Damaged(_) => match frame::scan(bytes, off + 1) {
                Some(n) => off = n,
                None => return last_good,
            },
        }
    }
}

impl Journal {
    /// Opens (creating) the journal for the named readers, taking the directory's lock.
    /// A reader without a cursor starts at the oldest data.
    pub fn open(config: JournalConfig, readers: &[&str]) -> Result<Journal, JournalError> {
        assert!(readers.len() <= 8, "at most 8 readers (one bit each)");
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| JournalError::io("creating", &dir, e))?;
        let lock = lock::DirLock::acquire(&dir)?;
        let mut segments = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(|e| JournalError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| JournalError::io("listing", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            } else if let Some(n) =
                name.strip_prefix("seg-").and_then(|r| r.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok())
            {
                let len = entry.metadata().map_err(|e| JournalError::io("reading", &entry.path(), e))?.len();
                segments.insert(n, len);
            }
        }
        let mut cursors: Vec<Cursor> =
            readers.iter().map(|r| read_cursor(&cursor_path(&dir, r)).unwrap_or_default()).collect();
        // A cursor at the end of a segment that was deleted (all readers were done with
        // it) continues at the next one.
        for c in cursors.iter_mut() {
            if c.pos.offset > 0
                && !segments.contains_key(&c.pos.segment)
                && let Some((&next, _)) = segments.range(c.pos.segment + 1..).next()
            {
                *c = Cursor { pos: Position { segment: next, offset: 0 }, skip: 0 };
            }
        }
        // The last segment continues, cut at its last valid frame.
        let mut active = None;
        if let Some((&n, &len)) = segments.iter().next_back() {
            let path = seg_path(&dir, n);
            let bytes = fs::read(&path).map_err(|e| JournalError::io("reading", &path, e))?;
            let end = valid_end(&bytes) as u64;
            let file =
                OpenOptions::new().append(true).open(&path).map_err(|e| JournalError::io("opening", &path, e))?;
            if end < len {
                file.set_len(end).map_err(|e| JournalError::io("cutting the torn tail of", &path, e))?;
                file.sync_all().map_err(|e| JournalError::io("syncing", &path, e))?;
                tracing::warn!(segment = %path.display(), cut = len - end, "journal: cut a torn tail");
                segments.insert(n, end);
            }
            active = Some(Active { number: n, file: Arc::new(file), size: end, broken: false });
        }
        let end = active.as_ref().map_or(Position::default(), |a| Position { segment: a.number, offset: a.size });
        // A cursor past the end of the last segment: the cursor reached the disk, the frames
        // before it did not (a crash with `fsync` at `interval` or `never`). Those frames
        // were delivered; new frames are appended at the end, so the cursor continues
        // there (left where it was, it would skip them, then read mid-frame as damage).
        // The pulled-back cursor is written at once: frames appended from here on must never
        // meet the old one after another crash.
        let mut recovered: Vec<Option<Damage>> = Vec::with_capacity(readers.len());
        for (c, reader) in cursors.iter_mut().zip(readers) {
            let past = active.as_ref().is_some_and(|a| c.pos.segment == a.number && c.pos.offset > a.size);
            if !past {
                recovered.push(None);
                continue;
            }
            let lost = c.pos.offset - end.offset;
            tracing::warn!(reader, segment = end.segment, lost, "journal: cursor pulled back to the durable end");
            *c = Cursor { pos: end, skip: 0 };
            CursorWrite { dir: dir.clone(), path: cursor_path(&dir, reader), cursor: *c }.write()?;
            recovered.push(Some(Damage {
                segment: end.segment,
                offset: end.offset,
                skipped: lost,
                reason: format!(
                    "the cursor was {lost} bytes past the journal's durable end (frames lost in a crash before \
                     they reached the disk); reading continues at the end"
                ),
            }));
        }
        let bytes = segments.values().sum();
        let state = State {
            segments,
            active,
            bytes,
            attached: vec![true; cursors.len()],
            recovered,
            cursors,
            unsynced: false,
            last_sync: Instant::now(),
            header: Vec::new(),
        };
        let (end_tx, _) = watch::channel(end);
        let journal = Journal {
            shared: Arc::new(Shared {
                config,
                readers: readers.iter().map(|r| r.to_string()).collect(),
                state: Mutex::new(state),
                appending: Mutex::new(()),
                end: end_tx,
                _lock: lock,
            }),
        };
        Ok(journal)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.config.dir
    }

    /// The readers' names, in bit order.
    pub fn readers(&self) -> &[String] {
        &self.shared.readers
    }

    /// The bit of a reader in an entry's targets.
    pub fn bit(&self, reader: &str) -> Option<u8> {
        self.shared.readers.iter().position(|r| r == reader).map(|i| 1u8 << i)
    }

    /// What every new segment starts with (targets 0, skipped by readers), so that a
    /// restart can read the writer's marks from the last segment alone.
    pub fn set_header(&self, header: Vec<u8>) {
        self.state().header = header;
    }

    /// The entries of the last segment (targets and data), oldest first.
    pub fn last_segment_entries(&self) -> Result<Vec<(u8, Vec<u8>)>, JournalError> {
        let Some(n) = self.state().active.as_ref().map(|a| a.number) else { return Ok(Vec::new()) };
        let path = seg_path(self.dir(), n);
        let bytes = fs::read(&path).map_err(|e| JournalError::io("reading", &path, e))?;
        let mut out = Vec::new();
        let mut off = 0;
        loop {
            match frame::at(&bytes, off) {
                At::Frame { payload, next } => {
                    if let Ok(entries) = frame::entries(&bytes[payload]) {
                        out.extend(entries.into_iter().map(|(t, d)| (t, d.to_vec())));
                    }
                    off = next;
                }
                At::Damaged(_) => match frame::scan(&bytes, off + 1) {
                    Some(n) => off = n,
                    None => break,
                },
                At::End | At::Torn => break,
            }
        }
        Ok(out)
    }

    /// Appends entries `(targets, data)` as one frame; returns the end after it. On a
    /// failed write the segment is truncated back, so no partial frame remains.
    pub fn append<'a>(&self, entries: impl IntoIterator<Item = (u8, &'a [u8])>) -> Result<Position, JournalError> {
        let body = frame::encode(entries);
        let cfg = &self.shared.config;
        let _appending = self.shared.appending.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = self.state();
        if body.len() as u64 > cfg.segment_bytes {
            return Err(JournalError::TooLarge { size: body.len() as u64, max: cfg.segment_bytes });
        }
        if st.bytes + body.len() as u64 > cfg.max_bytes {
            self.reclaim(&mut st)?;
            if st.bytes + body.len() as u64 > cfg.max_bytes {
                return Err(JournalError::Full { bytes: st.bytes, max: cfg.max_bytes });
            }
        }
        let rotate = match &st.active {
            None => true,
            Some(a) => a.broken || (a.size > 0 && a.size + body.len() as u64 > cfg.segment_bytes),
        };
        if rotate {
            self.rotate(&mut st)?;
        }
        let mut bytes = body;
        if st.active.as_ref().is_some_and(|a| a.size == 0) && !st.header.is_empty() {
            let header = frame::encode([(0u8, st.header.as_slice())]);
            bytes = [header, bytes].concat();
        }
        let fsync_now = match cfg.fsync {
            Fsync::Always => true,
            Fsync::Interval(d) => st.last_sync.elapsed() >= d,
            Fsync::Never => false,
        };
        let a = st.active.as_ref().expect("an active segment after rotation");
        let (file, number, size) = (a.file.clone(), a.number, a.size);
        // Only this append touches the active segment now (`appending`), so the write
        // and the sync go on without the state's lock.
        drop(st);
        let written = (&*file).write_all(&bytes).and_then(|_| if fsync_now { file.sync_data() } else { Ok(()) });
        let mut st = self.state();
        let a = st.active.as_mut().expect("the segment this append wrote");
        if let Err(e) = written {
            // No partial frame may stay: cut back to the last complete one.
            if file.set_len(size).and_then(|_| file.sync_data()).is_err() {
                a.broken = true;
            }
            return Err(JournalError::io("appending to", &seg_path(&cfg.dir, number), e));
        }
        a.size += bytes.len() as u64;
        let end = Position { segment: a.number, offset: a.size };
        st.segments.insert(end.segment, end.offset);
        st.bytes += bytes.len() as u64;
        if fsync_now {
            st.last_sync = Instant::now();
            st.unsynced = false;
        } else {
            st.unsynced = true;
        }
        drop(st);
        self.shared.end.send_replace(end);
        Ok(end)
    }

    /// When every reader has everything, the active segment is closed so it can go: a
    /// journal that is full of delivered data has room again.
    fn reclaim(&self, st: &mut State) -> Result<(), JournalError> {
        let Some(a) = st.active.as_ref() else { return Ok(()) };
        let end = Position { segment: a.number, offset: a.size };
        if a.size > 0 && st.attached.contains(&true) && st.live_cursors().all(|c| c.pos >= end) {
            self.rotate(st)?;
            self.collect_garbage(st)?;
        }
        Ok(())
    }

    /// Starts a new segment (numbered past every segment and cursor ever seen).
    fn rotate(&self, st: &mut State) -> Result<(), JournalError> {
        if let Some(a) = st.active.as_mut()
            && st.unsynced
            && !a.broken
        {
            let _ = a.file.sync_data();
        }
        let highest_segment = st.segments.keys().next_back().copied().unwrap_or(0);
        let highest_cursor = st.cursors.iter().map(|c| c.pos.segment).max().unwrap_or(0);
        let n = highest_segment.max(highest_cursor) + 1;
        let path = seg_path(self.dir(), n);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| JournalError::io("creating", &path, e))?;
        sync_dir(self.dir())?;
        st.segments.insert(n, 0);
        st.active = Some(Active { number: n, file: Arc::new(file), size: 0, broken: false });
        st.unsynced = false;
        st.last_sync = Instant::now();
        Ok(())
    }

    /// Flushes appended frames to the disk if the policy left some unsynced.
    pub fn sync(&self) -> Result<(), JournalError> {
        let mut st = self.state();
        if !st.unsynced {
            return Ok(());
        }
        let dir = self.dir().to_path_buf();
        if let Some(a) = st.active.as_mut() {
            a.file.sync_data().map_err(|e| JournalError::io("syncing", &seg_path(&dir, a.number), e))?;
        }
        st.unsynced = false;
        st.last_sync = Instant::now();
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        let st = self.state();
        Stats { bytes: st.bytes, max_bytes: self.shared.config.max_bytes, segments: st.segments.len() }
    }

    /// The end of the journal (after the last appended frame).
    pub fn end(&self) -> Position {
        *self.shared.end.borrow()
    }

    /// Where a reader has committed to (None for a name not given at open): everything
    /// before it is delivered.
    pub fn committed(&self, reader: &str) -> Option<Position> {
        let i = self.shared.readers.iter().position(|r| r == reader)?;
        Some(self.state().cursors[i].pos)
    }

    /// A reader by name (one of those given at open), starting at its committed cursor.
    pub fn reader(&self, name: &str) -> Reader {
        let index =
            self.shared.readers.iter().position(|r| r == name).unwrap_or_else(|| panic!("unknown reader {name}"));
        let committed = self.state().cursors[index];
        Reader {
            journal: self.clone(),
            index,
            bit: 1 << index,
            read: committed,
            committed,
            file: None,
            end: self.shared.end.subscribe(),
        }
    }

    /// Declares that nobody reads as `name` in this process (a sink that is not
    /// configured): its cursor stays, but no longer keeps segments from being deleted.
    pub fn detach(&self, name: &str) {
        if let Some(i) = self.shared.readers.iter().position(|r| r == name) {
            let mut st = self.state();
            st.attached[i] = false;
            let _ = self.collect_garbage(&mut st);
        }
    }

    /// Deletes the segments every reader is past or at the end of (never the active one);
    /// a cursor at the end of a deleted segment moves to the start of the next.
    fn collect_garbage(&self, st: &mut State) -> Result<(), JournalError> {
        let active = st.active.as_ref().map(|a| a.number);
        if !st.attached.contains(&true) {
            return Ok(());
        }
        let done = |st: &State, n: u64, size: u64| {
            st.live_cursors().all(|c| c.pos.segment > n || (c.pos.segment == n && c.pos.offset >= size))
        };
        let dead: Vec<u64> = st
            .segments
            .iter()
            .filter(|(n, size)| Some(**n) != active && done(st, **n, **size))
            .map(|(n, _)| *n)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        for &n in &dead {
            let next = st.segments.range(n + 1..).next().map(|(m, _)| *m);
            for c in st.cursors.iter_mut().filter(|c| c.pos.segment == n) {
                if let Some(m) = next {
                    *c = Cursor { pos: Position { segment: m, offset: 0 }, skip: 0 };
                }
            }
        }
        for n in dead {
            let path = seg_path(self.dir(), n);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(JournalError::io("deleting", &path, e)),
            }
            if let Some(size) = st.segments.remove(&n) {
                st.bytes = st.bytes.saturating_sub(size);
            }
        }
        sync_dir(self.dir())
    }
}

/// What a reader got: the entries for it (in journal order), what it had to skip, and
/// the cursor to commit once they are delivered.
/// The entries sit in one buffer, so reading a batch allocates once, not per entry.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    /// Each entry's range in `data`.
    spans: Vec<(usize, usize)>,
    pub damages: Vec<Damage>,
    next: Cursor,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The entries, in journal order.
    pub fn items(&self) -> impl ExactSizeIterator<Item = &[u8]> + DoubleEndedIterator {
        self.spans.iter().map(|&(a, b)| &self.data[a..b])
    }

    fn push(&mut self, entry: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(entry);
        self.spans.push((start, self.data.len()));
    }

    /// Appends a later batch of the same reader: its items follow, and committing the
    /// result commits both.
    pub fn absorb(&mut self, later: Batch) {
        let offset = self.data.len();
        self.data.extend_from_slice(&later.data);
        self.spans.extend(later.spans.iter().map(|&(a, b)| (a + offset, b + offset)));
        self.damages.extend(later.damages);
        self.next = later.next;
    }

    /// Where the batch ends: the cursor that commits it (and everything read before it).
    pub fn end(&self) -> Cursor {
        self.next
    }
}

/// A cursor on its way to disk on a blocking thread ([`Reader::start_commit`]); the reader
/// counts it as committed once [`Reader::finish_commit`] has seen it land.
#[derive(Debug)]
pub struct PendingCommit {
    cursor: Cursor,
    write: Option<tokio::task::JoinHandle<Result<(), JournalError>>>,
    /// The write's outcome, once [`PendingCommit::ended`] has seen it.
    outcome: Option<Result<(), JournalError>>,
}

impl PendingCommit {
    /// The cursor being written.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Whether the write has ended (so finishing it does not wait).
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some() || self.write.as_ref().is_some_and(|w| w.is_finished())
    }

    /// Waits until the write has ended (cancel-safe: for a `select!`); the reader still
    /// has to [`Reader::finish_commit`] it.
    pub async fn ended(&mut self) {
        if let Some(w) = self.write.as_mut() {
            self.outcome = Some(w.await.expect("a cursor write does not panic"));
            self.write = None;
        }
    }
}

/// One consumer's view of the journal: reads entries whose targets include its bit, and
/// commits how far it has delivered.
pub struct Reader {
    journal: Journal,
    index: usize,
    bit: u8,
    /// Where the next read starts.
    read: Cursor,
    committed: Cursor,
    file: Option<(u64, File)>,
    end: watch::Receiver<Position>,
}

impl Reader {
    pub fn name(&self) -> &str {
        &self.journal.shared.readers[self.index]
    }

    /// Whether there is journal data past where this reader has read.
    pub fn has_unread(&self) -> bool {
        self.read.pos < *self.end.borrow()
    }

    /// Waits until something is appended past where this reader has read.
    pub async fn wait(&mut self) {
        while !self.has_unread() {
            if self.end.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Bytes between the committed cursor and the end of the journal.
    pub fn backlog_bytes(&self) -> u64 {
        let st = self.journal.state();
        let c = self.committed.pos;
        st.segments
            .range(c.segment..)
            .map(|(n, size)| if *n == c.segment { size.saturating_sub(c.offset) } else { *size })
            .sum()
    }

    /// Whether everything appended so far is committed by this reader.
    pub fn is_caught_up(&self) -> bool {
        self.committed.pos >= *self.end.borrow()
    }

    /// Forgets what was read but not committed: the next read starts at the cursor again.
    pub fn rewind(&mut self) {
        self.read = self.committed;
    }

    fn segment_file(&mut self, n: u64) -> Result<&File, JournalError> {
        if self.file.as_ref().is_none_or(|(m, _)| *m != n) {
            let path = seg_path(self.journal.dir(), n);
            let f = File::open(&path).map_err(|e| JournalError::io("opening", &path, e))?;
            self.file = Some((n, f));
        }
        Ok(&self.file.as_ref().expect("just opened").1)
    }

    /// Up to `max` entries for this reader from where it has read (an empty batch when
    /// it is caught up); advances the read position, not the cursor.
    pub fn read(&mut self, max: usize) -> Result<Batch, JournalError> {
        // The journal moves a cursor at the end of a segment it deleted to the next one.
        let moved = self.journal.state().cursors[self.index];
        if self.read == self.committed && moved > self.committed {
            self.read = moved;
            self.committed = moved;
        }
        let end = *self.end.borrow();
        let bit = self.bit;
        let dir = self.journal.dir().to_path_buf();
        let mut batch = Batch::default();
        if let Some(d) = self.journal.state().recovered[self.index].take() {
            batch.damages.push(d);
        }
        let mut cur = self.read;
        'outer: while batch.len() < max {
            let (present, next_segment) = {
                let st = self.journal.state();
                let present = st.segments.get(&cur.pos.segment).copied();
                let next = st.segments.range(cur.pos.segment + 1..).next().map(|(n, _)| *n);
                (present, next)
            };
            let Some(seg_len) = present else {
                // Not (or no longer) on disk: go on at the next segment.
                let Some(next) = next_segment else { break };
                if cur.pos.segment != 0 && cur.pos != Position::default() {
                    batch.damages.push(Damage {
                        segment: cur.pos.segment,
                        offset: cur.pos.offset,
                        skipped: 0,
                        reason: format!("segment {} is missing; continuing with segment {next}", cur.pos.segment),
                    });
                }
                cur = Cursor { pos: Position { segment: next, offset: 0 }, skip: 0 };
                continue;
            };
            let limit = if cur.pos.segment == end.segment { end.offset.min(seg_len) } else { seg_len };
            if cur.pos.offset >= limit {
                match next_segment {
                    Some(next) if cur.pos.segment < end.segment => {
                        cur = Cursor { pos: Position { segment: next, offset: 0 }, skip: 0 };
                        continue;
                    }
                    _ => break,
                }
            }
            let seg = cur.pos.segment;
            let offset = cur.pos.offset;
            let path = seg_path(&dir, seg);
            let io = |e| JournalError::io("reading", &path, e);
            let file = self.segment_file(seg)?;
            let mut header = [0u8; frame::HEADER];
            let have = (limit - offset).min(frame::HEADER as u64) as usize;
            file.read_exact_at(&mut header[..have], offset).map_err(io)?;
            let frame_bytes = match frame::header_len(&header[..have]) {
                Some(len) if offset + (frame::HEADER + len) as u64 <= limit => {
                    let mut buf = vec![0u8; frame::HEADER + len];
                    file.read_exact_at(&mut buf, offset).map_err(io)?;
                    Some(buf)
                }
                _ => None,
            };
            let parsed = frame_bytes.as_ref().map(|b| (frame::at(b, 0), b));
            match parsed {
                Some((At::Frame { payload, next }, bytes)) => {
                    let entries = match frame::entries(&bytes[payload]) {
                        Ok(e) => e,
                        Err(reason) => {
                            batch.damages.push(Damage {
                                segment: seg,
                                offset,
                                skipped: next as u64,
                                reason: reason.into(),
                            });
                            cur = Cursor { pos: Position { segment: seg, offset: offset + next as u64 }, skip: 0 };
                            continue;
                        }
                    };
                    for (i, (targets, data)) in entries.iter().enumerate().skip(cur.skip as usize) {
                        if batch.len() >= max {
                            cur.skip = i as u32;
                            break 'outer;
                        }
                        if targets & bit != 0 {
                            batch.push(data);
                        }
                    }
                    cur = Cursor { pos: Position { segment: seg, offset: offset + next as u64 }, skip: 0 };
                }
                _ => {
                    // Damaged: find the next valid frame in the rest of the segment.
                    let mut rest = vec![0u8; (limit - offset) as usize];
                    file.read_exact_at(&mut rest, offset).map_err(io)?;
                    let reason = match frame::at(&rest, 0) {
                        At::Damaged(r) => r.to_string(),
                        At::Torn => "torn frame".to_string(),
                        _ => "unreadable frame".to_string(),
                    };
                    let skip_to = frame::scan(&rest, 1).unwrap_or(rest.len()) as u64;
                    batch.damages.push(Damage { segment: seg, offset, skipped: skip_to, reason });
                    cur = Cursor { pos: Position { segment: seg, offset: offset + skip_to }, skip: 0 };
                }
            }
        }
        self.read = cur;
        batch.next = cur;
        Ok(batch)
    }

    /// Marks a batch (and everything read before it) delivered: the cursor is written
    /// atomically, and segments every reader is past are deleted.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), JournalError> {
        self.cursor_write(batch.next).write()?;
        self.committed_to(batch.next)
    }

    /// [`Reader::commit`] for async callers: the cursor's file and directory syncs run on
    /// a blocking thread, not on the runtime's, where they would stall every other task.
    pub async fn commit_async(&mut self, batch: &Batch) -> Result<(), JournalError> {
        let pending = self.start_commit(batch.end());
        self.finish_commit(pending).await
    }

    /// Starts writing `cursor` (a [`Batch::end`] of this reader) on a blocking thread, so
    /// the caller can go on delivering while it syncs. At most one commit of a reader
    /// should be under way at a time: the later one must land last.
    pub fn start_commit(&self, cursor: Cursor) -> PendingCommit {
        let write = self.cursor_write(cursor);
        PendingCommit { cursor, write: Some(tokio::task::spawn_blocking(move || write.write())), outcome: None }
    }

    /// Waits for a commit started by [`Reader::start_commit`]; once it is on disk the
    /// reader counts it as committed, and segments every reader is past are deleted.
    pub async fn finish_commit(&mut self, mut pending: PendingCommit) -> Result<(), JournalError> {
        pending.ended().await;
        pending.outcome.take().expect("an ended write has an outcome")?;
        self.committed_to(pending.cursor)
    }

    fn cursor_write(&self, cursor: Cursor) -> CursorWrite {
        CursorWrite {
            dir: self.journal.dir().to_path_buf(),
            path: cursor_path(self.journal.dir(), self.name()),
            cursor,
        }
    }

    /// Once the cursor is on disk: the reader and the journal move to it, and segments
    /// every reader is past are deleted.
    fn committed_to(&mut self, c: Cursor) -> Result<(), JournalError> {
        self.committed = c;
        let mut st = self.journal.state();
        st.cursors[self.index] = c;
        self.journal.collect_garbage(&mut st)
    }
}

/// A reader's cursor on its way to disk.
#[derive(Debug)]
struct CursorWrite {
    dir: PathBuf,
    path: PathBuf,
    cursor: Cursor,
}

impl CursorWrite {
    /// Writes the cursor atomically: a temporary file, synced, renamed over the old one,
    /// and the directory synced.
    fn write(&self) -> Result<(), JournalError> {
        let c = self.cursor;
        let tmp = self.path.with_extension("tmp");
        let body = format!("{} {} {}", c.pos.segment, c.pos.offset, c.skip);
        let text = format!("{body} {}\n", frame::crc32(body.as_bytes()));
        (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            fs::rename(&tmp, &self.path)
        })()
        .map_err(|e| JournalError::io("writing the cursor", &self.path, e))?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(cashtag_testkit::unique(&format!("journal-{name}")));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn cfg(dir: &Path, segment: u64) -> JournalConfig {
        JournalConfig { dir: dir.to_path_buf(), segment_bytes: segment, max_bytes: 1 << 30, fsync: Fsync::Always }
    }

    fn put(j: &Journal, targets: u8, items: std::ops::Range<u32>) {
        let data: Vec<Vec<u8>> = items.map(|i| i.to_string().into_bytes()).collect();
        j.append(data.iter().map(|d| (targets, d.as_slice()))).unwrap();
    }

    fn drain(r: &mut Reader, max: usize) -> (Vec<u32>, Vec<Damage>) {
        let mut got = Vec::new();
        let mut damages = Vec::new();
        loop {
            let b = r.read(max).unwrap();
            damages.extend(b.damages.clone());
            if b.is_empty() && !r.has_unread() {
                r.commit(&b).unwrap();
                break;
            }
            got.extend(b.items().map(|d| std::str::from_utf8(d).unwrap().parse::<u32>().unwrap()));
            r.commit(&b).unwrap();
        }
        (got, damages)
    }

    #[test]
    fn each_reader_gets_its_entries_in_order_across_segments_and_restarts() {
        let dir = tmp("order");
        let j = Journal::open(cfg(&dir, 200), &["a", "b"]).unwrap();
        for k in 0..20u32 {
            put(&j, if k % 2 == 0 { 0b11 } else { 0b01 }, k * 5..k * 5 + 5);
        }
        assert!(j.stats().segments > 3);
        let mut a = j.reader("a");
        // a reads a few, commits part-way through a frame, then the process "restarts".
        let b1 = a.read(7).unwrap();
        assert_eq!(b1.len(), 7);
        a.commit(&b1).unwrap();
        drop(a);
        drop(j);
        let j = Journal::open(cfg(&dir, 200), &["a", "b"]).unwrap();
        let (rest, damages) = drain(&mut j.reader("a"), 3);
        assert!(damages.is_empty(), "{damages:?}");
        assert_eq!(rest, (7..100).collect::<Vec<_>>(), "nothing lost, nothing repeated");
        let (b, _) = drain(&mut j.reader("b"), 1000);
        let want: Vec<u32> = (0..20u32).filter(|k| k % 2 == 0).flat_map(|k| k * 5..k * 5 + 5).collect();
        assert_eq!(b, want, "b gets only the entries targeted at it");
        // Both are past every full segment: all but the active one are deleted.
        assert_eq!(j.stats().segments, 1);
        let _ = fs::remove_dir_all(dir);
    }

    /// The async commit leaves the same cursor on disk and the same state as the plain one.
    #[tokio::test]
    async fn an_async_commit_is_a_commit() {
        let dir = tmp("async-commit");
        let j = Journal::open(cfg(&dir, 200), &["a"]).unwrap();
        for k in 0..6u32 {
            put(&j, 1, k * 5..k * 5 + 5);
        }
        let mut a = j.reader("a");
        let b = a.read(12).unwrap();
        a.commit_async(&b).await.unwrap();
        assert_eq!(j.committed("a"), Some(b.next.pos));
        drop(a);
        drop(j);
        let j = Journal::open(cfg(&dir, 200), &["a"]).unwrap();
        let (rest, _) = drain(&mut j.reader("a"), 100);
        assert_eq!(rest, (12..30).collect::<Vec<_>>(), "a restart resumes after the committed batch");
        let _ = fs::remove_dir_all(dir);
    }

    /// A commit under way is not a commit: the reader, the journal's GC and a restart see
    /// it only once it has landed; batches read meanwhile are committed by the next one.
    #[tokio::test]
    async fn a_commit_counts_once_it_lands() {
        let dir = tmp("background-commit");
        let j = Journal::open(cfg(&dir, 60), &["a"]).unwrap();
        for k in 0..6u32 {
            put(&j, 1, k * 5..k * 5 + 5);
        }
        let segments = j.stats().segments;
        let mut a = j.reader("a");
        let first = a.read(10).unwrap();
        let pending = a.start_commit(first.end());
        assert_eq!(pending.cursor(), first.end());
        let second = a.read(10).unwrap();
        assert_eq!(j.committed("a"), Some(Position::default()), "not committed while it is under way");
        assert_eq!(j.stats().segments, segments, "nothing is collected before the cursor lands");
        // Landed: at the batch's end (or, that segment deleted, at the next one's start).
        a.finish_commit(pending).await.unwrap();
        assert!(j.committed("a").unwrap() >= first.end().pos);
        let next = a.start_commit(second.end());
        a.finish_commit(next).await.unwrap();
        assert!(j.committed("a").unwrap() >= second.end().pos);
        assert!(j.stats().segments < segments, "segments behind the landed cursor are collected");
        drop(a);
        drop(j);
        let j = Journal::open(cfg(&dir, 60), &["a"]).unwrap();
        let (rest, _) = drain(&mut j.reader("a"), 100);
        assert_eq!(rest, (20..30).collect::<Vec<_>>(), "a restart resumes after the last landed commit");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_process_is_refused_while_the_first_holds_the_lock() {
        let dir = tmp("lock");
        let j = Journal::open(cfg(&dir, 1 << 20), &["a"]).unwrap();
        let Err(e) = Journal::open(cfg(&dir, 1 << 20), &["a"]) else { panic!("opened twice") };
        assert!(matches!(e, JournalError::Locked { .. }), "{e}");
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        drop(j);
        Journal::open(cfg(&dir, 1 << 20), &["a"]).expect("free after the holder is gone");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_damaged_frame_costs_only_itself() {
        let dir = tmp("damage");
        let j = Journal::open(cfg(&dir, 1 << 20), &["a"]).unwrap();
        put(&j, 1, 0..3);
        let second = j.end();
        put(&j, 1, 3..6);
        put(&j, 1, 6..9);
        drop(j);
        let path = seg_path(&dir, second.segment);
        let mut bytes = fs::read(&path).unwrap();
        bytes[second.offset as usize + frame::HEADER + 3] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let j = Journal::open(cfg(&dir, 1 << 20), &["a"]).unwrap();
        let (got, damages) = drain(&mut j.reader("a"), 100);
        assert_eq!(got, vec![0, 1, 2, 6, 7, 8], "the frames after the damaged one are read");
        assert_eq!(damages.len(), 1);
        assert!(damages[0].reason.contains("checksum"), "{damages:?}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_cursor_past_the_durable_end_is_pulled_back_and_nothing_appended_after_is_skipped() {
        // A power loss with fsync `never`: the reader's cursor reached the disk, the last
        // frames it had read did not (the segment is shorter than the cursor says).
        let dir = tmp("pastend");
        let j = Journal::open(cfg(&dir, 1 << 20), &["a", "b"]).unwrap();
        put(&j, 3, 0..3);
        let durable = j.end();
        put(&j, 3, 3..6);
        put(&j, 3, 6..9);
        assert_eq!(drain(&mut j.reader("a"), 100).0, (0..9).collect::<Vec<_>>());
        assert_eq!(drain(&mut j.reader("b"), 2).0, (0..9).collect::<Vec<_>>());
        drop(j);
        let path = seg_path(&dir, durable.segment);
        OpenOptions::new().write(true).open(&path).unwrap().set_len(durable.offset).unwrap();
        for round in 0..2 {
            let j = Journal::open(cfg(&dir, 1 << 20), &["a", "b"]).unwrap();
            put(&j, 3, 100 * (round + 1)..100 * (round + 1) + 3);
            for reader in ["a", "b"] {
                let (got, damages) = drain(&mut j.reader(reader), 100);
                let want: Vec<u32> = (100 * (round + 1)..100 * (round + 1) + 3).collect();
                assert_eq!(got, want, "{reader}, round {round}: every frame appended after the restart");
                if round == 0 {
                    assert_eq!(damages.len(), 1, "{reader}: the pulled-back cursor is reported");
                    assert!(damages[0].reason.contains("past the journal's durable end"), "{damages:?}");
                } else {
                    assert!(damages.is_empty(), "{reader}: reported once");
                }
            }
            // A second crash before the next commit must not meet the old cursor again.
            drop(j);
        }
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_tail_is_cut_at_open_and_appends_continue_after_it() {
        let dir = tmp("torn");
        let j = Journal::open(cfg(&dir, 1 << 20), &["a"]).unwrap();
        put(&j, 1, 0..3);
        let good = j.end();
        put(&j, 1, 3..6);
        drop(j);
        let path = seg_path(&dir, good.segment);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 4).unwrap();
        let j = Journal::open(cfg(&dir, 1 << 20), &["a"]).unwrap();
        assert_eq!(j.end(), good, "cut back to the last whole frame");
        put(&j, 1, 10..12);
        let (got, damages) = drain(&mut j.reader("a"), 100);
        assert_eq!(got, vec![0, 1, 2, 10, 11]);
        assert!(damages.is_empty());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stale_cursor_never_pairs_with_a_new_segment() {
        let dir = tmp("stale");
        let j = Journal::open(cfg(&dir, 300), &["a"]).unwrap();
        put(&j, 1, 0..20);
        put(&j, 1, 20..40);
        put(&j, 1, 40..60);
        let (got, _) = drain(&mut j.reader("a"), 1000);
        assert_eq!(got.len(), 60);
        assert!(j.end().segment >= 3);
        drop(j);
        // Every segment gone (an operator cleaned up), the cursor left behind.
        for e in fs::read_dir(&dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("seg-") {
                fs::remove_file(e.path()).unwrap();
            }
        }
        let j = Journal::open(cfg(&dir, 300), &["a"]).unwrap();
        put(&j, 1, 100..103);
        let (got, _) = drain(&mut j.reader("a"), 1000);
        assert_eq!(got, vec![100, 101, 102], "the new segment is read from its start");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_journal_refuses_appends_until_readers_free_space() {
        let dir = tmp("full");
        let j = Journal::open(
            JournalConfig { dir: dir.clone(), segment_bytes: 64, max_bytes: 200, fsync: Fsync::Never },
            &["a"],
        )
        .unwrap();
        let mut n = 0;
        let full = loop {
            match j.append([(1u8, &b"0123456789"[..])]) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(full, JournalError::Full { .. }), "{full}");
        assert!(n > 0);
        let mut r = j.reader("a");
        let b = r.read(1000).unwrap();
        assert_eq!(b.len(), n);
        r.commit(&b).unwrap();
        j.append([(1u8, &b"more"[..])]).expect("room again");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_header_starts_every_segment_and_readers_skip_it() {
        let dir = tmp("header");
        let j = Journal::open(cfg(&dir, 120), &["a"]).unwrap();
        j.set_header(b"marks-1".to_vec());
        put(&j, 1, 0..10);
        j.set_header(b"marks-2".to_vec());
        put(&j, 1, 10..20);
        let entries = j.last_segment_entries().unwrap();
        assert_eq!(entries[0], (0, b"marks-2".to_vec()));
        let (got, _) = drain(&mut j.reader("a"), 1000);
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        let _ = fs::remove_dir_all(dir);
    }
}
