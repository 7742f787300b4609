//! cashtag-backup against the real MongoDB-wire server and S3 emulator: a full round trip
//! with varied BSON and indexes, compatibility with pymongo's BSON reader, corruption,
//! retention.

use std::process::{Command, Output};

use bson::{Bson, Document, RawDocumentBuf, doc, oid::ObjectId, spec::BinarySubtype};
use cashtag_testkit::{aws_endpoint, mongo_uri, unique, venv};
use futures::TryStreamExt;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-backup");

struct Env {
    bucket: String,
    env: String,
    db: String,
    /// The Redis prefix the command's events go under.
    prefix: String,
}

impl Env {
    async fn new(name: &str) -> Env {
        let bucket = unique(&format!("t-{name}"));
        s3().await.create_bucket().bucket(&bucket).send().await.unwrap();
        Env { bucket, env: unique("env"), db: unique(&format!("bk{name}")), prefix: unique(&format!("t-bk{name}")) }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("CASHTAG_") {
                c.env_remove(k);
            }
        }
        c.args(args)
            .arg("--quiet")
            .env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
            .env("CASHTAG_BACKUP_BUCKET", &self.bucket)
            .env("CASHTAG_BACKUP_ENV", &self.env)
            .env("CASHTAG_BACKUP_DATABASES", &self.db)
            .env("CASHTAG_BACKUP_PART_SIZE_MB", "5")
            .env("CASHTAG_REDIS_URL", cashtag_testkit::redis_url())
            .env("CASHTAG_REDIS_PREFIX", &self.prefix)
            .output()
            .unwrap()
    }

    /// The codes of the events the commands sent.
    async fn event_codes(&self) -> Vec<String> {
        let bus = cashtag_bus::Bus::open(
            &cashtag_testkit::redis_url(),
            &self.prefix,
            cashtag_bus::Identity { service: "test".into(), instance: unique("i") },
            cashtag_core::Clock::System,
            1_000,
        )
        .unwrap();
        bus.peek_events(1_000).await.unwrap().into_iter().map(|e| e.code).collect()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The key of the newest backup.
    fn newest(&self) -> String {
        let text = self.ok(&["list", "--json"]);
        let last: serde_json::Value = serde_json::from_str(text.lines().last().expect("a backup")).unwrap();
        last["key"].as_str().unwrap().to_string()
    }
}

async fn s3() -> aws_sdk_s3::Client {
    cashtag_stores::s3::client("us-east-1", &aws_endpoint()).await
}

async fn mongo() -> mongodb::Client {
    mongodb::Client::with_uri_str(mongo_uri()).await.unwrap()
}

/// Document `i` of a collection: dates, ObjectIds, decimals, nested arrays, binary.
fn varied(i: i64) -> Document {
    doc! {
        "_id": ObjectId::from_bytes({ let mut b = [0u8; 12]; b[4..12].copy_from_slice(&i.to_be_bytes()); b }),
        "n": i,
        "f": i as f64 / 7.0,
        "s": format!("doc {i} — ünïcødé 🚀"),
        "when": bson::DateTime::from_millis(1_795_000_000_000 + i * 1_000),
        "price": Bson::Decimal128(format!("{}.{:02}", i, i % 100).parse().unwrap()),
        "tags": ["a", i % 3, [1, [2, 3]], {"deep": {"x": i}}],
        "blob": Bson::Binary(bson::Binary { subtype: BinarySubtype::Generic, bytes: (0..(i % 50) as u8).collect() }),
        "uuid": Bson::Binary(bson::Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }),
        "null": Bson::Null,
        "flag": i % 2 == 0,
        "i32": (i % 1000) as i32,
    }
}

async fn seed(db: &mongodb::Database) -> u64 {
    let sizes = [("alpha", 20_000i64), ("beta", 15_000), ("gamma", 10_000), ("delta", 5_000)];
    for (name, n) in sizes {
        let coll = db.collection::<Document>(name);
        let docs: Vec<Document> = (0..n).map(varied).collect();
        for chunk in docs.chunks(2_000) {
            coll.insert_many(chunk.to_vec()).await.unwrap();
        }
    }
    let alpha = db.collection::<Document>("alpha");
    alpha
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"n": 1})
                .options(mongodb::options::IndexOptions::builder().unique(true).name("n_unique".to_string()).build())
                .build(),
        )
        .await
        .unwrap();
    alpha.create_index(mongodb::IndexModel::builder().keys(doc! {"s": 1, "f": -1}).build()).await.unwrap();
    db.collection::<Document>("beta")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"when": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .expire_after(std::time::Duration::from_secs(86_400 * 365 * 50))
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    sizes.iter().map(|(_, n)| *n as u64).sum()
}

