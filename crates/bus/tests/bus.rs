//! The bus against a real Redis: control, flags, heartbeats, streams, and surviving a
//! Redis restart without restarting the subscriber.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_core::{Clock, Event, EventDraft, EventKind};
use cashtag_testkit::{PrivateServer, ServerKind, eventually, redis_url, unique};

fn bus(url: &str, prefix: &str, service: &str) -> Bus {
    Bus::open(url, prefix, Identity { service: service.into(), instance: unique("i") }, Clock::System, 1_000_000)
        .unwrap()
}

fn state(cmd: ControlCommand, reason: &str) -> ControlState {
    ControlState { cmd, reason: reason.into(), at: Clock::System.now() }
}

async fn wait_for<T: Clone>(
    rx: &mut tokio::sync::watch::Receiver<T>,
    timeout: Duration,
    pred: impl Fn(&T) -> bool,
) -> T {
    tokio::time::timeout(timeout, rx.wait_for(|v| pred(v)))
        .await
        .expect("timed out waiting for the bus")
        .expect("watcher ended")
        .clone()
}

#[tokio::test]
async fn late_subscriber_reads_state_then_receives_changes() {
    let prefix = unique("t-control");
    let manager = bus(&redis_url(), &prefix, "manager");
    manager.publish_control(&state(ControlCommand::Start, "regular open")).await.unwrap();

    let stocks = bus(&redis_url(), &prefix, "stocks");
    let mut rx = stocks.watch_control();
    let s = wait_for(&mut rx, Duration::from_secs(5), |s| s.is_on()).await;
    assert_eq!(s.reason, "regular open");

    manager.publish_control(&state(ControlCommand::Stop, "regular close")).await.unwrap();
    let s = wait_for(&mut rx, Duration::from_secs(2), |s| !s.is_on()).await;
    assert_eq!(s.reason, "regular close");
}

#[tokio::test]
async fn no_state_means_off() {
    let b = bus(&redis_url(), &unique("t-nostate"), "stocks");
    let s = b.control_state().await.unwrap();
    assert!(!s.is_on());
}

#[tokio::test]
async fn a_flag_change_reaches_three_subscribers_within_a_second() {
    let prefix = unique("t-flags");
    let admin = bus(&redis_url(), &prefix, "cashtagctl");
    let defaults = BTreeMap::from([("mongo_write".to_string(), true), ("kinesis_write".to_string(), true)]);
    assert_eq!(admin.init_flag_defaults(&defaults).await.unwrap().len(), 2);

    let mut subs = Vec::new();
    for s in ["stocks", "twitter", "log"] {
        let b = bus(&redis_url(), &prefix, s);
        let mut rx = b.watch_flags();
        wait_for(&mut rx, Duration::from_secs(5), |f| f.get("kinesis_write")).await;
        subs.push((b, rx));
    }
    let t0 = Instant::now();
    admin.set_flag("kinesis_write", false, "test").await.unwrap();
    for (_, rx) in subs.iter_mut() {
        wait_for(rx, Duration::from_secs(1), |f| !f.get("kinesis_write")).await;
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "took {:?}", t0.elapsed());

    // Defaults never overwrite an operator's change.
    assert!(admin.init_flag_defaults(&defaults).await.unwrap().is_empty());
    assert!(!admin.flags().await.unwrap().get("kinesis_write"));
}

#[tokio::test]
async fn heartbeats_list_who_is_alive() {
    let prefix = unique("t-hb");
    let a = bus(&redis_url(), &prefix, "stocks");
    let b = bus(&redis_url(), &prefix, "twitter");
    let stop = tokio_util::sync::CancellationToken::new();
    let ha = a.spawn_heartbeat(
        Duration::from_millis(100),
        Duration::from_secs(1),
        stop.clone(),
        || serde_json::json!({"state":"on"}),
    );
    let hb =
        b.spawn_heartbeat(Duration::from_millis(100), Duration::from_secs(1), stop.clone(), || serde_json::Value::Null);
    let alive = eventually(Duration::from_secs(3), || async {
        let l = a.alive().await.unwrap();
        (l.len() == 2).then_some(l)
    })
    .await
    .expect("two heartbeats");
    assert_eq!(alive[0].service, "stocks");
    assert_eq!(alive[0].info["state"], "on");
    assert_eq!(alive[1].service, "twitter");
    stop.cancel();
    ha.await.unwrap();
    hb.await.unwrap();
    assert!(a.alive().await.unwrap().is_empty(), "a clean stop removes the heartbeat");
}

