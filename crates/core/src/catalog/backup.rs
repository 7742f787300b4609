//! Events of the backup service.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use super::*;

pub fn backup_start() -> EventDraft {
    activity(BACKUP_START, "backup starting")
}

pub fn backup_done(key: &str, collections: usize, documents: u64, bytes: u64, secs: f64) -> EventDraft {
    activity(
        BACKUP_DONE,
        format!("backup done: {collections} collections, {documents} documents, {bytes} bytes in {secs:.1} s"),
    )
    .with("key", key)
    .with("bytes", bytes)
    .with("documents", documents)
    .with("seconds", secs)
}

pub fn backup_failed(problem: impl Display, secs: f64, exit_code: u8) -> EventDraft {
    error(BACKUP_FAILED, format!("backup failed after {secs:.1} s: {problem}")).with("exit_code", exit_code)
}

pub fn backup_overdue(due: DateTime<Utc>, grace_mins: u64) -> EventDraft {
    error(BACKUP_OVERDUE, format!("no backup since the run due at {} ({grace_mins} min allowed)", rfc3339(&due)))
}

pub fn backup_missed(due: DateTime<Utc>) -> EventDraft {
    warning(BACKUP_MISSED, format!("the backup due at {} did not run; running it now", rfc3339(&due)))
}
