//! `backup`: dumps databases collection by collection in the mongodump directory format,
//! packs them as a gzip tar and streams it to S3 by multipart upload, with a manifest
//! beside it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bson::{Document, RawDocumentBuf, doc};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::TryStreamExt;
use mongodb::Client;
use tokio::sync::mpsc;

use crate::archive::{HashingWriter, PartWriter};
use crate::manifest;
use crate::manifest::{CollectionEntry, Manifest, manifest_key};
use crate::{BackupError, Target, io_err, mongo_err};
use cashtag_telemetry::progress::Progress;

enum ArchiveItem {
    File { name: String, path: PathBuf, size: u64 },
    Bytes { name: String, data: Vec<u8> },
}

fn build_archive(items: std::sync::mpsc::Receiver<ArchiveItem>, parts: PartWriter) -> std::io::Result<(String, u64)> {
    let gz = GzEncoder::new(HashingWriter::new(parts), Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = Utc::now().timestamp().max(0) as u64;
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(mtime);
        match item {
            ArchiveItem::File { name, path, size } => {
                h.set_size(size);
                tar.append_data(&mut h, &name, std::fs::File::open(&path)?)?;
                // In the archive now: the disk holds one collection at a time, not the dump.
                std::fs::remove_file(&path)?;
            }
            ArchiveItem::Bytes { name, data } => {
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, &name, data.as_slice())?;
            }
        }
    }
    let gz = tar.into_inner()?;
    let hashing = gz.finish()?;
    let (parts, sha, bytes) = hashing.finish();
    parts.close()?;
    Ok((sha, bytes))
}

/// The index definitions of a collection, as `listIndexes` returns them.
async fn indexes(db: &mongodb::Database, coll: &str) -> Result<Vec<Document>, BackupError> {
    let reply =
        db.run_command(doc! {"listIndexes": coll}).await.map_err(mongo_err(&format!("listing indexes of {coll}")))?;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|e| BackupError::Io { what: "listIndexes reply".into(), source: Some(Box::new(e)) })?;
    Ok(batch.iter().filter_map(|b| b.as_document().cloned()).collect())
}

/// mongodump's `metadata.json`: the indexes in relaxed extended JSON.
fn metadata_json(coll: &str, indexes: &[Document]) -> Vec<u8> {
    let idx: Vec<serde_json::Value> =
        indexes.iter().map(|d| bson::Bson::Document(d.clone()).into_relaxed_extjson()).collect();
    serde_json::to_vec(&serde_json::json!({"indexes": idx, "collectionName": coll, "type": "collection"}))
        .expect("serializes")
}

/// Dumps one collection into a staging file: (documents, bytes).
async fn dump_collection(
    db: &mongodb::Database,
    coll: &str,
    path: &Path,
    progress: &Progress,
) -> Result<(u64, u64), BackupError> {
    let total = db.collection::<Document>(coll).estimated_document_count().await.unwrap_or(0);
    let mut bar = progress.task(&format!("{}/{coll}", db.name()), total, "docs");
    let file = std::fs::File::create(path).map_err(io_err("staging file"))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut cursor = db
        .collection::<RawDocumentBuf>(coll)
        .find(doc! {})
        .batch_size(1_000)
        .await
        .map_err(mongo_err(&format!("reading {coll}")))?;
    let (mut docs, mut bytes) = (0u64, 0u64);
    while let Some(d) = cursor.try_next().await.map_err(mongo_err(&format!("reading {coll}")))? {
        out.write_all(d.as_bytes()).map_err(io_err("staging file"))?;
        docs += 1;
        bytes += d.as_bytes().len() as u64;
        bar.set_count(docs);
    }
    out.flush().map_err(io_err("staging file"))?;
    bar.finish(docs);
    Ok((docs, bytes))
}

/// A backup's staging directory (`cashtag-staging-*` in `backup.work_dir`), locked for the
/// life of the backup. Directories a killed backup left are removed when the next one
/// starts (their lock is free), so an OOM kill or a power loss never fills the disk for
/// good; a staged collection is removed as soon as it is in the archive.
struct Staging {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl Staging {
    const PREFIX: &'static str = "cashtag-staging-";

    fn create(work_dir: Option<&std::path::Path>) -> Result<Staging, BackupError> {
        let root = work_dir.map(std::path::Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&root).map_err(io_err("creating backup.work_dir"))?;
        Self::clean(&root);
        let dir =
            tempfile::Builder::new().prefix(Self::PREFIX).tempdir_in(&root).map_err(io_err("staging directory"))?;
        let lock = std::fs::File::create(dir.path().join("LOCK")).map_err(io_err("staging lock"))?;
        lock.lock().map_err(io_err("staging lock"))?;
        Ok(Staging { dir, _lock: lock })
    }