fn test_event(b: &Bus, i: usize) -> EventDraft {
    b.event(EventKind::Activity, "test.event", format!("event {i}")).with("i", i)
}

#[tokio::test]
async fn ten_thousand_events_written_without_a_consumer_are_all_read_once() {
    let prefix = unique("t-events");
    let producer = bus(&redis_url(), &prefix, "stocks");
    for i in 0..10_000 {
        producer.emit(test_event(&producer, i));
    }
    assert!(producer.events().flush(Duration::from_secs(30)).await, "events flushed to redis");

    let stream = producer.keys().events_stream();
    let mut consumer = producer.consumer(&stream, "log", "log-1").unwrap().with_block(Duration::from_millis(200));
    let mut seen = HashSet::new();
    let mut ids = HashSet::new();
    loop {
        let batch = consumer.read::<Event>().await.unwrap();
        if batch.is_empty() {
            break;
        }
        let mut acks = Vec::new();
        for e in batch {
            assert!(ids.insert(e.id.clone()), "entry {} delivered twice", e.id);
            let ev = e.value.unwrap();
            assert!(seen.insert(ev.fields["i"].as_u64().unwrap()));
            acks.push(e.id);
        }
        assert_eq!(consumer.ack(&acks).await.unwrap(), acks.len());
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(consumer.pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn entries_a_dead_consumer_left_pending_are_claimed_by_another() {
    let prefix = unique("t-claim");
    let producer = bus(&redis_url(), &prefix, "stocks");
    for i in 0..1_000 {
        producer.emit(test_event(&producer, i));
    }
    assert!(producer.events().flush(Duration::from_secs(30)).await);
    let stream = producer.keys().events_stream();

    // Consumer A reads 300 entries, acknowledges 100, then dies.
    let mut a =
        producer.consumer(&stream, "log", "log-a").unwrap().with_count(300).with_block(Duration::from_millis(100));
    let first = a.read::<Event>().await.unwrap();
    assert_eq!(first.len(), 300);
    let acked_by_a: Vec<String> = first[..100].iter().map(|e| e.id.clone()).collect();
    a.ack(&acked_by_a).await.unwrap();
    drop(a);

    // Consumer B claims A's 200 after they sat idle, and reads the remaining 700.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = producer
        .consumer(&stream, "log", "log-b")
        .unwrap()
        .with_min_idle(Duration::from_millis(200))
        .with_block(Duration::from_millis(100));
    let mut processed: Vec<String> = acked_by_a.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while processed.len() < 1_000 && Instant::now() < deadline {
        let batch = b.read::<Event>().await.unwrap();
        let ids: Vec<String> = batch
            .into_iter()
            .map(|e| {
                e.value.expect("valid event");
                e.id
            })
            .collect();
        b.ack(&ids).await.unwrap();
        processed.extend(ids);
    }
    let unique_ids: HashSet<&String> = processed.iter().collect();
    assert_eq!(processed.len(), 1_000, "nothing processed twice");
    assert_eq!(unique_ids.len(), 1_000, "nothing lost");
    assert_eq!(b.pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_malformed_entry_is_returned_as_an_error_not_a_crash() {
    let prefix = unique("t-malformed");
    let b = bus(&redis_url(), &prefix, "x");
    let stream = b.keys().events_stream();
    let mut c = b.conn();
    let _: String =
        redis::cmd("XADD").arg(&stream).arg("*").arg("data").arg("{not json").query_async(&mut c).await.unwrap();
    let mut consumer = b.consumer(&stream, "log", "l").unwrap().with_block(Duration::from_millis(100));
    let batch = consumer.read::<Event>().await.unwrap();
    assert_eq!(batch.len(), 1);
    let err = batch[0].value.clone().unwrap_err();
    assert!(err.contains("malformed entry"), "{err}");
    assert_eq!(consumer.ack(&[batch[0].id.clone()]).await.unwrap(), 1);
}

#[tokio::test]
async fn subscribers_survive_a_redis_restart() {
    let mut redis = PrivateServer::start(ServerKind::Redis);
    let prefix = unique("t-restart");
    let url = redis.url();
    let stocks = bus(&url, &prefix, "stocks");
    let mut control = stocks.watch_control();
    let mut flags = stocks.watch_flags();
    let admin = bus(&url, &prefix, "manager");
    admin.set_flag("mongo_write", true, "test").await.unwrap();
    wait_for(&mut flags, Duration::from_secs(5), |f| f.get("mongo_write")).await;

    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();

    // The subscriber was never restarted: it must see the next control message and flag change.
    eventually(Duration::from_secs(15), || async {
        admin.publish_control(&state(ControlCommand::Start, "after restart")).await.ok()
    })
    .await
    .expect("redis back");
    let s = wait_for(&mut control, Duration::from_secs(15), |s| s.is_on()).await;
    assert_eq!(s.reason, "after restart");
    admin.set_flag("kinesis_write", true, "test").await.unwrap();
    wait_for(&mut flags, Duration::from_secs(10), |f| f.get("kinesis_write")).await;

    // The outage was reported as an event on the events stream.
    assert!(stocks.events().flush(Duration::from_secs(10)).await);
    let mut consumer =
        stocks.consumer(&stocks.keys().events_stream(), "log", "l").unwrap().with_block(Duration::from_millis(100));
    let events = consumer.read::<Event>().await.unwrap();
    let outage = events.iter().filter_map(|e| e.value.as_ref().ok()).find(|e| e.code == "redis.outage");
    let outage = outage.expect("an outage event");
    assert_eq!(outage.kind, EventKind::Warning);
    assert!(outage.fields["seconds"].as_f64().unwrap() > 1.0, "{outage:?}");
}

#[tokio::test]
async fn recent_events_are_the_newest_newest_first_and_a_hold_round_trips() {
    let prefix = unique("t-recent");
    let b = bus(&redis_url(), &prefix, "stocks");
    for i in 0..50 {
        b.emit(test_event(&b, i));
    }
    assert!(b.events().flush(Duration::from_secs(10)).await);
    let newest: Vec<u64> = b.recent_events(3).await.unwrap().iter().map(|e| e.fields["i"].as_u64().unwrap()).collect();
    assert_eq!(newest, [49, 48, 47]);
    let oldest: Vec<u64> = b.peek_events(2).await.unwrap().iter().map(|e| e.fields["i"].as_u64().unwrap()).collect();
    assert_eq!(oldest, [0, 1]);

    // A maintenance stop: stored, published as the control state, released once.
    assert_eq!(b.control_hold().await.unwrap(), None);
    let hold =
        cashtag_bus::ControlHold { reason: "disk".into(), by: "ops".into(), at: Clock::System.now(), until: None };
    b.hold_sources(&hold).await.unwrap();
    assert_eq!(b.control_hold().await.unwrap().as_ref(), Some(&hold));
    let s = b.control_state().await.unwrap();
    assert!(!s.is_on() && s.reason == "maintenance stop by ops: disk", "{s:?}");
    assert_eq!(b.release_hold().await.unwrap(), Some(hold));
    assert_eq!(b.release_hold().await.unwrap(), None);
}

/// A stream over its memory cap is trimmed to what fits, whatever its entry cap says: a
/// backlog nobody reads cannot fill Redis.
#[tokio::test]
async fn a_stream_is_kept_under_its_memory_cap() {
    let key = unique("t-bus-cap-stream");
    let client = redis::Client::open(redis_url()).unwrap();
    let cap = cashtag_bus::StreamCap::new(1_000_000, 2);
    let writer = cashtag_bus::StreamWriter::<String>::spawn(client.clone(), key.clone(), cap, 100_000, None).unwrap();
    let kilobyte = "x".repeat(1024);
    for _ in 0..20_000 {
        writer.push(kilobyte.clone());
    }
    assert!(writer.flush(Duration::from_secs(30)).await);
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let bytes: u64 =
        redis::cmd("MEMORY").arg("USAGE").arg(&key).arg("SAMPLES").arg(0).query_async(&mut c).await.unwrap();
    let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut c).await.unwrap();
    assert!(bytes <= 3 * 1024 * 1024, "{bytes} bytes in {len} entries (20 MiB written, cap 2 MiB)");
    assert!(len >= 1_000, "it keeps the newest entries: {len}");
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut c).await.unwrap();
}
