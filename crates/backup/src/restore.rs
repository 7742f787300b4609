//! `restore`: verifies, then restores documents and indexes, into another database if
//! asked; refuses to overwrite a non-empty collection without `drop` — checked before and
//! again right before the swap, so documents the suite writes meanwhile are never dropped.
//! The archive is read twice (verify, then restore): the second read is of the same stored
//! version (its version id, or its ETag as a precondition) and must give the manifest's
//! SHA-256 too, or nothing is swapped in; index definitions from the archive are checked
//! before they are created (a crafted TTL index would delete what was restored). All
//! collections are staged complete before any is swapped in, and a swap that fails half-way
//! puts back those already swapped.

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
    let (manifest, verified) = verify(s3, target, key).await?;
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
    let source = Verified { key, manifest: &manifest, version: &verified.version };
    let result = restore_into(mongo, s3, target, &source, &chosen, &target_db, &staged, progress).await;
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
    let swap =
        Swap { mongo, target_db: &target_db, staged: &staged, aside: &|coll: &str| format!("{coll}.replaced-{stamp}") };
    if let Err(e) = swap.all_in(&chosen, opts.drop).await {
        for c in &chosen {
            let _ = mongo.database(&target_db(&c.database)).collection::<Document>(&staged(&c.collection)).drop().await;
        }
        return Err(e);
    }
    Ok(restored)
}

/// The last step of a restore: the staged collections replace the targets, all of them or
/// none.
struct Swap<'a> {
    mongo: &'a Client,
    target_db: &'a (dyn Fn(&str) -> String + Sync),
    staged: &'a (dyn Fn(&str) -> String + Sync),
    aside: &'a (dyn Fn(&str) -> String + Sync),
}

impl Swap<'_> {
    fn name(&self, c: &CollectionEntry, name: &str) -> String {
        format!("{}.{name}", (self.target_db)(&c.database))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), mongodb::error::Error> {
        self.mongo
            .database("admin")
            .run_command(doc! {"renameCollection": from, "to": to, "dropTarget": false})
            .await
            .map(|_| ())
    }

    /// Without `drop`, every target is checked again first: one that received documents
    /// while the restore ran refuses the whole restore (something writes there: the suite's
    /// fetchers, which would lose what they wrote). Then each target is renamed aside and
    /// its staged collection renamed in; a failure puts back those already swapped. Last,
    /// the set-aside collections are dropped — without `drop`, after anything written to
    /// them between the check and the rename has been copied into the restored collection.
    async fn all_in(&self, chosen: &[&CollectionEntry], drop: bool) -> Result<(), BackupError> {
        if !drop {
            for c in chosen {
                let coll = self.mongo.database(&(self.target_db)(&c.database)).collection::<Document>(&c.collection);
                let n = coll.count_documents(doc! {}).await.map_err(mongo_err("checking the target again"))?;
                if n > 0 {
                    return Err(BackupError::Refused(format!(
                        "{} received {n} documents while the restore ran: something writes there (stop the fetchers with `cashtagctl stop --reason …`, or restore with --to-db into a new database); nothing was swapped in",
                        self.name(c, &c.collection)
                    )));
                }
            }
        }
        let mut swapped: Vec<(&CollectionEntry, bool)> = Vec::new();
        for c in chosen {
            match self.swap_one(c).await {
                Ok(had_target) => swapped.push((c, had_target)),
                Err(e) => {
                    let mut failed_back = Vec::new();
                    for (c, had_target) in swapped.iter().rev() {
                        if let Err(back) = self.put_back(c, *had_target).await {
                            failed_back.push(format!("{}: {back}", self.name(c, &c.collection)));
                        }
                    }
                    let note = if failed_back.is_empty() {
                        "the collections swapped before it were put back".to_string()
                    } else {
                        format!("these could not be put back: {}", failed_back.join("; "))
                    };
                    return Err(BackupError::Mongo {
                        what: format!("swapping {} in ({note})", self.name(c, &c.collection)),
                        source: e,
                    });
                }
            }
        }
        for (c, had_target) in swapped {
            if !had_target {
                continue;
            }
            let db = self.mongo.database(&(self.target_db)(&c.database));
            let aside = db.collection::<RawDocumentBuf>(&(self.aside)(&c.collection));
            if !drop {
                let late: Vec<RawDocumentBuf> = futures::TryStreamExt::try_collect(
                    aside.find(doc! {}).await.map_err(mongo_err("reading late writes"))?,
                )
                .await
                .map_err(mongo_err("reading late writes"))?;
                if !late.is_empty() {
                    let into = db.collection::<RawDocumentBuf>(&c.collection);
                    if let Err(e) = into.insert_many(late).ordered(false).await
                        && !duplicates_only(&e)
                    {
                        return Err(mongo_err("copying late writes into the restored collection")(e));
                    }
                }
            }
            aside.drop().await.map_err(mongo_err("dropping the replaced collection"))?;
        }
        Ok(())
    }

    /// Renames the target aside (when it exists) and the staged collection in; whether
    /// there was a target.
    async fn swap_one(&self, c: &CollectionEntry) -> Result<bool, mongodb::error::Error> {
        let db = self.mongo.database(&(self.target_db)(&c.database));
        let had_target = db.list_collection_names().filter(doc! {"name": &c.collection}).await?.len() == 1;
        if had_target {
            self.rename(&self.name(c, &c.collection), &self.name(c, &(self.aside)(&c.collection))).await?;
        }
        self.rename(&self.name(c, &(self.staged)(&c.collection)), &self.name(c, &c.collection)).await?;
        Ok(had_target)
    }

    /// Undoes [`Swap::swap_one`].
    async fn put_back(&self, c: &CollectionEntry, had_target: bool) -> Result<(), mongodb::error::Error> {
        self.rename(&self.name(c, &c.collection), &self.name(c, &(self.staged)(&c.collection))).await?;
        if had_target {
            self.rename(&self.name(c, &(self.aside)(&c.collection)), &self.name(c, &c.collection)).await?;
        }
        Ok(())
    }
}

