//! The manifest stored next to each archive: what it holds and its checksum.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    pub database: String,
    pub collection: String,
    pub documents: u64,
    /// Bytes of the collection's `.bson` file.
    pub bytes: u64,
    pub indexes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub key: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub created_at: DateTime<Utc>,
    pub collections: Vec<CollectionEntry>,
    /// Size of the compressed archive.
    pub archive_bytes: u64,
    /// SHA-256 of the compressed archive, hex.
    pub sha256: String,
    pub duration_secs: f64,
}

pub const FORMAT: &str = "cashtag-backup/1 (mongodump directory format in a gzip tar)";

impl Manifest {
    pub fn documents(&self) -> u64 {
        self.collections.iter().map(|c| c.documents).sum()
    }
}

/// The manifest's key for an archive key.
pub fn manifest_key(archive_key: &str) -> String {
    format!("{}.manifest.json", archive_key.trim_end_matches(".tar.gz"))
}

/// The marker written when `verify` succeeds.
pub fn verified_key(archive_key: &str) -> String {
    format!("{}.verified", archive_key.trim_end_matches(".tar.gz"))
}
