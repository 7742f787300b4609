//! cashtag-backup's logic: MongoDB archives an operator can trust.
//!
//! - [`backup`]: dumps databases collection by collection in the **mongodump directory
//!   format** (`<db>/<collection>.bson`, `<db>/<collection>.metadata.json`), packs them
//!   as a gzip tar and **streams** it to S3 by multipart upload (server-side encryption
//!   on), so memory stays at a couple of upload parts whatever the database size (each
//!   collection is staged in a temporary file, because a tar entry declares its size
//!   first). A manifest with the collections, document counts, sizes and the archive's
//!   SHA-256 goes next to it.
//! - [`verify`]: downloads (streamed), checks the SHA-256, parses every BSON document and
//!   compares counts with the manifest; marks the backup verified.
//! - [`restore`]: verifies, then restores documents and indexes, into another database if
//!   asked; refuses to overwrite a non-empty collection without `drop`.
//! - [`list`] and [`prune`] (keep the newest backup of each of the last N days and M
//!   weeks), and [`schedule`]'s timing.

pub mod archive;
mod dump;
mod list;
pub mod manifest;
pub mod prune;
mod restore;
pub mod s3;
pub mod schedule;
mod verify;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use dump::backup;
pub use list::{Listed, list};
pub use prune::prune;
pub use restore::{RestoreOptions, restore};
pub use verify::{Contents, verify};

/// The cause of a failure, kept so the whole chain is printed.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, with the exit code an operator's script can act on.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("no usable AWS credentials: {0}")]
    Credentials(String),
    #[error("the S3 bucket {0:?} does not exist (create it, or set backup.bucket)")]
    NoBucket(String),
    #[error("S3: {what}")]
    S3 {
        what: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("MongoDB: {what}")]
    Mongo {
        what: String,
        #[source]
        source: mongodb::error::Error,
    },
    #[error("the backup is damaged: {what}")]
    Corrupt {
        what: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("no backup at {0}")]
    NotFound(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: Option<Cause>,
    },
}

impl BackupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Config(_) => 2,
            BackupError::Credentials(_) => 3,
            BackupError::NoBucket(_) => 4,
            BackupError::Mongo { .. } => 5,
            BackupError::Corrupt { .. } => 6,
            BackupError::NotFound(_) => 7,
            BackupError::Refused(_) => 8,
            BackupError::S3 { .. } | BackupError::Io { .. } => 1,
        }
    }

    /// A damaged backup, with the reason.
    pub fn corrupt(what: impl Into<String>) -> Self {
        BackupError::Corrupt { what: what.into(), source: None }
    }

    /// A damaged backup, with what found it.
    pub fn corrupt_by(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        BackupError::Corrupt { what: what.into(), source: Some(source.into()) }
    }

    /// A local failure without an underlying error.
    pub fn io(what: impl Into<String>) -> Self {
        BackupError::Io { what: what.into(), source: None }
    }

    /// The message with every cause, as one line.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

impl cashtag_core::exit::ExitStatus for BackupError {
    fn exit_code(&self) -> u8 {
        BackupError::exit_code(self)
    }
}

/// The bytes of the files under a directory (for the log line about what was freed).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mongo_err(what: &str) -> impl Fn(mongodb::error::Error) -> BackupError + '_ {
    move |source| BackupError::Mongo { what: what.to_string(), source }
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io { what: what.to_string(), source: Some(Box::new(e)) }
}

/// Where backups go and how.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
    pub env: String,
    pub part_size: usize,
    pub work_dir: Option<PathBuf>,
    /// Create the bucket when it is missing: only against an emulator (`aws.endpoint`
    /// set), which starts empty and forgets it on every restart.
    pub create_bucket: bool,
    /// How long a backup may run (`run_once`).
    pub deadline: std::time::Duration,
}

impl Target {
    pub fn from_settings(s: &cashtag_core::config::BackupSettings) -> Self {
        Target {
            create_bucket: false,
            deadline: std::time::Duration::from_secs(s.deadline_mins * 60),
            bucket: s.bucket.clone(),
            prefix: s.prefix.clone(),
            env: s.env.clone(),
            part_size: (s.part_size_mb as usize) * 1024 * 1024,
            work_dir: (!s.work_dir.is_empty()).then(|| PathBuf::from(&s.work_dir)),
        }
    }

    /// Keys of this environment start here.
    pub fn root(&self) -> String {
        format!("{}/{}/", self.prefix.trim_end_matches('/'), self.env)
    }

    /// `backups/<env>/YYYY/MM/DD/cashtag-YYYYMMDDTHHMMSSZ.tar.gz`.
    pub fn key_for(&self, at: DateTime<Utc>) -> String {
        format!("{}{}/cashtag-{}.tar.gz", self.root(), at.format("%Y/%m/%d"), at.format("%Y%m%dT%H%M%SZ"))
    }
}

/// The time in a backup key's file name.
pub fn key_time(key: &str) -> Option<DateTime<Utc>> {
    let name = key.rsplit('/').next()?;
    let stamp = name.strip_prefix("cashtag-")?.strip_suffix(".tar.gz")?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
}
