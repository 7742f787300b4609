//! The events outbox against a private Redis that restarts without persistence: what the
//! log's reader group had not acknowledged is sent again, so every event reaches a reader;
//! what it had acknowledged is confirmed and leaves the outbox.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, Identity};
use cashtag_core::{Clock, Event, EventKind};
use cashtag_testkit::{PrivateServer, ServerKind, unique};

async fn read_all(bus: &Bus, group: &str, want: usize, timeout: Duration) -> Vec<Event> {
    let mut consumer =
        bus.consumer(&bus.keys().events_stream(), group, "reader").unwrap().with_block(Duration::from_millis(200));
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let Ok(batch) = consumer.read::<Event>().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        got.extend(batch.into_iter().filter_map(|e| e.value.ok()));
        let _ = consumer.ack(&ids).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_events_are_sent_again_after_a_redis_restart() {
    let mut redis = PrivateServer::start(ServerKind::Redis);
    let prefix = unique("t-outbox");
    let dir = std::env::temp_dir().join(unique("outbox"));
    let identity = || Identity { service: "stocks".into(), instance: "s1".into() };
    let producer = Bus::open_durable(&redis.url(), &prefix, identity(), Clock::System, 1_000_000, &dir).unwrap();
    let reader_bus = Bus::open(&redis.url(), &prefix, identity(), Clock::System, 1_000).unwrap();
    let group = producer.keys().log_group();

    // The first 50 are read and acknowledged by the log's group: confirmed.
    for i in 0..50 {
        producer.emit(producer.event(EventKind::Activity, "test.first", format!("{i}")));
    }
    assert!(producer.events().flush(Duration::from_secs(10)).await);
    assert_eq!(read_all(&reader_bus, group, 50, Duration::from_secs(10)).await.len(), 50);
    let deadline = Instant::now() + Duration::from_secs(10);
    while producer.events().stats().confirmed.load(std::sync::atomic::Ordering::Relaxed) < 50 {
        assert!(Instant::now() < deadline, "the first 50 were never confirmed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The next 50 reach Redis, nobody reads them, and Redis restarts without persistence.
    let mut second = HashSet::new();
    for i in 0..50 {
        let e = producer.stamp(producer.event(EventKind::Activity, "test.second", format!("{i}")));
        second.insert(e.id.clone());
        producer.publish(e);
    }
    assert!(producer.events().flush(Duration::from_secs(10)).await);
    redis.kill();
    redis.restart();

    // A reader that starts afresh gets every one of them (the producer sent them again).
    let got = read_all(&reader_bus, group, 50, Duration::from_secs(30)).await;
    let got_ids: HashSet<String> = got.iter().filter(|e| e.code == "test.second").map(|e| e.id.clone()).collect();
    assert_eq!(got_ids, second, "every unacknowledged event arrived after the restart");
    assert!(producer.events().stats().resent.load(std::sync::atomic::Ordering::Relaxed) >= 50);
    let _ = std::fs::remove_dir_all(dir);
}

/// After a restart without persistence, another service's newer entry is read and
/// acknowledged before the producer asks how far the group got: that progress is about the
/// new server's entries and confirms none of the producer's (which the new server never
/// had). The soak lost an event this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_servers_reader_progress_confirms_nothing_sent_before_the_restart() {
    let mut redis = PrivateServer::start(ServerKind::Redis);
    let prefix = unique("t-outbox-run");
    let dir = std::env::temp_dir().join(unique("outbox"));
    let identity = |s: &str| Identity { service: s.into(), instance: s.into() };
    let producer =
        Bus::open_durable(&redis.url(), &prefix, identity("stocks"), Clock::System, 1_000_000, &dir).unwrap();
    let other = Bus::open(&redis.url(), &prefix, identity("manager"), Clock::System, 1_000).unwrap();
    let reader_bus = Bus::open(&redis.url(), &prefix, identity("log"), Clock::System, 1_000).unwrap();
    let group = producer.keys().log_group();

    let mut sent = HashSet::new();
    for i in 0..20 {
        let e = producer.stamp(producer.event(EventKind::Activity, "test.before", format!("{i}")));
        sent.insert(e.id.clone());
        producer.publish(e);
    }
    assert!(producer.events().flush(Duration::from_secs(10)).await);
    redis.kill();
    redis.restart();
    // At once, on the new server: a newer entry, read and acknowledged by the log's group.
    other.emit(other.event(EventKind::Activity, "test.newer", "x".to_string()));
    assert!(other.events().flush(Duration::from_secs(10)).await);
    assert_eq!(read_all(&reader_bus, group, 1, Duration::from_secs(10)).await.len(), 1);

    let got = read_all(&reader_bus, group, 20, Duration::from_secs(30)).await;
    let got_ids: HashSet<String> = got.iter().filter(|e| e.code == "test.before").map(|e| e.id.clone()).collect();
    assert_eq!(got_ids, sent, "every event sent before the restart arrived");
    let _ = std::fs::remove_dir_all(dir);
}
