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
pub mod manifest;
pub mod prune;
pub mod s3;
pub mod schedule;

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bson::{Document, RawDocumentBuf, doc};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::TryStreamExt;
use mongodb::Client;
use tokio::sync::mpsc;

use crate::archive::{HashingReader, HashingWriter, PartWriter, read_document, split_entry};
use crate::manifest::{CollectionEntry, Manifest, manifest_key, verified_key};
use cashtag_telemetry::progress::{self, Progress};

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
}

impl Target {
    pub fn from_settings(s: &cashtag_core::config::BackupSettings) -> Self {
        Target {
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
    crate::s3::check_bucket(s3, &target.bucket).await?;
    let key = target.key_for(now);
    let staging = match &target.work_dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(io_err("staging directory"))?;

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

/// What a full read of an archive found.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents {
    pub sha256: String,
    pub bytes: u64,
    /// (database, collection) → documents.
    pub documents: BTreeMap<(String, String), u64>,
    /// (database, collection) → index specs.
    pub indexes: BTreeMap<(String, String), Vec<Document>>,
}

/// Reads an archive through, validating every document. `on_doc` sees each document
/// (restore inserts them), and `None` at the end of each collection; it may stop the read
/// by returning an error.
fn read_archive<R: Read>(
    reader: R,
    mut on_doc: impl FnMut(&str, &str, Option<RawDocumentBuf>) -> Result<(), BackupError>,
) -> Result<Contents, BackupError> {
    let corrupt = |e: std::io::Error| BackupError::corrupt_by("reading the archive", e);
    let hashing = HashingReader::new(reader);
    let mut tar = tar::Archive::new(GzDecoder::new(hashing));
    let mut documents = BTreeMap::new();
    let mut indexes = BTreeMap::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.to_string_lossy().into_owned();
        let Some((db, coll, kind)) = split_entry(&path) else { continue };
        if kind == "bson" {
            let mut n = 0u64;
            while let Some(doc) = read_document(&mut entry)
                .map_err(|e| BackupError::corrupt_by(format!("{path}, document {}", n + 1), e))?
            {
                n += 1;
                on_doc(&db, &coll, Some(doc))?;
            }
            on_doc(&db, &coll, None)?;
            documents.insert((db, coll), n);
        } else {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(corrupt)?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| BackupError::corrupt_by(path.clone(), e))?;
            let specs = v["indexes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| bson::Bson::try_from(i.clone()).ok())
                        .filter_map(|b| b.as_document().cloned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            indexes.insert((db, coll), specs);
        }
    }
    let gz = tar.into_inner();
    let (sha256, bytes) = gz.into_inner().finish().map_err(corrupt)?;
    Ok(Contents { sha256, bytes, documents, indexes })
}

/// Runs `read_archive` over a streamed S3 download in a blocking thread.
async fn read_remote(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    on_doc: impl FnMut(&str, &str, Option<RawDocumentBuf>) -> Result<(), BackupError> + Send + 'static,
) -> Result<Contents, BackupError> {
    let body = crate::s3::open(s3, bucket, key).await?;
    let reader = tokio_util::io::SyncIoBridge::new(body.into_async_read());
    tokio::task::spawn_blocking(move || read_archive(reader, on_doc))
        .await
        .map_err(|e| BackupError::Io { what: "archive reader".into(), source: Some(Box::new(e)) })?
}

/// Checks an archive against its manifest; marks it verified.
pub async fn verify(s3: &aws_sdk_s3::Client, target: &Target, key: &str) -> Result<(Manifest, Contents), BackupError> {
    let manifest: Manifest = match crate::s3::get_json(s3, &target.bucket, &manifest_key(key)).await? {
        Some(v) => serde_json::from_value(v).map_err(|e| BackupError::corrupt_by("manifest", e))?,
        None => return Err(BackupError::NotFound(manifest_key(key))),
    };
    let contents = read_remote(s3, &target.bucket, key, |_, _, _| Ok(())).await?;
    if contents.sha256 != manifest.sha256 {
        return Err(BackupError::corrupt(format!(
            "SHA-256 mismatch: the manifest says {}, the archive is {}",
            manifest.sha256, contents.sha256
        )));
    }
    for c in &manifest.collections {
        let got = contents.documents.get(&(c.database.clone(), c.collection.clone())).copied();
        if got != Some(c.documents) {
            return Err(BackupError::corrupt(format!(
                "{}/{}: the manifest says {} documents, the archive has {}",
                c.database,
                c.collection,
                c.documents,
                got.map_or("none".into(), |n| n.to_string())
            )));
        }
    }
    let marker = serde_json::json!({"verified_at": cashtag_core::time::rfc3339(&Utc::now()), "sha256": contents.sha256, "documents": manifest.documents()});
    crate::s3::put_json(s3, &target.bucket, &verified_key(key), &marker).await?;
    Ok((manifest, contents))
}

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore into this database instead of the original one.
    pub to_db: Option<String>,
    /// Drop target collections that hold documents.
    pub drop: bool,
    /// Only these collections (empty = all).
    pub collections: Vec<String>,
}

/// Restores documents and indexes from a verified archive. Returns documents restored.
pub async fn restore(
    mongo: &Client,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    key: &str,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<u64, BackupError> {
    let (manifest, _) = verify(s3, target, key).await?;
    let dbs: std::collections::BTreeSet<&str> = manifest.collections.iter().map(|c| c.database.as_str()).collect();
    if opts.to_db.is_some() && dbs.len() > 1 {
        return Err(BackupError::Config(format!(
            "--to-db needs an archive of one database; this one has {}",
            dbs.len()
        )));
    }
    let wanted = |c: &str| opts.collections.is_empty() || opts.collections.iter().any(|w| w == c);
    let target_db = |db: &str| opts.to_db.clone().unwrap_or_else(|| db.to_string());
    let chosen: Vec<&CollectionEntry> = manifest.collections.iter().filter(|c| wanted(&c.collection)).collect();
    for w in &opts.collections {
        if !manifest.collections.iter().any(|c| &c.collection == w) {
            return Err(BackupError::Config(format!("collection {w:?} is not in this backup")));
        }
    }
    // Refuse before touching anything.
    for c in &chosen {
        let coll = mongo.database(&target_db(&c.database)).collection::<Document>(&c.collection);
        let n = coll.estimated_document_count().await.map_err(mongo_err("checking the target"))?;
        if n > 0 && !opts.drop {
            return Err(BackupError::Refused(format!(
                "{}.{} already holds {n} documents; use --drop to replace it",
                target_db(&c.database),
                c.collection
            )));
        }
    }
    // Everything goes into temporary collections first; only when all of them are
    // complete (documents and indexes) are they renamed over the targets, so a failure on
    // the way leaves the old data as it was.
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f").to_string();
    let staged = |coll: &str| format!("{coll}.restoring-{stamp}");
    // What an earlier restore that failed half-way left behind.
    for c in &chosen {
        let db = mongo.database(&target_db(&c.database));
        let names = db.list_collection_names().await.map_err(mongo_err("listing the target"))?;
        let prefix = format!("{}.restoring-", c.collection);
        for n in names.iter().filter(|n| n.starts_with(&prefix)) {
            db.collection::<Document>(n).drop().await.map_err(mongo_err("dropping a left-over restore"))?;
        }
    }
    let result = restore_into(mongo, s3, target, key, &manifest, &chosen, &target_db, &staged, progress).await;
    let restored = match result {
        Ok(n) => n,
        Err(e) => {
            for c in &chosen {
                let db = mongo.database(&target_db(&c.database));
                let _ = db.collection::<Document>(&staged(&c.collection)).drop().await;
            }
            return Err(e);
        }
    };
    for c in &chosen {
        let tdb = target_db(&c.database);
        let from = format!("{tdb}.{}", staged(&c.collection));
        let to = format!("{tdb}.{}", c.collection);
        mongo
            .database("admin")
            .run_command(doc! {"renameCollection": &from, "to": &to, "dropTarget": true})
            .await
            .map_err(mongo_err(&format!("swapping {to} in")))?;
    }
    Ok(restored)
}

/// Restores the chosen collections' documents and indexes into their staged names.
#[allow(clippy::too_many_arguments)]
async fn restore_into(
    mongo: &Client,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    key: &str,
    manifest: &Manifest,
    chosen: &[&CollectionEntry],
    target_db: &(dyn Fn(&str) -> String + Sync),
    staged: &(dyn Fn(&str) -> String + Sync),
    progress: &Progress,
) -> Result<u64, BackupError> {
    // Stream documents into the target in batches.
    let (tx, mut rx) = mpsc::channel::<(String, String, Vec<RawDocumentBuf>)>(2);
    let keep: std::collections::BTreeSet<(String, String)> =
        chosen.iter().map(|c| (c.database.clone(), c.collection.clone())).collect();
    // A batch of up to 1,000 documents or 8 MiB, sent when full and at each collection's end.
    let mut batch: Vec<RawDocumentBuf> = Vec::new();
    let mut batch_bytes = 0usize;
    let reader = read_remote(s3, &target.bucket, key, move |db, coll, doc| {
        if !keep.contains(&(db.to_string(), coll.to_string())) {
            return Ok(());
        }
        let end = doc.is_none();
        if let Some(d) = doc {
            batch_bytes += d.as_bytes().len();
            batch.push(d);
        }
        if !batch.is_empty() && (end || batch.len() >= 1_000 || batch_bytes >= 8 << 20) {
            batch_bytes = 0;
            tx.blocking_send((db.to_string(), coll.to_string(), std::mem::take(&mut batch)))
                .map_err(|_| BackupError::io("the restore writer stopped"))?;
        }
        Ok(())
    });
    // The writer owns the receiver: when it fails, the channel closes and the reader's
    // blocked send returns instead of waiting forever.
    let writer = async move {
        let mut restored = 0u64;
        let mut bars: BTreeMap<String, progress::Bar> = BTreeMap::new();
        while let Some((db, coll, docs)) = rx.recv().await {
            let n = docs.len() as u64;
            let tdb = target_db(&db);
            mongo
                .database(&tdb)
                .collection::<RawDocumentBuf>(&staged(&coll))
                .insert_many(docs)
                .ordered(false)
                .await
                .map_err(mongo_err(&format!("restoring {tdb}.{coll}")))?;
            restored += n;
            let total = manifest
                .collections
                .iter()
                .find(|c| c.database == db && c.collection == coll)
                .map_or(0, |c| c.documents);
            let bar = bars
                .entry(format!("{tdb}/{coll}"))
                .or_insert_with(|| progress.task(&format!("{tdb}/{coll}"), total, "docs"));
            bar.add(n);
        }
        for (_, b) in bars {
            b.done();
        }
        Ok::<u64, BackupError>(restored)
    };
    let (read, written) = tokio::join!(reader, writer);
    // The writer's error is the cause when both failed (the reader then only saw it stop).
    let restored = written?;
    let contents = read?;
    // Indexes (the `_id` index exists already).
    for c in chosen {
        let specs: Vec<Document> = contents
            .indexes
            .get(&(c.database.clone(), c.collection.clone()))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.get_str("name").ok() != Some("_id_"))
            .map(|mut s| {
                s.remove("v");
                s.remove("ns");
                s
            })
            .collect();
        if specs.is_empty() {
            continue;
        }
        let tdb = target_db(&c.database);
        mongo
            .database(&tdb)
            .run_command(doc! {"createIndexes": staged(&c.collection), "indexes": specs})
            .await
            .map_err(mongo_err(&format!("creating indexes on {tdb}.{}", c.collection)))?;
    }
    Ok(restored)
}

/// One backup as `list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub key: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
    pub bytes: i64,
    pub collections: Option<usize>,
    pub documents: Option<u64>,
    pub verified: bool,
}

