//! Records a sink refused for good, kept so they can be looked at and written again.
//!
//! A record MongoDB refuses (a validation rule, a document it cannot store), one over
//! Kinesis' 1 MiB, or a journal entry that no longer decodes would otherwise be gone once
//! its event is sent. The worker appends each to `<spool>/dead-letters/<sink>.jsonl` — one
//! JSON object per line with the time, the key, the reason and the record as the journal
//! held it — and synced before the journal cursor moves past it. The store is on the same
//! volume as the journal, so it does not depend on the store that refused the record.
//!
//! `redrive` writes them to their sink again once the cause is fixed (a validator relaxed,
//! a stream's limit raised): it first moves the file aside (`<sink>.redrive`, under a lock
//! the worker's appends also take, so the running service is never held up by a slow
//! store), writes what it moved, and appends back what is still refused or unwritten.
//! A redrive cut short leaves the moved file, which the next `list` and `redrive` read
//! first: nothing is lost and nothing is written twice (the natural keys make a second
//! write of the same record a duplicate in MongoDB).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cashtag_core::Record;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sink::{Rejected, Sink};

/// The folder under the spool directory.
pub const DIR: &str = "dead-letters";
/// Records sent to a sink per write during a redrive.
const REDRIVE_BATCH: usize = 100;

/// One refused record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When the sink refused it (the last time, after a redrive).
    pub at: DateTime<Utc>,
    pub sink: String,
    pub key: String,
    pub reason: String,
    /// The record's JSON as the journal held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The bytes in hex, when they are not UTF-8 (a damaged journal entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_hex: Option<String>,
}

impl DeadLetter {
    fn new(sink: &str, r: &Rejected, at: DateTime<Utc>) -> DeadLetter {
        let (record, record_hex) = match std::str::from_utf8(&r.data) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(r.data.iter().map(|b| format!("{b:02x}")).collect())),
        };
        DeadLetter { at, sink: sink.to_string(), key: r.key.clone(), reason: r.reason.clone(), record, record_hex }
    }

    /// The record, if what was kept decodes as one.
    pub fn decode(&self) -> Option<Record> {
        self.record.as_deref().and_then(|t| Record::from_json(t.as_bytes()).ok())
    }
}

/// Why the dead letters could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: not a dead letter: {source}")]
    Corrupt {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeadLetterError {
    let path = path.display().to_string();
    move |source| DeadLetterError::Io { what, path, source }
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Redriven {
    pub sink: String,
    /// Written now.
    pub written: usize,
    /// The sink already had them: they are gone from the dead letters too.
    pub duplicates: usize,
    /// Refused again: kept, with the new reason.
    pub refused: usize,
    /// Not tried or not written (the store failed, or the kept bytes are not a record): kept.
    pub kept: usize,
    /// Why the redrive stopped early, if it did.
    pub stopped: Option<String>,
}

/// The dead-letter files of one spool directory.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    dir: PathBuf,
}

impl DeadLetters {
    /// The dead letters of the journal in `spool_dir`.
    pub fn in_spool(spool_dir: &Path) -> DeadLetters {
        DeadLetters { dir: spool_dir.join(DIR) }
    }

    /// Where a sink's dead letters are.
    pub fn path(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.jsonl"))
    }

    fn moved_path(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.redrive"))
    }

    /// Takes the sink's lock (blocking); released when the file is dropped.
    fn lock(&self, sink: &str) -> Result<File, DeadLetterError> {
        fs::create_dir_all(&self.dir).map_err(io("creating", &self.dir))?;
        let path = self.dir.join(format!("{sink}.lock"));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening the lock", &path))?;
        f.lock().map_err(io("locking", &path))?;
        Ok(f)
    }

    /// Appends refused records to the sink's file and syncs it.
    pub fn append(&self, sink: &str, rejected: &[Rejected]) -> Result<(), DeadLetterError> {
        let now = Utc::now();
        let letters: Vec<DeadLetter> = rejected.iter().map(|r| DeadLetter::new(sink, r, now)).collect();
        let _lock = self.lock(sink)?;
        self.append_letters(sink, &letters)
    }

    /// Appends under a lock the caller holds.
    fn append_letters(&self, sink: &str, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        if letters.is_empty() {
            return Ok(());
        }
        let path = self.path(sink);
        let mut text = Vec::new();
        for l in letters {
            serde_json::to_writer(&mut text, l).expect("dead letters serialize");
            text.push(b'\n');
        }
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io("opening", &path))?;
        f.write_all(&text).map_err(io("writing", &path))?;
        f.sync_data().map_err(io("syncing", &path))
    }

    /// The sink's dead letters, oldest first (those of a redrive cut short included).
    pub fn list(&self, sink: &str) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut all = read(&self.moved_path(sink))?;
        all.extend(read(&self.path(sink))?);
        Ok(all)
    }

    /// Writes the sink's dead letters to it again, `op_timeout` per write; what is written
    /// (or was already there) leaves the dead letters, the rest stays.
    pub async fn redrive<S: Sink>(&self, sink: &mut S, op_timeout: Duration) -> Result<Redriven, DeadLetterError> {
        let name = sink.name();
        let moved = self.moved_path(name);
        // Move the file aside under the lock: appends after this start a new file.
        let letters = {
            let _lock = self.lock(name)?;
            let mut letters = read(&moved)?;
            let current = self.path(name);
            letters.extend(read(&current)?);
            write_all(&moved, &letters)?;
            match fs::remove_file(&current) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("removing", &current)(e)),
            }
            letters
        };
        let mut outcome = Redriven { sink: name.to_string(), ..Default::default() };
        let mut keep: Vec<DeadLetter> = Vec::new();
        let mut pending: Vec<(DeadLetter, Record)> = Vec::new();
        for l in letters {
            match l.decode() {
                Some(r) => pending.push((l, r)),
                None => keep.push(l),
            }
        }
        let mut chunks = pending.chunks(REDRIVE_BATCH);
        for chunk in chunks.by_ref() {
            let records: Vec<Record> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let report = match tokio::time::timeout(op_timeout, sink.write(&records)).await {
                Ok(Ok(report)) => report,
                Ok(Err(failure)) => {
                    outcome.written += failure.done.written;
                    outcome.duplicates += failure.done.duplicates;
                    let left: HashSet<String> = failure.remaining.iter().map(Record::key).collect();
                    keep.extend(chunk.iter().filter(|(l, _)| left.contains(&l.key)).map(|(l, _)| l.clone()));
                    keep.extend(refused_again(chunk, &failure.done.rejected, &mut outcome.refused));
                    outcome.stopped = Some(failure.reason);
                    break;
                }
                Err(_) => {
                    keep.extend(chunk.iter().map(|(l, _)| l.clone()));
                    outcome.stopped = Some(format!("a write took longer than {} ms", op_timeout.as_millis()));
                    break;
                }
            };
            outcome.written += report.written;
            outcome.duplicates += report.duplicates;
            keep.extend(refused_again(chunk, &report.rejected, &mut outcome.refused));
        }
        keep.extend(chunks.flatten().map(|(l, _)| l.clone()));
        outcome.kept = keep.len() - outcome.refused;
        // Put back what stays, then drop the moved file.
        let _lock = self.lock(name)?;
        self.append_letters(name, &keep)?;
        fs::remove_file(&moved).map_err(io("removing", &moved))?;
        Ok(outcome)
    }
}

