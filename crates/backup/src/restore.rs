//! `restore`: verifies, then restores documents and indexes, into another database if
//! asked; refuses to overwrite a non-empty collection without `drop`.

use std::collections::BTreeMap;

use bson::{Document, RawDocumentBuf, doc};
use mongodb::Client;
use tokio::sync::mpsc;

use crate::manifest::{CollectionEntry, Manifest};
use crate::verify::{read_remote, verify};
use crate::{BackupError, Target, mongo_err};
use cashtag_telemetry::progress::{self, Progress};

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