pub async fn list(s3: &aws_sdk_s3::Client, target: &Target) -> Result<Vec<Listed>, BackupError> {
    crate::s3::check_bucket(s3, &target.bucket).await?;
    let objects = crate::s3::list(s3, &target.bucket, &target.root()).await?;
    let keys: std::collections::HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    let mut out = Vec::new();
    for (key, bytes) in &objects {
        let Some(at) = key_time(key) else { continue };
        let manifest: Option<Manifest> = crate::s3::get_json(s3, &target.bucket, &manifest_key(key))
            .await?
            .and_then(|v| serde_json::from_value(v).ok());
        out.push(Listed {
            key: key.clone(),
            at,
            bytes: *bytes,
            collections: manifest.as_ref().map(|m| m.collections.len()),
            documents: manifest.as_ref().map(|m| m.documents()),
            verified: keys.contains(verified_key(key).as_str()),
        });
    }
    out.sort_by_key(|l| l.at);
    Ok(out)
}

/// Applies the retention policy; deletes only with `yes`. Returns (kept, deleted) keys.
pub async fn prune(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    keep_daily: usize,
    keep_weekly: usize,
    yes: bool,
) -> Result<(Vec<String>, Vec<String>), BackupError> {
    crate::s3::check_bucket(s3, &target.bucket).await?;
    let objects = crate::s3::list(s3, &target.bucket, &target.root()).await?;
    let backups: Vec<(String, DateTime<Utc>)> =
        objects.iter().filter_map(|(k, _)| key_time(k).map(|t| (k.clone(), t))).collect();
    let mut keep = crate::prune::select_keep(&backups, keep_daily, keep_weekly);
    // Whatever the retention says, the newest verified backup stays: it is the one an
    // operator knows restores.
    let all_keys: std::collections::HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    if let Some((newest_verified, _)) =
        backups.iter().filter(|(k, _)| all_keys.contains(verified_key(k).as_str())).max_by_key(|(_, t)| *t)
    {
        keep.insert(newest_verified.clone());
    }
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for (k, _) in &backups {
        if keep.contains(k) {
            kept.push(k.clone());
        } else {
            deleted.push(k.clone());
        }
    }
    if yes {
        let all: std::collections::HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
        for k in &deleted {
            for obj in [k.clone(), manifest_key(k), verified_key(k)] {
                if all.contains(obj.as_str()) {
                    crate::s3::delete(s3, &target.bucket, &obj).await?;
                }
            }
        }
    }
    kept.sort();
    deleted.sort();
    Ok((kept, deleted))
}
