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

/// The largest `metadata.json` an archive may hold: index definitions are a few KB, so a
/// larger one is damage or a crafted archive, refused before it is held in memory.
pub const MAX_METADATA: u64 = 16 << 20;

/// What a full read of an archive found.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents {
    pub sha256: String,
    pub bytes: u64,
    /// (database, collection) → documents.
    pub documents: BTreeMap<(String, String), u64>,
    /// (database, collection) → index specs.
    pub indexes: BTreeMap<(String, String), Vec<Document>>,
    /// The stored version that was read (a restore reads the same one again).
    pub version: crate::s3::ObjectVersion,
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
            (&mut entry).take(MAX_METADATA + 1).read_to_string(&mut text).map_err(corrupt)?;
            if text.len() as u64 > MAX_METADATA {
                return Err(BackupError::corrupt(format!("{path}: larger than {MAX_METADATA} bytes")));
            }
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
    Ok(Contents { sha256, bytes, documents, indexes, version: Default::default() })
}

/// Runs `read_archive` over a streamed S3 download in a blocking thread; of the version
/// `pin` names, when given.
pub(crate) async fn read_remote(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    pin: Option<&crate::s3::ObjectVersion>,
    on_doc: impl FnMut(&str, &str, Option<RawDocumentBuf>) -> Result<(), BackupError> + Send + 'static,
) -> Result<Contents, BackupError> {
    let (body, version) = crate::s3::open(s3, bucket, key, pin).await?;
    let reader = tokio_util::io::SyncIoBridge::new(body.into_async_read());
    let mut contents = tokio::task::spawn_blocking(move || read_archive(reader, on_doc))
        .await
        .map_err(|e| BackupError::Io { what: "archive reader".into(), source: Some(Box::new(e)) })??;
    contents.version = version;
    Ok(contents)
}

/// Checks an archive against its manifest; marks it verified.
pub async fn verify(s3: &aws_sdk_s3::Client, target: &Target, key: &str) -> Result<(Manifest, Contents), BackupError> {
    let manifest: Manifest = match crate::s3::get_json(s3, &target.bucket, &manifest_key(key)).await? {
        Some(v) => serde_json::from_value(v).map_err(|e| BackupError::corrupt_by("manifest", e))?,
        None => return Err(BackupError::NotFound(manifest_key(key))),
    };
    let contents = read_remote(s3, &target.bucket, key, None, |_, _, _| Ok(())).await?;
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn archive(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        let mut gz = tar.into_inner().unwrap();
        gz.flush().unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn an_oversized_metadata_entry_is_refused_before_it_is_held() {
        let mut huge = b"{\"indexes\": [], \"pad\": \"".to_vec();
        huge.resize(MAX_METADATA as usize + 10, b'x');
        huge.extend_from_slice(b"\"}");
        let bytes = archive(&[("cashtag/posts.metadata.json", huge)]);
        let err = read_archive(bytes.as_slice(), |_, _, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("larger than 16777216 bytes"), "{err}");
        let small = archive(&[("cashtag/posts.metadata.json", br#"{"indexes": []}"#.to_vec())]);
        let contents = read_archive(small.as_slice(), |_, _, _| Ok(())).unwrap();
        assert_eq!(contents.indexes.len(), 1);
    }
}
