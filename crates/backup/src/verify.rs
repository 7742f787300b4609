//! `verify`: reads an archive through (streamed), checks its SHA-256, parses every BSON
//! document and compares the counts with the manifest; marks the backup verified. The
//! reader is shared with `restore`.

use std::collections::BTreeMap;
use std::io::Read;

use bson::{Document, RawDocumentBuf};
use chrono::Utc;
use flate2::read::GzDecoder;

use crate::archive::{HashingReader, read_document, split_entry};
use crate::manifest::{Manifest, manifest_key, verified_key};
use crate::{BackupError, Target};

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
pub(crate) fn read_archive<R: Read>(
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
pub(crate) async fn read_remote(
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