async fn raw_by_id(db: &mongodb::Database, coll: &str) -> Vec<RawDocumentBuf> {
    db.collection::<RawDocumentBuf>(coll)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

async fn index_specs(db: &mongodb::Database, coll: &str) -> Vec<(String, Document, Option<bool>, Option<i64>)> {
    let mut v: Vec<_> = db
        .collection::<Document>(coll)
        .list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let o = m.options.unwrap_or_default();
            (o.name.unwrap_or_default(), m.keys, o.unique, o.expire_after.map(|d| d.as_secs() as i64))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_restore_round_trip_is_identical_and_readable_by_pymongo() {
    let e = Env::new("roundtrip").await;
    let client = mongo().await;
    let src = client.database(&e.db);
    let total = seed(&src).await;
    assert_eq!(total, 50_000);

    let out = e.ok(&["run"]);
    assert!(out.contains("4 collections, 50000 documents"), "{out}");
    assert_eq!(e.event_codes().await, ["backup.start", "backup.done"], "an on-demand run is reported");
    let key = e.newest();
    assert!(key.starts_with(&format!("backups/{}/", e.env)) && key.ends_with(".tar.gz"), "{key}");
    let out = e.ok(&["verify", &key]);
    assert!(out.contains("50000 documents parse"), "{out}");
    assert!(e.ok(&["list"]).lines().nth(1).unwrap().contains(" yes "), "marked verified");

    // Restore into another database: identical documents and indexes.
    let to = unique("restored");
    let out = e.ok(&["restore", &key, "--to-db", &to]);
    assert!(out.contains("restored 50000 documents"), "{out}");
    let dst = client.database(&to);
    for coll in ["alpha", "beta", "gamma", "delta"] {
        let a = raw_by_id(&src, coll).await;
        let b = raw_by_id(&dst, coll).await;
        assert_eq!(a.len(), b.len(), "{coll}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.as_bytes(), y.as_bytes(), "{coll}: document bytes differ");
        }
        assert_eq!(index_specs(&src, coll).await, index_specs(&dst, coll).await, "{coll} indexes");
    }
    assert!(index_specs(&dst, "alpha").await.iter().any(|i| i.0 == "n_unique" && i.2 == Some(true)));
    assert!(index_specs(&dst, "beta").await.iter().any(|i| i.3.is_some()), "TTL index restored");

    // Restoring over it again is refused without --drop, accepted with it.
    let refused = e.cmd(&["restore", &key, "--to-db", &to]);
    assert_eq!(refused.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--drop"));
    assert!(
        e.ok(&["restore", &key, "--to-db", &to, "--drop", "--collections", "delta"])
            .contains("restored 5000 documents")
    );

    // pymongo's own BSON reader reads the archive's files with the same counts.
    let archive = std::env::temp_dir().join(unique("archive")).with_extension("tar.gz");
    let obj = s3().await.get_object().bucket(&e.bucket).key(&key).send().await.unwrap();
    std::fs::write(&archive, obj.body.collect().await.unwrap().into_bytes()).unwrap();
    let script = r#"
import sys, tarfile, bson
counts = {}
with tarfile.open(sys.argv[1], "r:gz") as t:
    for m in t.getmembers():
        if m.name.endswith(".bson"):
            counts[m.name] = sum(1 for _ in bson.decode_file_iter(t.extractfile(m)))
print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
"#;
    let py = Command::new(venv().join("bin/python")).arg("-c").arg(script).arg(&archive).output().unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let text = String::from_utf8(py.stdout).unwrap();
    for (coll, n) in [("alpha", 20_000), ("beta", 15_000), ("gamma", 10_000), ("delta", 5_000)] {
        assert!(text.contains(&format!("{}/{coll}.bson={n}", e.db)), "{text}");
    }
    let _ = std::fs::remove_file(archive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_archive_fails_verify_and_restore_refuses_it() {
    let e = Env::new("corrupt").await;
    let client = mongo().await;
    let db = client.database(&e.db);
    db.collection::<Document>("x").insert_many((0..2_000).map(varied).collect::<Vec<_>>()).await.unwrap();
    e.ok(&["run"]);
    let key = e.newest();
    // Flip one byte in the middle of the archive.
    let s3c = s3().await;
    let mut bytes = s3c
        .get_object()
        .bucket(&e.bucket)
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    s3c.put_object().bucket(&e.bucket).key(&key).body(bytes.into()).send().await.unwrap();

    let v = e.cmd(&["verify", &key]);
    assert_eq!(v.status.code(), Some(6), "{}", String::from_utf8_lossy(&v.stderr));
    let msg = String::from_utf8_lossy(&v.stderr);
    assert!(msg.contains("damaged"), "{msg}");
    let to = unique("never");
    let r = e.cmd(&["restore", &key, "--to-db", &to]);
    assert_eq!(r.status.code(), Some(6));
    assert_eq!(
        client.database(&to).collection::<Document>("x").count_documents(doc! {}).await.unwrap(),
        0,
        "nothing restored"
    );
    assert!(e.cmd(&["verify", "backups/none.tar.gz"]).status.code() == Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_exactly_the_daily_and_weekly_backups() {
    let e = Env::new("prune").await;
    let s3c = s3().await;
    // Sixty days of history, two backups a day, ending Saturday 2026-11-28.
    let end: chrono::DateTime<chrono::Utc> = "2026-11-28T21:30:00Z".parse().unwrap();
    let mut all = Vec::new();
    for d in 0..60 {
        for h in [1, 13] {
            let at = end - chrono::TimeDelta::days(d) - chrono::TimeDelta::hours(21 - h);
            let key =
                format!("backups/{}/{}/cashtag-{}.tar.gz", e.env, at.format("%Y/%m/%d"), at.format("%Y%m%dT%H%M%SZ"));
            s3c.put_object().bucket(&e.bucket).key(&key).body(b"x".to_vec().into()).send().await.unwrap();
            all.push((key, at));
        }
    }
    // Expected, worked out by hand: keep_daily 7 → the 13:30 backup of Nov 22–28; keep_weekly
    // 4 → the newest of the ISO weeks of Nov 28, 22, 15 and 8 (Sundays are the week ends).
    let expect_days = ["22", "23", "24", "25", "26", "27", "28"];
    let mut want: Vec<String> =
        expect_days.iter().map(|d| format!("backups/{}/2026/11/{d}/cashtag-202611{d}T133000Z.tar.gz", e.env)).collect();
    for d in ["15", "08"] {
        want.push(format!("backups/{}/2026/11/{d}/cashtag-202611{d}T133000Z.tar.gz", e.env));
    }
    want.sort();
    let dry = e.ok(&["prune"]);
    assert!(dry.contains("dry run: 111 backup(s) would be deleted"), "{dry}");
    assert_eq!(
        s3c.list_objects_v2().bucket(&e.bucket).send().await.unwrap().key_count(),
        Some(120),
        "dry run deletes nothing"
    );
    e.ok(&["prune", "--yes"]);
    let mut left = object_keys(&s3c, &e.bucket).await;
    left.sort();
    assert_eq!(left, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_never_removes_the_newest_verified_backup() {
    let e = Env::new("prunever").await;
    let s3c = s3().await;
    let end: chrono::DateTime<chrono::Utc> = "2026-11-28T21:30:00Z".parse().unwrap();
    let key = |d: i64| {
        let at = end - chrono::TimeDelta::days(d);
        format!("backups/{}/{}/cashtag-{}.tar.gz", e.env, at.format("%Y/%m/%d"), at.format("%Y%m%dT%H%M%SZ"))
    };
    for d in 0..10 {
        s3c.put_object().bucket(&e.bucket).key(key(d)).body(b"x".to_vec().into()).send().await.unwrap();
    }
    // Only an old one was ever verified (the newer ones might be damaged).
    let verified = key(8);
    s3c.put_object()
        .bucket(&e.bucket)
        .key(format!("{}.verified", verified.trim_end_matches(".tar.gz")))
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let out = backup_command(&e, &mongo_uri(), &["prune", "--yes", "--quiet"])
        .env("CASHTAG_BACKUP_KEEP_DAILY", "2")
        .env("CASHTAG_BACKUP_KEEP_WEEKLY", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<String> = object_keys(&s3c, &e.bucket).await.into_iter().filter(|k| k.ends_with(".tar.gz")).collect();
    let mut want = vec![key(0), key(1), verified];
    want.sort();
    let mut left = left;
    left.sort();
    assert_eq!(left, want, "the two newest by retention, and the newest verified one");
}

/// The keys of a bucket's objects (one page: the tests hold fewer than 1,000).
async fn object_keys(s3c: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let page = s3c.list_objects_v2().bucket(bucket).send().await.unwrap();
    page.contents().iter().map(|o| o.key().unwrap().to_string()).collect()
}

/// `cashtag-backup ARGS` for this test's bucket and database, reaching MongoDB at
/// `mongo_uri` (the stack's, or a fault proxy), with no other CASHTAG_* setting of the
/// test's environment.
fn backup_command(e: &Env, mongo_uri: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHTAG_") {
            c.env_remove(k);
        }
    }
    c.args(args)
        .env("CASHTAG_MONGO_URI", mongo_uri)
        .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
        .env("CASHTAG_BACKUP_BUCKET", &e.bucket)
        .env("CASHTAG_BACKUP_ENV", &e.env)
        .env("CASHTAG_BACKUP_DATABASES", &e.db)
        .env("CASHTAG_REDIS_URL", cashtag_testkit::redis_url())
        .env("CASHTAG_REDIS_PREFIX", &e.prefix);
    c
}

/// A dump that fails half-way (the MongoDB connection is cut after some bytes) aborts
/// its multipart upload: no archive is listed and no upload is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dump_leaves_no_partial_archive() {
    use cashtag_testkit::fault::{Fault, FaultProxy};
    let e = Env::new("abort").await;
    let client = mongo().await;
    let db = client.database(&e.db);
    let big: Vec<Document> = (0..6_000).map(|i| doc! {"i": i, "pad": "p".repeat(1_000)}).collect();
    db.collection::<Document>("big").insert_many(big).await.unwrap();
    let upstream = cashtag_testkit::stack_var("CASHTAG_MONGO_URI").unwrap();
    let addr: std::net::SocketAddr =
        upstream.split("://").nth(1).unwrap().split(['/', '?']).next().unwrap().parse().unwrap();
    let proxy = FaultProxy::start(addr);
    proxy.set(Fault::CloseAfter(2_000_000));
    let out = backup_command(&e, &proxy.url_for(&upstream, addr), &["run", "--quiet"])
        .env("CASHTAG_BACKUP_PART_SIZE_MB", "5")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the dump should have failed");
    assert_eq!(out.status.code(), Some(5), "a MongoDB failure: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(e.event_codes().await, ["backup.start", "backup.failed"], "a failed on-demand run is reported");
    let listed = e.ok(&["list", "--json"]);
    assert!(listed.trim().is_empty(), "nothing is listed: {listed}");
    let s3c = s3().await;
    let objects = s3c.list_objects_v2().bucket(&e.bucket).send().await.unwrap();
    assert_eq!(objects.key_count(), Some(0), "no object at all");
    let uploads = s3c.list_multipart_uploads().bucket(&e.bucket).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "no upload left open: {:?}", uploads.uploads());
}

/// `restore --drop` that fails half-way leaves the old data as it was: the documents go
/// into a temporary collection that is swapped in only at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restore_with_drop_keeps_the_old_data() {
    use cashtag_testkit::fault::{Fault, FaultProxy};
    let e = Env::new("swap").await;
    let client = mongo().await;
    let db = client.database(&e.db);
    let docs: Vec<Document> = (0..5_000).map(|i| doc! {"i": i, "pad": "p".repeat(500)}).collect();
    db.collection::<Document>("c").insert_many(docs).await.unwrap();
    e.ok(&["run"]);
    let key = e.newest();
    // Today's data differs from the backup's.
    db.collection::<Document>("c").delete_many(doc! {}).await.unwrap();
    db.collection::<Document>("c").insert_one(doc! {"today": true}).await.unwrap();
    let upstream = cashtag_testkit::stack_var("CASHTAG_MONGO_URI").unwrap();
    let addr: std::net::SocketAddr =
        upstream.split("://").nth(1).unwrap().split(['/', '?']).next().unwrap().parse().unwrap();
    let proxy = FaultProxy::start(addr);
    // Enough for the checks and part of the documents, not all of them.
    proxy.set(Fault::CloseAfter(400_000));
    let out =
        backup_command(&e, &proxy.url_for(&upstream, addr), &["restore", &key, "--drop", "--quiet"]).output().unwrap();
    assert!(!out.status.success(), "the restore should have failed");
    let left: Vec<Document> = db.collection::<Document>("c").find(doc! {}).await.unwrap().try_collect().await.unwrap();
    assert_eq!(left.len(), 1, "the old data is untouched");
    assert_eq!(left[0].get_bool("today"), Ok(true));
    // And a restore that goes through replaces it.
    e.ok(&["restore", &key, "--drop"]);
    assert_eq!(db.collection::<Document>("c").count_documents(doc! {}).await.unwrap(), 5_000);
    let names = db.list_collection_names().await.unwrap();
    assert!(names.iter().all(|n| !n.contains("restoring")), "no temporary collection left: {names:?}");
}

/// A restore without `--drop` into a collection that receives documents while the restore
/// runs refuses at the swap: what was written stays, nothing is swapped in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_written_during_a_restore_are_never_dropped() {
    let e = Env::new("during").await;
    let client = mongo().await;
    let db = client.database(&e.db);
    let docs: Vec<Document> = (0..20_000).map(|i| doc! {"i": i, "pad": "p".repeat(200)}).collect();
    db.collection::<Document>("c").insert_many(docs).await.unwrap();
    e.ok(&["run"]);
    let key = e.newest();
    let to = unique("during-to");
    let target = cashtag_backup_core::Target {
        bucket: e.bucket.clone(),
        prefix: "backups".into(),
        env: e.env.clone(),
        part_size: 5 << 20,
        work_dir: None,
        create_bucket: false,
        deadline: std::time::Duration::from_secs(600),
    };
    // A writer that waits for the restore to start staging, then writes into the target.
    let writer = {
        let dst = client.database(&to);
        tokio::spawn(async move {
            loop {
                let names = dst.list_collection_names().await.unwrap();
                if names.iter().any(|n| n.starts_with("c.restoring-")) {
                    dst.collection::<Document>("c").insert_one(doc! {"written": "during the restore"}).await.unwrap();
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let opts = cashtag_backup_core::RestoreOptions { to_db: Some(to.clone()), ..Default::default() };
    let progress = cashtag_telemetry::progress::Progress::new(true);
    let s3c = s3().await;
    let result = cashtag_backup_core::restore(&client, &s3c, &target, &key, &opts, &progress).await;
    writer.await.unwrap();
    let err = result.expect_err("the restore must refuse").to_string();
    assert!(err.contains("received 1 documents while the restore ran"), "{err}");
    let left: Vec<Document> =
        client.database(&to).collection::<Document>("c").find(doc! {}).await.unwrap().try_collect().await.unwrap();
    assert_eq!(left.len(), 1, "the document written meanwhile is still there, alone");
    let names = client.database(&to).list_collection_names().await.unwrap();
    assert!(names.iter().all(|n| !n.contains("restoring") && !n.contains("replaced")), "{names:?}");
}

/// The restore's second read is of the version that was verified: in a versioned bucket it
/// reads that version; otherwise an object replaced since is refused, never read instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_read_is_pinned_to_the_verified_version() {
    use cashtag_backup_core::s3::open;
    let s3c = s3().await;
    for versioned in [true, false] {
        let bucket = unique("t-pin");
        s3c.create_bucket().bucket(&bucket).send().await.unwrap();
        if versioned {
            let on = aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build();
            s3c.put_bucket_versioning().bucket(&bucket).versioning_configuration(on).send().await.unwrap();
        }
        let put =
            |body: &'static [u8]| s3c.put_object().bucket(&bucket).key("a.tar.gz").body(body.to_vec().into()).send();
        put(b"the verified archive").await.unwrap();
        let (_, pin) = open(&s3c, &bucket, "a.tar.gz", None).await.unwrap();
        assert_eq!(pin.version_id.is_some(), versioned, "{pin:?}");
        put(b"a replacement").await.unwrap();
        match open(&s3c, &bucket, "a.tar.gz", Some(&pin)).await {
            Ok((body, _)) => {
                assert!(versioned, "an unversioned replacement must be refused");
                assert_eq!(&body.collect().await.unwrap().into_bytes()[..], b"the verified archive");
            }
            Err(e) => {
                assert!(!versioned, "{e}");
                assert!(e.to_string().contains("was replaced after it was verified"), "{e}");
            }
        }
    }
}
