//! The sinks against real servers: the shared MongoDB-wire server and S3/Kinesis emulator,
//! and private MongoDB instances for outages.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cashtag_core::Record;
use cashtag_sinks::kinesis::{Entry, PutResult};
use cashtag_sinks::{FanOut, KinesisSink, MongoSink, PutRecordsApi, Spool, spawn_worker};
use cashtag_testkit::{PrivateServer, ServerKind, mongo_uri, unique};
use common::*;

fn both_on() -> BTreeMap<String, bool> {
    BTreeMap::from([("mongo_write".to_string(), true), ("kinesis_write".to_string(), true)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_records_reach_both_sinks_exactly_once() {
    let prefix = unique("t-sinks-100k");
    let b = bus(&prefix, "stocks");
    let client = cashtag_sinks::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("sinks100k");
    let kin = kinesis().await;
    let stream = unique("market");
    let posts_stream = unique("posts");
    create_stream(&kin, &stream, 4).await;
    create_stream(&kin, &posts_stream, 4).await;

    let m = metrics();
    let mongo = spawn_worker(
        MongoSink::new(&client, &db_name),
        Spool::open(spool_dir("m"), 1 << 30, 1 << 24).unwrap(),
        fast_config(),
        b.clone(),
        m.clone(),
    );
    let kinesis = spawn_worker(
        KinesisSink::new(kin.clone(), &posts_stream, &stream),
        Spool::open(spool_dir("k"), 1 << 30, 1 << 24).unwrap(),
        fast_config(),
        b.clone(),
        m.clone(),
    );
    let fan = FanOut::new(
        &b,
        b.watch_flags(),
        both_on(),
        vec![("mongo_write".into(), mongo), ("kinesis_write".into(), kinesis)],
    );

    const N: u64 = 100_000;
    fan.accept_all((0..N).map(record)).await;
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
    assert!(status.iter().all(|s| s.spooled == 0 && s.rejected == 0), "{status:?}");
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_kinesis_write_off_and_on_mid_run() {
    let prefix = unique("t-sinks-toggle");
    let b = bus(&prefix, "stocks");
    b.init_flag_defaults(&both_on()).await.unwrap();
    let client = cashtag_sinks::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("sinkstoggle");
    let kin = kinesis().await;
    let stream = unique("market");
    create_stream(&kin, &stream, 2).await;
    let m = metrics();
    let mongo = spawn_worker(
        MongoSink::new(&client, &db_name),
        Spool::open(spool_dir("m"), 1 << 30, 1 << 24).unwrap(),
        fast_config(),
        b.clone(),
        m.clone(),
    );
    let kinesis = spawn_worker(
        KinesisSink::new(kin.clone(), &stream, &stream),
        Spool::open(spool_dir("k"), 1 << 30, 1 << 24).unwrap(),
        fast_config(),
        b.clone(),
        m.clone(),
    );
    let fan = FanOut::new(
        &b,
        b.watch_flags(),
        both_on(),
        vec![("mongo_write".into(), mongo), ("kinesis_write".into(), kinesis)],
    );

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
    fan.accept_all((0..1_500).map(record)).await;
    b.set_flag("kinesis_write", false, "test").await.unwrap();
    wait_flag(false).await;
    fan.accept_all((1_500..3_000).map(record)).await;
    b.set_flag("kinesis_write", true, "test").await.unwrap();
    wait_flag(true).await;
    fan.accept_all((3_000..4_500).map(record)).await;
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
    let worker =
        spawn_worker(sink, Spool::open(spool_dir("k"), 1 << 30, 1 << 24).unwrap(), fast_config(), b.clone(), metrics());
    let fan = FanOut::new(&b, b.watch_flags(), both_on(), vec![("kinesis_write".into(), worker)]);
    fan.accept_all(records.clone()).await;
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
    assert_eq!(fan.status()[0].spooled, 0);
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
    let worker = spawn_worker(
        KinesisSink::new(kin.clone(), &stream, &stream),
        Spool::open(spool_dir("k"), 1 << 30, 1 << 24).unwrap(),
        fast_config(),
        b.clone(),
        metrics(),
    );
    let fan = FanOut::new(&b, b.watch_flags(), both_on(), vec![("kinesis_write".into(), worker)]);
    fan.accept(big.clone()).await;
    fan.accept(record(10)).await;
    assert!(fan.wait_idle(Duration::from_secs(30)).await);
    let (keys, _) = read_stream(&kin, &stream).await;
    assert_eq!(keys.len(), 1);
    assert!(keys.contains_key(&record(10).key()));
    assert_eq!(fan.status()[0].rejected, 1);
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    let rejected = evs.iter().find(|e| e.code == "sink.rejected").expect("a rejection event");
    assert!(rejected.message.contains(&big.key()) && rejected.message.contains("1 MiB"), "{}", rejected.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thirty_second_mongodb_outage_loses_nothing_and_duplicates_nothing() {
    let mut server = PrivateServer::start(ServerKind::Mongo);
    let prefix = unique("t-sinks-outage");
    let b = bus(&prefix, "stocks");
    let client = cashtag_sinks::mongo::connect(&server.url(), "test").await.unwrap();
    let db_name = unique("outage");
    let worker = spawn_worker(
        MongoSink::new(&client, &db_name),
        Spool::open(spool_dir("m"), 1 << 30, 1 << 24).unwrap(),
        fast_config(),
        b.clone(),
        metrics(),
    );
    let fan = FanOut::new(&b, b.watch_flags(), both_on(), vec![("mongo_write".into(), worker)]);

    // Before the outage.
    fan.accept_all((0..3_000).map(record)).await;
    assert!(fan.wait_idle(Duration::from_secs(60)).await);
    server.stop();
    let down_at = Instant::now();
    // During the 30 s outage: records keep coming, 100 every 0.75 s.
    let mut i = 3_000;
    while down_at.elapsed() < Duration::from_secs(30) {
        fan.accept_all((i..i + 100).map(record)).await;
        i += 100;
        tokio::time::sleep(Duration::from_millis(750)).await;
    }
    server.restart();
    // After it.
    fan.accept_all((i..i + 3_000).map(record)).await;
    let total = i + 3_000;
    assert!(fan.wait_idle(Duration::from_secs(180)).await, "{:?}", fan.status());

    let db = client.database(&db_name);
    assert_eq!(mongo_count(&db).await, total, "exact count after the outage");
    let status = &fan.status()[0];
    assert!(status.spooled > 0 && status.replayed == status.spooled, "{status:?}");
    let evs = events(&prefix).await;
    assert!(evs.iter().any(|e| e.code == "sink.down"));
    let rec = evs.iter().find(|e| e.code == "sink.recovered").expect("a recovery event");
    assert_eq!(rec.fields["replayed"].as_u64().unwrap(), status.replayed);
    assert!(fan.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_spool_segment_is_reported_and_the_rest_replays() {
    let prefix = unique("t-sinks-corrupt");
    let b = bus(&prefix, "stocks");
    let dir = spool_dir("corrupt");
    {
        let mut spool = Spool::open(&dir, 1 << 30, 1).unwrap(); // one batch per segment
        for k in 0..3u64 {
            spool.append(&(k * 100..k * 100 + 100).map(record).collect::<Vec<_>>()).unwrap();
        }
    }
    let mut segs: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    segs.sort();
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&segs[1], bytes).unwrap();

    let client = cashtag_sinks::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db_name = unique("corrupt");
    let worker = spawn_worker(
        MongoSink::new(&client, &db_name),
        Spool::open(&dir, 1 << 30, 1).unwrap(),
        fast_config(),
        b.clone(),
        metrics(),
    );
    let fan = FanOut::new(&b, b.watch_flags(), both_on(), vec![("mongo_write".into(), worker)]);
    assert!(fan.wait_idle(Duration::from_secs(60)).await, "{:?}", fan.status());
    assert_eq!(mongo_count(&client.database(&db_name)).await, 200, "the two intact batches replayed");
    assert!(b.events().flush(Duration::from_secs(5)).await);
    let evs = events(&prefix).await;
    let corrupt = evs.iter().find(|e| e.code == "spool.corrupt").expect("a corruption event");
    assert!(corrupt.message.contains("checksum mismatch"), "{}", corrupt.message);
    assert!(std::path::Path::new(corrupt.fields["quarantined_as"].as_str().unwrap()).exists());
    assert!(evs.iter().any(|e| e.code == "sink.recovered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_spool_slows_intake_instead_of_dropping() {
    let mut server = PrivateServer::start(ServerKind::Mongo);
    let prefix = unique("t-sinks-full");
    let b = bus(&prefix, "stocks");
    let client = cashtag_sinks::mongo::connect(&server.url(), "test").await.unwrap();
    let db_name = unique("full");
    server.stop();
    let mut config = fast_config();
    config.queue_capacity = 200;
    config.retry_budget = Duration::from_millis(500);
    let worker = spawn_worker(
        MongoSink::new(&client, &db_name),
        Spool::open(spool_dir("m"), 150_000, 50_000).unwrap(),
        config,
        b.clone(),
        metrics(),
    );
    let fan = FanOut::new(&b, b.watch_flags(), both_on(), vec![("mongo_write".into(), worker)]);

    let mut accepted = 0u64;
    let blocked = loop {
        match tokio::time::timeout(Duration::from_secs(10), fan.accept(record(accepted))).await {
            Ok(()) => accepted += 1,
            Err(_) => break true,
        }
        assert!(accepted < 100_000, "intake never slowed");
    };
    assert!(blocked);
    assert!(b.events().flush(Duration::from_secs(5)).await);
    assert!(events(&prefix).await.iter().any(|e| e.code == "spool.full"), "a spool-full event");

    server.restart();
    // The record whose accept timed out was cancelled before it was queued; everything
    // accepted before it must arrive.
    assert!(fan.wait_idle(Duration::from_secs(180)).await, "{:?}", fan.status());
    assert_eq!(mongo_count(&client.database(&db_name)).await, accepted);
}
