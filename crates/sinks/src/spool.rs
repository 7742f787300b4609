//! The disk spool: where batches wait, in order, while their sink is unreachable.
//!
//! A directory of append-only segment files `seg-<n>.spool`. Each batch is one frame:
//! magic `CSP1`, payload length (u32 LE), CRC-32 of the payload (u32 LE), payload (the
//! batch as a JSON array of records). Replay reads the oldest frame first; progress is
//! kept per segment in `seg-<n>.pos` (written atomically), so a restart resumes where the
//! last run stopped, and a fully replayed segment is deleted.
//!
//! A torn frame (the process died mid-write) or a corrupt one (bad magic or checksum) is
//! reported as a [`Damage`], the damaged segment is renamed `*.corrupt` for inspection,
//! and replay continues with the next segment — never silently dropped, never a crash loop.
//! The spool is bounded: an append that would exceed the limit fails with
//! [`SpoolError::Full`], and the caller slows intake.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cashtag_core::Record;

const MAGIC: &[u8; 4] = b"CSP1";
const HEADER: usize = 12;
/// Largest frame accepted when reading (a batch of 500 records at most 1 MiB each, plus JSON).
const MAX_FRAME: u32 = 600 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({bytes} bytes of {max})")]
    Full { bytes: u64, max: u64 },
    #[error("spool I/O at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.display().to_string(), source }
}

/// A damaged segment found during replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub segment: String,
    pub offset: u64,
    pub reason: String,
    /// Where the segment was moved for inspection.
    pub quarantined_as: String,
}

/// The oldest batch waiting in the spool.
#[derive(Debug)]
pub struct SpooledBatch {
    pub records: Vec<Record>,
    segment: u64,
    next_offset: u64,
}

/// One sink's spool directory.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Segment numbers on disk, oldest first.
    segments: Vec<u64>,
    /// Total size of the segment files.
    bytes: u64,
    /// The segment being appended to, if open.
    active: Option<(u64, File, u64)>,
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:016}.spool"))
}

fn pos_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:016}.pos"))
}