/// An `insert_many` that failed only on documents already there.
fn duplicates_only(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::InsertMany(ime) => {
            ime.write_concern_error.is_none() && ime.write_errors.iter().flatten().all(|w| w.code == 11000)
        }
        _ => false,
    }
}

fn same_archive(manifest: &Manifest, read: &str) -> Result<(), BackupError> {
    if read == manifest.sha256 {
        Ok(())
    } else {
        Err(BackupError::corrupt(format!(
            "{}: the archive read for the restore has SHA-256 {read}, not the manifest's {}",
            manifest.key, manifest.sha256
        )))
    }
}

/// An index definition from an archive, as `createIndexes` takes it, if it is sound: known
/// options only, keys ascending/descending (or text, 2dsphere, hashed), and on the suite's
/// own collections a TTL only where the suite keeps one (the log's `events` at `at` and
/// `counts` at `minute`). Other collections keep the TTLs they had.
fn checked_index(collection: &str, mut spec: Document) -> Result<Document, BackupError> {
    const OPTIONS: &[&str] =
        &["name", "key", "unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "background"];
    spec.remove("v");
    spec.remove("ns");
    let name = spec.get_str("name").unwrap_or("?").to_string();
    let refuse = |why: String| BackupError::corrupt(format!("index {name:?} of {collection}: {why}; refused"));
    if let Some(other) = spec.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(refuse(format!("unknown option {other:?}")));
    }
    let key = spec.get_document("key").map_err(|_| refuse("no key".into()))?;
    if key.is_empty() {
        return Err(refuse("an empty key".into()));
    }
    for (field, order) in key {
        let ok = match order {
            bson::Bson::Int32(1 | -1) | bson::Bson::Int64(1 | -1) => true,
            bson::Bson::Double(d) => *d == 1.0 || *d == -1.0,
            bson::Bson::String(s) => matches!(s.as_str(), "text" | "2dsphere" | "hashed"),
            _ => false,
        };
        if !ok {
            return Err(refuse(format!("field {field:?} has the order {order}")));
        }
    }
    if spec.contains_key("expireAfterSeconds") {
        let ttl_at = [(cashtag_core::collections::EVENTS, "at"), (cashtag_core::collections::COUNTS, "minute")];
        let field = key.keys().next().map(String::as_str);
        let ours = cashtag_core::collections::ALL.contains(&collection);
        if ours && (key.len() != 1 || !ttl_at.iter().any(|(c, f)| *c == collection && Some(*f) == field)) {
            return Err(refuse("a TTL the suite does not keep there".into()));
        }
    }
    Ok(spec)
}

/// Restores the chosen collections' documents and indexes into their staged names.
/// The archive as verified: its key, manifest, and the stored version that was read.
struct Verified<'a> {
    key: &'a str,
    manifest: &'a Manifest,
    version: &'a crate::s3::ObjectVersion,
}

#[allow(clippy::too_many_arguments)]
async fn restore_into(
    mongo: &Client,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    source: &Verified<'_>,
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
    let manifest = source.manifest;
    let reader = read_remote(s3, &target.bucket, source.key, Some(source.version), move |db, coll, doc| {
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
    same_archive(manifest, &contents.sha256)?;
    // Indexes (the `_id` index exists already).
    for c in chosen {
        let specs: Vec<Document> = contents
            .indexes
            .get(&(c.database.clone(), c.collection.clone()))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.get_str("name").ok() != Some("_id_"))
            .map(|s| checked_index(&c.collection, s))
            .collect::<Result<_, _>>()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_definitions_from_an_archive_are_checked() {
        let ok = checked_index(
            "posts",
            doc! {"v": 2, "name": "tickers_1_created_at_1", "key": {"tickers": 1, "created_at": 1}},
        )
        .unwrap();
        assert!(!ok.contains_key("v"));
        assert!(checked_index("trades", doc! {"name": "u", "key": {"ticker": 1i64}, "unique": true}).is_ok());
        assert!(
            checked_index("events", doc! {"name": "at_1", "key": {"at": 1}, "expireAfterSeconds": 2_592_000}).is_ok()
        );
        assert!(checked_index("notes", doc! {"name": "when_1", "key": {"when": 1}, "expireAfterSeconds": 60}).is_ok());
        for (coll, spec, why) in [
            ("posts", doc! {"name": "wipe", "key": {"created_at": 1}, "expireAfterSeconds": 0}, "TTL"),
            ("events", doc! {"name": "wipe", "key": {"service": 1}, "expireAfterSeconds": 0}, "TTL"),
            ("posts", doc! {"name": "x", "key": {"a": 1}, "storageEngine": {}}, "unknown option"),
            ("posts", doc! {"name": "x", "key": {"a": 5}}, "order"),
            ("posts", doc! {"name": "x", "key": {}}, "empty key"),
            ("posts", doc! {"name": "x"}, "no key"),
        ] {
            let e = checked_index(coll, spec).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("refused"), "{coll}: {e}");
        }
    }

    #[test]
    fn a_second_read_of_another_archive_is_refused() {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": "cashtag-backup/1", "key": "k", "created_at": "2026-12-07T00:00:00Z",
            "collections": [], "archive_bytes": 1, "sha256": "aa", "duration_secs": 1.0
        }))
        .unwrap();
        assert!(same_archive(&manifest, "aa").is_ok());
        assert!(same_archive(&manifest, "bb").unwrap_err().to_string().contains("not the manifest's aa"));
    }
}