    /// Removes what earlier backups left, unless one is still running (its lock is held).
    fn clean(root: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(root) else { return };
        for e in entries.flatten() {
            let path = e.path();
            if !e.file_name().to_string_lossy().starts_with(Self::PREFIX) || !path.is_dir() {
                continue;
            }
            let free = match std::fs::File::open(path.join("LOCK")) {
                Ok(f) => f.try_lock().is_ok(),
                // No lock file: killed before it was made.
                Err(_) => true,
            };
            if free {
                let freed = crate::dir_bytes(&path);
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {
                        tracing::warn!(dir = %path.display(), bytes = freed, "removed what a killed backup staged")
                    }
                    Err(err) => {
                        tracing::warn!(dir = %path.display(), error = %err, "cannot remove a killed backup's staging")
                    }
                }
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Backs up the databases to S3 (or, with `local`, to a file). Returns the manifest.
pub async fn backup(
    mongo: &Client,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    databases: &[String],
    now: DateTime<Utc>,
    progress: &Progress,
) -> Result<Manifest, BackupError> {
    let started = Instant::now();
    if target.create_bucket && cashtag_stores::s3::ensure_bucket(s3, &target.bucket).await == Ok(true) {
        tracing::info!(bucket = %target.bucket, "created the bucket in the emulator");
    }
    crate::s3::check_bucket(s3, &target.bucket).await?;
    let key = target.key_for(now);
    let staging = Staging::create(target.work_dir.as_deref())?;

    let (part_tx, part_rx) = mpsc::channel::<Vec<u8>>(1);
    // The upload completes only when the whole dump succeeded; otherwise it is aborted and
    // no partial archive ever appears in the bucket.
    let (commit_tx, commit_rx) = tokio::sync::oneshot::channel::<()>();
    let uploader =
        tokio::spawn(crate::s3::upload_parts(s3.clone(), target.bucket.clone(), key.clone(), part_rx, commit_rx));
    let (item_tx, item_rx) = std::sync::mpsc::sync_channel::<ArchiveItem>(1);
    let part_size = target.part_size;
    let builder = tokio::task::spawn_blocking(move || build_archive(item_rx, PartWriter::new(part_size, part_tx)));

    let mut entries = Vec::new();
    let dump: Result<(), BackupError> = async {
        for db_name in databases {
            let db = mongo.database(db_name);
            let mut names: Vec<String> =
                db.list_collection_names().await.map_err(mongo_err(&format!("listing collections of {db_name}")))?;
            names.retain(|n| !n.starts_with("system."));
            names.sort();
            for coll in names {
                let path = staging.path().join(format!("{db_name}.{coll}.bson"));
                let (docs, bytes) = dump_collection(&db, &coll, &path, progress).await?;
                let idx = indexes(&db, &coll).await?;
                let send = |item| item_tx.send(item).map_err(|_| BackupError::io("the archive writer stopped"));
                send(ArchiveItem::File { name: format!("{db_name}/{coll}.bson"), path: path.clone(), size: bytes })?;
                send(ArchiveItem::Bytes {
                    name: format!("{db_name}/{coll}.metadata.json"),
                    data: metadata_json(&coll, &idx),
                })?;
                entries.push(CollectionEntry {
                    database: db_name.clone(),
                    collection: coll,
                    documents: docs,
                    bytes,
                    indexes: idx.len(),
                });
            }
        }
        Ok(())
    }
    .await;
    drop(item_tx);
    let built = builder.await.map_err(|e| BackupError::Io { what: "archive writer".into(), source: Some(Box::new(e)) });
    if dump.is_ok() && matches!(built, Ok(Ok(_))) {
        let _ = commit_tx.send(());
    } else {
        drop(commit_tx);
    }
    let uploaded =
        uploader.await.map_err(|e| BackupError::Io { what: "uploader".into(), source: Some(Box::new(e)) })?;
    dump?;
    let (sha256, archive_bytes) = built?.map_err(io_err("writing the archive"))?;
    let uploaded = uploaded?;
    debug_assert_eq!(uploaded, archive_bytes);
    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        key: key.clone(),
        created_at: now,
        collections: entries,
        archive_bytes,
        sha256,
        duration_secs: started.elapsed().as_secs_f64(),
    };
    let manifest_json = serde_json::to_value(&manifest).expect("serializes");
    if let Err(e) = crate::s3::put_json(s3, &target.bucket, &manifest_key(&key), &manifest_json).await {
        // An archive without its manifest is not a backup: remove it.
        let _ = crate::s3::delete(s3, &target.bucket, &key).await;
        return Err(e);
    }
    Ok(manifest)
}

#[cfg(test)]
mod staging_tests {
    use super::*;

    /// What a killed backup staged is removed when the next one starts; a running one's
    /// staging (its lock held) is left alone; a finished one leaves nothing.
    #[test]
    fn a_killed_backups_staging_is_removed_and_a_running_ones_kept() {
        let work = tempfile::tempdir().unwrap();
        let killed = work.path().join("cashtag-staging-killed");
        std::fs::create_dir_all(&killed).unwrap();
        std::fs::write(killed.join("LOCK"), b"").unwrap();
        std::fs::write(killed.join("cashtag.posts.bson"), vec![0u8; 1 << 20]).unwrap();
        let running = Staging::create(Some(work.path())).unwrap();
        let running_path = running.path().to_path_buf();
        assert!(!killed.exists(), "the killed backup's files are gone");
        let next = Staging::create(Some(work.path())).unwrap();
        assert!(running_path.exists(), "a running backup's staging is kept");
        drop(running);
        drop(next);
        let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "finished backups leave nothing: {left:?}");
    }
}