/// CRC-32 (IEEE 802.3), the checksum of zlib and gzip.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    let mut crc = !0u32;
    for b in data {
        crc = table[((crc ^ *b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

impl Spool {
    /// Opens (creating) a spool directory and finds the segments a previous run left.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64, segment_bytes: u64) -> Result<Self, SpoolError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut segments = Vec::new();
        let mut bytes = 0;
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_prefix("seg-").and_then(|r| r.strip_suffix(".spool"))
                && let Ok(n) = n.parse::<u64>()
            {
                segments.push(n);
                bytes += entry.metadata().map_err(io(&dir))?.len();
            }
        }
        segments.sort_unstable();
        Ok(Spool { dir, max_bytes, segment_bytes, segments, bytes, active: None })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Appends a batch as one frame, durably (fsync).
    pub fn append(&mut self, records: &[Record]) -> Result<(), SpoolError> {
        let payload = serde_json::to_vec(records).expect("records serialize");
        let frame_len = (HEADER + payload.len()) as u64;
        if self.bytes + frame_len > self.max_bytes {
            return Err(SpoolError::Full { bytes: self.bytes, max: self.max_bytes });
        }
        let rotate = match &self.active {
            Some((_, _, size)) => *size > 0 && size + frame_len > self.segment_bytes,
            None => true,
        };
        if rotate {
            let n = self.segments.last().map_or(1, |l| l + 1);
            let path = seg_path(&self.dir, n);
            let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io(&path))?;
            self.segments.push(n);
            self.active = Some((n, file, 0));
        }
        let (n, file, size) = self.active.as_mut().expect("active segment");
        let path = seg_path(&self.dir, *n);
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        file.write_all(&frame).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
        *size += frame_len;
        self.bytes += frame_len;
        Ok(())
    }

    fn read_pos(&self, n: u64) -> u64 {
        fs::read_to_string(pos_path(&self.dir, n)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// The oldest unreplayed batch, if any; damaged segments found on the way are
    /// quarantined and returned so the caller can report them.
    pub fn oldest(&mut self) -> Result<(Option<SpooledBatch>, Vec<Damage>), SpoolError> {
        let mut damages = Vec::new();
        while let Some(&n) = self.segments.first() {
            let path = seg_path(&self.dir, n);
            let offset = self.read_pos(n);
            match read_frame(&path, offset) {
                Ok(Some((payload, next))) => match serde_json::from_slice::<Vec<Record>>(&payload) {
                    Ok(records) => return Ok((Some(SpooledBatch { records, segment: n, next_offset: next }), damages)),
                    Err(e) => damages.push(self.quarantine(n, offset, format!("frame does not decode: {e}"))?),
                },
                Ok(None) => {
                    // Fully replayed. The active segment stays (it is being appended to).
                    if self.active.as_ref().is_some_and(|(a, _, _)| *a == n) {
                        return Ok((None, damages));
                    }
                    self.remove_segment(n)?;
                }
                Err(reason) => damages.push(self.quarantine(n, offset, reason)?),
            }
        }
        Ok((None, damages))
    }

    /// Marks a batch returned by [`Spool::oldest`] as delivered.
    pub fn commit(&mut self, batch: &SpooledBatch) -> Result<(), SpoolError> {
        let pos = pos_path(&self.dir, batch.segment);
        let tmp = pos.with_extension("pos.tmp");
        fs::write(&tmp, batch.next_offset.to_string()).map_err(io(&tmp))?;
        fs::rename(&tmp, &pos).map_err(io(&pos))?;
        let path = seg_path(&self.dir, batch.segment);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let is_active = self.active.as_ref().is_some_and(|(a, _, _)| *a == batch.segment);
        if batch.next_offset >= len && !is_active {
            self.remove_segment(batch.segment)?;
        } else if batch.next_offset >= len && is_active {
            // Everything written so far is delivered: start afresh, so the file does not grow forever.
            self.active = None;
            self.remove_segment(batch.segment)?;
        }
        Ok(())
    }

    fn remove_segment(&mut self, n: u64) -> Result<(), SpoolError> {
        let path = seg_path(&self.dir, n);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        let _ = fs::remove_file(pos_path(&self.dir, n));
        self.segments.retain(|s| *s != n);
        self.bytes = self.bytes.saturating_sub(len);
        Ok(())
    }

    fn quarantine(&mut self, n: u64, offset: u64, reason: String) -> Result<Damage, SpoolError> {
        let path = seg_path(&self.dir, n);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let target = path.with_extension("spool.corrupt");
        fs::rename(&path, &target).map_err(io(&path))?;
        let _ = fs::remove_file(pos_path(&self.dir, n));
        if self.active.as_ref().is_some_and(|(a, _, _)| *a == n) {
            self.active = None;
        }
        self.segments.retain(|s| *s != n);
        self.bytes = self.bytes.saturating_sub(len);
        Ok(Damage { segment: path.display().to_string(), offset, reason, quarantined_as: target.display().to_string() })
    }
}

/// Reads the frame at `offset`: Ok(None) at the end of the segment, Err(reason) if torn
/// or corrupt.
fn read_frame(path: &Path, offset: u64) -> Result<Option<(Vec<u8>, u64)>, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if offset >= len {
        return Ok(None);
    }
    if len - offset < HEADER as u64 {
        return Err(format!("torn frame: {} header bytes at the end", len - offset));
    }
    f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    let mut header = [0u8; HEADER];
    f.read_exact(&mut header).map_err(|e| e.to_string())?;
    if &header[0..4] != MAGIC {
        return Err("bad frame magic".into());
    }
    let plen = u32::from_le_bytes(header[4..8].try_into().unwrap());
    let crc = u32::from_le_bytes(header[8..12].try_into().unwrap());
    if plen > MAX_FRAME {
        return Err(format!("frame length {plen} is implausible"));
    }
    if offset + HEADER as u64 + plen as u64 > len {
        return Err(format!("torn frame: {plen} payload bytes announced, {} present", len - offset - HEADER as u64));
    }
    let mut payload = vec![0u8; plen as usize];
    f.read_exact(&mut payload).map_err(|e| e.to_string())?;
    if crc32(&payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(Some((payload, offset + HEADER as u64 + plen as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashtag_core::{Ticker, Trade};

    fn rec(i: u64) -> Record {
        Record::Trade(Trade {
            provider: "sim".into(),
            ticker: Ticker::parse("AAPL").unwrap(),
            ts: chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
            received_at: chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
            price: 100.0 + i as f64,
            size: 1.0,
            exchange: None,
            trade_id: None,
            conditions: vec![],
            seq: i,
        })
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cashtag-spool-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn drain(s: &mut Spool) -> (Vec<u64>, Vec<Damage>) {
        let mut seqs = Vec::new();
        let mut damages = Vec::new();
        loop {
            let (b, d) = s.oldest().unwrap();
            damages.extend(d);
            let Some(b) = b else { break };
            seqs.extend(b.records.iter().map(|r| match r {
                Record::Trade(t) => t.seq,
                _ => unreachable!(),
            }));
            s.commit(&b).unwrap();
        }
        (seqs, damages)
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn replays_in_order_across_segments_and_restarts() {
        let dir = tmp("order");
        let mut s = Spool::open(&dir, 1 << 30, 2_000).unwrap();
        for b in 0..10u64 {
            s.append(&(b * 5..b * 5 + 5).map(rec).collect::<Vec<_>>()).unwrap();
        }
        assert!(s.segments.len() > 2, "rotated into several segments");
        // Replay three batches, then "restart".
        for _ in 0..3 {
            let (b, _) = s.oldest().unwrap();
            s.commit(&b.unwrap()).unwrap();
        }
        drop(s);
        let mut s = Spool::open(&dir, 1 << 30, 2_000).unwrap();
        let (seqs, damages) = drain(&mut s);
        assert!(damages.is_empty());
        assert_eq!(seqs, (15..50).collect::<Vec<_>>());
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_segment_is_quarantined_and_the_rest_replays() {
        let dir = tmp("corrupt");
        let mut s = Spool::open(&dir, 1 << 30, 1).unwrap(); // one batch per segment
        for b in 0..3u64 {
            s.append(&(b * 2..b * 2 + 2).map(rec).collect::<Vec<_>>()).unwrap();
        }
        drop(s);
        // Flip a payload byte of the middle segment.
        let mid = seg_path(&dir, 2);
        let mut bytes = fs::read(&mid).unwrap();
        bytes[HEADER + 5] ^= 0xff;
        fs::write(&mid, bytes).unwrap();
        let mut s = Spool::open(&dir, 1 << 30, 1).unwrap();
        let (seqs, damages) = drain(&mut s);
        assert_eq!(seqs, vec![0, 1, 4, 5]);
        assert_eq!(damages.len(), 1);
        assert!(damages[0].reason.contains("checksum"), "{damages:?}");
        assert!(Path::new(&damages[0].quarantined_as).exists());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_tail_is_reported() {
        let dir = tmp("torn");
        let mut s = Spool::open(&dir, 1 << 30, 1 << 20).unwrap();
        s.append(&[rec(1)]).unwrap();
        s.append(&[rec(2)]).unwrap();
        drop(s);
        let seg = seg_path(&dir, 1);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 7).unwrap();
        let mut s = Spool::open(&dir, 1 << 30, 1 << 20).unwrap();
        let (seqs, damages) = drain(&mut s);
        assert_eq!(seqs, vec![1]);
        assert!(damages[0].reason.contains("torn"), "{damages:?}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_spool_refuses_appends() {
        let dir = tmp("full");
        let mut s = Spool::open(&dir, 600, 1 << 20).unwrap();
        s.append(&[rec(1)]).unwrap();
        loop {
            match s.append(&[rec(2)]) {
                Ok(()) => continue,
                Err(SpoolError::Full { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(s.bytes() <= 600);
        let _ = fs::remove_dir_all(dir);
    }
}
