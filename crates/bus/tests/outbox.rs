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