/// The letters of a chunk the sink refused again, with the new reason and time.
fn refused_again(chunk: &[(DeadLetter, Record)], rejected: &[Rejected], count: &mut usize) -> Vec<DeadLetter> {
    let now = Utc::now();
    let mut out = Vec::new();
    for r in rejected {
        if let Some((l, _)) = chunk.iter().find(|(l, _)| l.key == r.key) {
            out.push(DeadLetter { at: now, reason: r.reason.clone(), ..l.clone() });
            *count += 1;
        }
    }
    out
}

fn read(path: &Path) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("opening", path)(e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io("reading", path))?;
        if line.trim().is_empty() {
            continue;
        }
        let letter = serde_json::from_str(&line).map_err(|source| DeadLetterError::Corrupt {
            path: path.display().to_string(),
            line: i + 1,
            source,
        })?;
        out.push(letter);
    }
    Ok(out)
}

/// Replaces a file's content with these letters, synced, through a temporary file.
fn write_all(path: &Path, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
    let tmp = path.with_extension("tmp");
    let mut text = Vec::new();
    for l in letters {
        serde_json::to_writer(&mut text, l).expect("dead letters serialize");
        text.push(b'\n');
    }
    let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(&text).map_err(io("writing", &tmp))?;
    f.sync_data().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming", &tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(key: &str, data: &[u8]) -> Rejected {
        Rejected { key: key.into(), reason: "refused".into(), data: data.to_vec() }
    }

    #[test]
    fn letters_keep_their_bytes_and_list_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let dead = DeadLetters::in_spool(dir.path());
        assert!(dead.list("mongo").unwrap().is_empty(), "no file is no letters");
        dead.append("mongo", &[rejected("a", b"{\"x\":1}"), rejected("b", &[0xff, 0x00])]).unwrap();
        dead.append("mongo", &[rejected("c", b"{}")]).unwrap();
        let got = dead.list("mongo").unwrap();
        assert_eq!(got.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(got[0].record.as_deref(), Some("{\"x\":1}"));
        assert_eq!(got[1].record_hex.as_deref(), Some("ff00"), "bytes that are not UTF-8 are kept in hex");
        assert!(dead.list("kinesis").unwrap().is_empty(), "one file per sink");
    }

    #[test]
    fn a_damaged_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let dead = DeadLetters::in_spool(dir.path());
        dead.append("mongo", &[rejected("a", b"{}")]).unwrap();
        OpenOptions::new().append(true).open(dead.path("mongo")).unwrap().write_all(b"garbage\n").unwrap();
        let err = dead.list("mongo").unwrap_err().to_string();
        assert!(err.contains("mongo.jsonl line 2"), "{err}");
    }
}
