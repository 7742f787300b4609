//! The sinks against real servers: the shared MongoDB-wire server and S3/Kinesis emulator,
//! private MongoDB instances for outages, and a fault proxy for a server that stops
//! answering.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cashtag_core::Record;
use cashtag_sinks::kinesis::{Entry, PutResult};
use cashtag_sinks::{Delivery, KinesisSink, MongoSink, PutRecordsApi, WorkerConfig};
use cashtag_testkit::fault::{Fault, FaultProxy};
use cashtag_testkit::{PrivateServer, ServerKind, mongo_uri, server_addr, unique};
use common::*;

fn both_on() -> BTreeMap<String, bool> {
    BTreeMap::from([("mongo_write".to_string(), true), ("kinesis_write".to_string(), true)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_records_reach_both_sinks_exactly_once() {
    let prefix = unique("t-sinks-100k");
    let b = bus(&prefix, "stocks");
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("sinks100k");
    let kin = kinesis().await;
    let stream = unique("market");
    let posts_stream = unique("posts");
    create_stream(&kin, &stream, 4).await;
    create_stream(&kin, &posts_stream, 4).await;

    let m = metrics();
    // This test is about exactly-once delivery, not deadlines: the emulator, busy with the
    // tests running beside it on two cores, may take longer than fast_config's 2 s for a
    // batch of 500, and a put abandoned at its deadline may still have landed (Kinesis
    // then holds it twice: at least once).
    let patient = WorkerConfig { op_timeout: Duration::from_secs(20), ..fast_config() };
    let fan = Delivery::new(journal("100k"), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), patient.clone(), m.clone())
        .sink("kinesis_write", KinesisSink::new(kin.clone(), &posts_stream, &stream), patient, m)
        .start(None);

    const N: u64 = 100_000;
    accept_all(&fan, (0..N).map(record)).await;
    assert!(fan.wait_idle(Duration::from_secs(600)).await, "sinks did not drain: {:?}", fan.status());

    let db = client.database(&db_name);
    assert_eq!(mongo_count(&db).await, N, "MongoDB holds exactly {N}");
    let (mut keys, per_shard) = read_stream(&kin, &stream).await;
    let (post_keys, post_shards) = read_stream(&kin, &posts_stream).await;
    keys.extend(post_keys);
    assert_eq!(keys.len() as u64, N, "every record is in Kinesis");
    assert!(keys.values().all(|c| *c == 1), "no record twice in Kinesis");
    assert!(
        per_shard.iter().chain(&post_shards).all(|n| *n > 0),
        "spread over the shards: {per_shard:?} {post_shards:?}"
    );
    let status = fan.status();
    assert!(status.iter().all(|s| s.up && s.rejected == 0 && s.backlog_bytes == 0), "{status:?}");
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_kinesis_write_off_and_on_mid_run() {
    let prefix = unique("t-sinks-toggle");
    let b = bus(&prefix, "stocks");
    b.init_flag_defaults(&both_on()).await.unwrap();
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("sinkstoggle");
    let kin = kinesis().await;
    let stream = unique("market");
    create_stream(&kin, &stream, 2).await;
    let m = metrics();
    let fan = Delivery::new(journal("toggle"), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), fast_config(), m.clone())
        .sink("kinesis_write", KinesisSink::new(kin.clone(), &stream, &stream), fast_config(), m)
        .start(None);

    let wait_flag = |want: bool| {
        let fan = &fan;
        async move {
            let deadline = Instant::now() + Duration::from_secs(2);
            while fan.flag_enabled("kinesis_write") != want {
                assert!(Instant::now() < deadline, "flag change not seen within 2 s");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    accept_all(&fan, (0..1_500).map(record)).await;
    b.set_flag("kinesis_write", false, "test").await.unwrap();
    wait_flag(false).await;
    accept_all(&fan, (1_500..3_000).map(record)).await;
    b.set_flag("kinesis_write", true, "test").await.unwrap();
    wait_flag(true).await;
    accept_all(&fan, (3_000..4_500).map(record)).await;
    assert!(fan.wait_idle(Duration::from_secs(120)).await, "{:?}", fan.status());

    assert_eq!(mongo_count(&client.database(&db_name)).await, 4_500, "MongoDB got everything");
    let (keys, _) = read_stream(&kin, &stream).await;
    let off: HashSet<String> = (1_500..3_000).map(|i| record(i).key()).collect();
    assert_eq!(keys.len(), 3_000);
    assert!(keys.keys().all(|k| !off.contains(k)), "nothing accepted while off reached Kinesis");
    assert!(keys.values().all(|c| *c == 1));
    let evs = events(&prefix).await;
    let switches: Vec<_> = evs.iter().filter(|e| e.code == "flag.switched").collect();
    assert_eq!(switches.len(), 2, "{switches:?}");
    assert_eq!(switches[0].fields["value"], false);
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

/// A layer between the writer and the emulator that fails chosen entries on their first
/// attempt (as Kinesis does under throttling) and records every attempt.
struct FailingFirstTry {
    inner: aws_sdk_kinesis::Client,
    fail: HashSet<String>,
    attempts: Arc<Mutex<HashMap<String, usize>>>,
}

impl PutRecordsApi for FailingFirstTry {
    async fn put_records(&self, stream: &str, entries: Vec<Entry>) -> PutResult {
        let mut forward = Vec::new();
        let mut positions = Vec::new();
        let mut result: Vec<Option<String>> = vec![None; entries.len()];
        for (i, e) in entries.into_iter().enumerate() {
            let key = serde_json::from_slice::<Record>(&e.data).unwrap().key();
            let n = {
                let mut a = self.attempts.lock().unwrap();
                let n = a.entry(key.clone()).or_default();
                *n += 1;
                *n
            };
            if n == 1 && self.fail.contains(&key) {
                result[i] = Some("ProvisionedThroughputExceededException".into());
            } else {
                positions.push(i);
                forward.push(e);
            }
        }
        if !forward.is_empty() {
            let codes = PutRecordsApi::put_records(&self.inner, stream, forward).await?;
            for (p, c) in positions.into_iter().zip(codes) {
                result[p] = c;
            }
        }
        Ok(result)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partial_put_records_failure_resends_only_the_failed_entries() {
    let prefix = unique("t-sinks-partial");
    let b = bus(&prefix, "stocks");
    let kin = kinesis().await;
    let stream = unique("market");
    create_stream(&kin, &stream, 4).await;
    let records: Vec<Record> = (0..2_000).map(record).collect();
    let fail: HashSet<String> = records.iter().step_by(7).map(|r| r.key()).collect();
    let attempts = Arc::new(Mutex::new(HashMap::new()));
    let api = FailingFirstTry { inner: kin.clone(), fail: fail.clone(), attempts: attempts.clone() };
    let sink = KinesisSink::new(api, &stream, &stream);
    let calls = sink.call_counter();
    let fan = Delivery::new(journal("partial"), &b, b.watch_flags(), both_on())
        .sink("kinesis_write", sink, fast_config(), metrics())
        .start(None);
    fan.accept(&records).await.unwrap();
    assert!(fan.wait_idle(Duration::from_secs(60)).await);

    let (keys, _) = read_stream(&kin, &stream).await;
    assert_eq!(keys.len(), 2_000, "none lost");
    assert!(keys.values().all(|c| *c == 1), "none doubled");
    let attempts = attempts.lock().unwrap();
    for r in &records {
        let want = if fail.contains(&r.key()) { 2 } else { 1 };
        assert_eq!(attempts[&r.key()], want, "{} sent {} times", r.key(), attempts[&r.key()]);
    }
    // 2,000 records: 4 full calls, and one resend call for the failed entries of each.
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 8);
    assert!(fan.status()[0].up);
}

#[tokio::test]
async fn a_record_over_the_kinesis_limit_is_rejected_with_an_event() {
    let prefix = unique("t-sinks-big");
    let b = bus(&prefix, "twitter");
    let kin = kinesis().await;
    let stream = unique("posts");
    create_stream(&kin, &stream, 1).await;
    let mut big = record(0);
    if let Record::Post(p) = &mut big {
        p.text = "x".repeat(1_100_000);
    }
    let dir = journal_dir("big");
    let fan = Delivery::new(journal_at(&dir, 1 << 32), &b, b.watch_flags(), both_on())
        .sink("kinesis_write", KinesisSink::new(kin.clone(), &stream, &stream), fast_config(), metrics())
        .start(None);
    fan.accept(std::slice::from_ref(&big)).await.unwrap();
    fan.accept(&[record(10)]).await.unwrap();
    assert!(fan.wait_idle(Duration::from_secs(30)).await);
    let (keys, _) = read_stream(&kin, &stream).await;
    assert_eq!(keys.len(), 1);
    assert!(keys.contains_key(&record(10).key()));
    assert_eq!(fan.status()[0].rejected, 1);
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    let rejected = evs.iter().find(|e| e.code == "sink.rejected").expect("a rejection event");
    assert!(rejected.message.contains(&big.key()) && rejected.message.contains("1 MiB"), "{}", rejected.message);
    let letters = cashtag_sinks::DeadLetters::in_spool(&dir).list("kinesis").unwrap();
    assert_eq!(letters.iter().map(|l| l.decode()).collect::<Vec<_>>(), [Some(big)], "kept as a dead letter");
}

#[tokio::test]
async fn a_record_mongodb_refuses_is_kept_as_a_dead_letter_and_redriven_once_the_cause_is_fixed() {
    let prefix = unique("t-sinks-dead");
    let b = bus(&prefix, "twitter");
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db = client.database(&unique("dead"));
    // An operator's validation rule refuses long posts.
    let rule = bson::doc! { "$jsonSchema": { "properties": { "text": { "bsonType": "string", "maxLength": 40 } } } };
    db.create_collection("posts").validator(rule).await.unwrap();
    let mut long = record(0);
    if let Record::Post(p) = &mut long {
        p.text = format!("{} and a much longer story after that", p.text);
    }
    let dir = journal_dir("dead");
    let fan = Delivery::new(journal_at(&dir, 1 << 32), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, db.name()), fast_config(), metrics())
        .start(None);
    fan.accept(&[long.clone(), record(10)]).await.unwrap();
    assert!(fan.wait_idle(Duration::from_secs(30)).await);
    assert_eq!(fan.status()[0].rejected, 1);
    let posts = db.collection::<bson::Document>("posts");
    assert_eq!(posts.count_documents(bson::doc! {}).await.unwrap(), 1, "the other record is written");

    // Kept, with its reason and the whole record, and said so in the event.
    let dead = cashtag_sinks::DeadLetters::in_spool(&dir);
    let letters = dead.list("mongo").unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].key, long.key());
    assert!(letters[0].reason.contains("121"), "MongoDB's validation error: {}", letters[0].reason);
    assert_eq!(letters[0].decode(), Some(long.clone()), "the record itself is kept");
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    let ev = evs.iter().find(|e| e.code == "sink.rejected").expect("a rejection event");
    assert!(ev.message.contains("dead-letters/mongo.jsonl") && ev.message.contains(&long.key()), "{}", ev.message);

    // While the rule stands, a redrive keeps it (with the new reason) and says so.
    let mut sink = MongoSink::new(&client, db.name());
    let again = dead.redrive(&mut sink, Duration::from_secs(30)).await.unwrap();
    assert_eq!((again.written, again.refused, again.kept), (0, 1, 0), "{again:?}");
    assert_eq!(dead.list("mongo").unwrap().len(), 1);

    // The operator relaxes the rule: the redrive writes it and the dead letters are empty.
    db.run_command(bson::doc! { "collMod": "posts", "validator": {} }).await.unwrap();
    let done = dead.redrive(&mut sink, Duration::from_secs(30)).await.unwrap();
    assert_eq!((done.written, done.refused, done.kept), (1, 0, 0), "{done:?}");
    assert!(dead.list("mongo").unwrap().is_empty());
    assert_eq!(posts.count_documents(bson::doc! {}).await.unwrap(), 2);
    fan.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mongodb_outage_loses_nothing_and_duplicates_nothing() {
    let mut server = PrivateServer::start(ServerKind::Mongo);
    let prefix = unique("t-sinks-outage");
    let b = bus(&prefix, "stocks");
    let client = cashtag_stores::mongo::connect(&server.url(), "test").await.unwrap();
    let db_name = unique("outage");
    let fan = Delivery::new(journal("outage"), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), fast_config(), metrics())
        .start(None);

    // Before the outage.
    accept_all(&fan, (0..3_000).map(record)).await;
    assert!(fan.wait_idle(Duration::from_secs(60)).await);
    server.stop();
    let down_at = Instant::now();
    // During a 12 s outage (past the 2 s retry budget): records keep coming, 100 every 0.5 s.
    let mut i = 3_000;
    while down_at.elapsed() < Duration::from_secs(12) {
        accept_all(&fan, (i..i + 100).map(record)).await;
        i += 100;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!fan.status()[0].up, "marked down: {:?}", fan.status());
    assert!(fan.status()[0].backlog_bytes > 0);
    server.restart();
    // After it.
    accept_all(&fan, (i..i + 3_000).map(record)).await;
    let total = i + 3_000;
    assert!(fan.wait_idle(Duration::from_secs(180)).await, "{:?}", fan.status());

    let db = client.database(&db_name);
    assert_eq!(mongo_count(&db).await, total, "exact count after the outage");
    let status = &fan.status()[0];
    assert!(status.up && status.replayed > 0, "{status:?}");
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    assert!(evs.iter().any(|e| e.code == "sink.down"));
    let rec = evs.iter().find(|e| e.code == "sink.recovered").expect("a recovery event");
    assert_eq!(rec.fields["replayed"].as_u64().unwrap(), status.replayed);
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

/// A Kinesis that accepts connections and never answers is marked down within the retry
/// budget, and meanwhile MongoDB gets every record as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_kinesis_never_stalls_mongodb() {
    let prefix = unique("t-sinks-stall");
    let b = bus(&prefix, "stocks");
    let endpoint = cashtag_testkit::aws_endpoint();
    let upstream = server_addr(&endpoint);
    let proxy = FaultProxy::start(upstream);
    let kin_direct = kinesis().await;
    let stream = unique("market");
    create_stream(&kin_direct, &stream, 2).await;
    let kin = cashtag_stores::kinesis::client("us-east-1", &proxy.url_for(&endpoint, upstream)).await;
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("stall");
    let m = metrics();
    let fan = Delivery::new(journal("stall"), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), fast_config(), m.clone())
        .sink("kinesis_write", KinesisSink::new(kin, &stream, &stream), fast_config(), m)
        .start(None);
    accept_all(&fan, (0..1_000).map(record)).await;
    assert!(fan.wait_idle(Duration::from_secs(60)).await, "{:?}", fan.status());

    proxy.set(Fault::Blackhole);
    let stalled_at = Instant::now();
    let db = client.database(&db_name);
    let mut i = 1_000;
    while stalled_at.elapsed() < Duration::from_secs(8) {
        let t0 = Instant::now();
        accept_all(&fan, (i..i + 200).map(record)).await;
        assert!(t0.elapsed() < Duration::from_secs(1), "accepting waited on the stalled sink");
        i += 200;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // MongoDB catches up while Kinesis still answers nothing: the blackhole lasts until
    // MongoDB has every record, so however slow the server (the Python MongoDB-wire
    // server shares two cores with the other tests), MongoDB never waits on Kinesis.
    let deadline = Instant::now() + Duration::from_secs(60);
    while mongo_count(&db).await < i {
        assert!(Instant::now() < deadline, "MongoDB fell behind the stalled Kinesis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kin_status = fan.status().into_iter().find(|s| s.sink == "kinesis").unwrap();
    assert!(!kin_status.up, "the stalled Kinesis is down after its retry budget: {kin_status:?}");

    proxy.set(Fault::Pass);
    assert!(fan.wait_idle(Duration::from_secs(120)).await, "{:?}", fan.status());
    let (keys, _) = read_stream(&kin_direct, &stream).await;
    let missing = (0..i).filter(|n| !keys.contains_key(&record(*n).key())).count();
    assert_eq!(missing, 0, "every record reached Kinesis after the stall");
    assert_eq!(mongo_count(&db).await, i);
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

/// A store too slow for a whole batch within the write deadline — through a proxy that
/// holds every 64 KiB chunk 50 ms, 500 posts of 4 KB need over 1.6 s, the deadline is 1 s —
/// still gets everything: the worker halves its writes until they fit, where it used to
/// send the same batch, time out, and send it again for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_too_slow_for_a_whole_batch_gets_everything_in_smaller_writes() {
    let prefix = unique("t-sinks-slow");
    let b = bus(&prefix, "stocks");
    let uri = mongo_uri();
    let upstream = server_addr(&uri);
    let proxy = FaultProxy::start(upstream);
    proxy.set(Fault::Latency(Duration::from_millis(50)));
    let client = cashtag_stores::mongo::connect(&proxy.url_for(&uri, upstream), "test").await.unwrap();
    let db_name = unique("slow");
    let config = WorkerConfig { op_timeout: Duration::from_secs(1), ..fast_config() };
    let fan = Delivery::new(journal("slow"), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), config, metrics())
        .start(None);
    let big_post = |i: u64| match record(i * 10) {
        Record::Post(mut p) => {
            p.text = format!("{} {}", p.text, "x".repeat(4_000));
            Record::Post(p)
        }
        _ => unreachable!("record(10 k) is a post"),
    };
    const N: u64 = 1_000;
    accept_all(&fan, (0..N).map(big_post)).await;
    assert!(fan.wait_idle(Duration::from_secs(120)).await, "the slow store never got the batch: {:?}", fan.status());
    let db = client.database(&db_name);
    assert_eq!(mongo_count(&db).await, N, "every post, once");
    let status = &fan.status()[0];
    assert_eq!(status.written, N, "{status:?}");
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_journal_frame_is_reported_and_everything_else_is_delivered() {
    let prefix = unique("t-sinks-damage");
    let b = bus(&prefix, "stocks");
    let dir = journal_dir("damage");
    {
        let j = journal_at(&dir, 1 << 30);
        for k in 0..3u64 {
            let data: Vec<Vec<u8>> =
                (k * 100..k * 100 + 100).map(|i| serde_json::to_vec(&record(i)).unwrap()).collect();
            j.append(data.iter().map(|d| (0b01u8, d.as_slice()))).unwrap();
        }
    }
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&seg, bytes).unwrap();

    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("damage");
    let fan = Delivery::new(journal_at(&dir, 1 << 30), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), fast_config(), metrics())
        .start(None);
    assert!(fan.wait_idle(Duration::from_secs(60)).await, "{:?}", fan.status());
    assert_eq!(mongo_count(&client.database(&db_name)).await, 200, "the two intact frames are delivered");
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    let damaged = evs.iter().find(|e| e.code == "journal.damaged").expect("a damage event");
    assert!(damaged.message.contains("checksum"), "{}", damaged.message);
    assert!(evs.iter().any(|e| e.code == "sink.backlog"), "the restart reported the backlog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_journal_slows_intake_instead_of_dropping() {
    let mut server = PrivateServer::start(ServerKind::Mongo);
    let prefix = unique("t-sinks-full");
    let b = bus(&prefix, "stocks");
    let client = cashtag_stores::mongo::connect(&server.url(), "test").await.unwrap();
    let db_name = unique("full");
    server.stop();
    let mut config = fast_config();
    config.retry_budget = Duration::from_millis(500);
    let fan = Delivery::new(journal_at(&journal_dir("full"), 200_000), &b, b.watch_flags(), both_on())
        .sink("mongo_write", MongoSink::new(&client, &db_name), config, metrics())
        .start(None);
    // Accept until the journal refuses; every refused group is retried later, as the
    // intake does, so nothing is dropped.
    let mut accepted = 0u64;
    let mut refused = None;
    while refused.is_none() {
        let group: Vec<Record> = (accepted..accepted + 100).map(record).collect();
        match fan.accept(&group).await {
            Ok(()) => accepted += 100,
            Err(e) => refused = Some((e, group)),
        }
    }
    let (err, group) = refused.unwrap();
    assert!(matches!(err, cashtag_journal::JournalError::Full { .. }), "{err}");
    assert!(fan.is_blocked());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    while fan.accept(&group).await.is_err() {
        assert!(Instant::now() < deadline, "the journal never had room again: {:?}", fan.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    accepted += 100;
    assert!(fan.wait_idle(Duration::from_secs(120)).await, "{:?}", fan.status());
    assert_eq!(mongo_count(&client.database(&db_name)).await, accepted);
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    assert!(evs.iter().any(|e| e.code == "journal.full"));
    assert!(evs.iter().any(|e| e.code == "journal.recovered"));
}
