//! The ingest against real Redis and MongoDB: stale-feed detection on a simulated clock,
//! error bursts and the webhook (also a webhook that hangs).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_core::{Clock, CountKind, CountSample, EventKind};
use cashtag_eventlog::{Ingest, IngestConfig, LogStore, StoredEvent, Webhook};
use cashtag_testkit::{mongo_uri, redis_url, unique};
use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

fn bus(prefix: &str, service: &str, clock: Clock) -> Bus {
    Bus::open(&redis_url(), prefix, Identity { service: service.into(), instance: "i1".into() }, clock, 1_000_000)
        .unwrap()
}

async fn store(db: &str) -> LogStore {
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    LogStore::new(&client, db)
}

fn config(check_every_ms: u64) -> IngestConfig {
    IngestConfig {
        consumer: "cashtag-log".into(),
        stale_after: TimeDelta::minutes(5),
        burst_errors: 10,
        burst_window: TimeDelta::seconds(60),
        check_every: Duration::from_millis(check_every_ms),
        print: false,
    }
}

async fn stored(db: &str, code: &str) -> Vec<StoredEvent> {
    let s = store(db).await;
    let since = DateTime::<Utc>::UNIX_EPOCH;
    s.events_since(since, None, None, 1_000_000).await.unwrap().into_iter().filter(|e| e.event.code == code).collect()
}

async fn eventually_count(db: &str, code: &str, n: usize, timeout: Duration) -> Vec<StoredEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = stored(db, code).await;
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn minute(base: DateTime<Utc>, m: i64) -> DateTime<Utc> {
    base + TimeDelta::minutes(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_feed_warns_once_in_market_hours_and_recovers_once() {
    let prefix = unique("t-log-stale");
    let db = unique("logstale");
    let base: DateTime<Utc> = "2026-11-24T14:20:00Z".parse().unwrap();
    let clock = Clock::manual(base);
    let log_bus = bus(&prefix, "log", clock.clone());
    let stop = CancellationToken::new();
    let ingest = Ingest::new(log_bus.clone(), store(&db).await, None, None, config(20));
    let stats = ingest.stats();
    let task = tokio::spawn(ingest.run(stop.clone()));

    let stocks = bus(&prefix, "stocks", clock.clone());
    let counts = stocks.counts_writer(100_000).unwrap();
    let sample = |m: i64, count: u64| CountSample {
        id: String::new(),
        minute: minute(base, m),
        service: "stocks".into(),
        instance: "i1".into(),
        source: "sim".into(),
        ticker: None,
        kind: CountKind::Trades,
        count,
    };
    // Each sample is stored (and seen by the detector) before the clock moves on, so the
    // test does not depend on how fast the servers are.
    let mut pushed = 0u64;
    let mut push = async |c: CountSample| {
        counts.push(c);
        pushed += 1;
        assert!(counts.flush(Duration::from_secs(10)).await, "counts reach the stream");
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.counts.load(std::sync::atomic::Ordering::Relaxed) < pushed {
            assert!(Instant::now() < deadline, "the log service stores sample {pushed}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let step = |m: i64| {
        clock.set(minute(base, m));
    };
    // 14:20–14:29, market closed: silence is not stale.
    for m in 0..10 {
        push(sample(m, 0)).await;
        step(m + 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // 14:30: the market opens.
    stocks
        .publish_control(&ControlState {
            cmd: ControlCommand::Start,
            reason: "regular open".into(),
            at: minute(base, 10),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for m in 10..21 {
        push(sample(m, 0)).await;
        step(m + 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // 14:41: records again.
    push(sample(21, 7)).await;
    step(22);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 16:00: closed, and silent for half an hour.
    stocks
        .publish_control(&ControlState {
            cmd: ControlCommand::Stop,
            reason: "regular close".into(),
            at: minute(base, 100),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for m in 100..130 {
        push(sample(m, 0)).await;
        step(m + 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stale = eventually_count(&db, "feed.stale", 1, Duration::from_secs(5)).await;
    assert_eq!(stale.len(), 1, "one warning: {stale:?}");
    assert_eq!(stale[0].event.kind, EventKind::Warning);
    assert_eq!(stale[0].event.fields["silent_since"], "2026-11-24T14:30:00.000Z", "counted from the open");
    let recovered = eventually_count(&db, "feed.recovered", 1, Duration::from_secs(5)).await;
    assert_eq!(recovered.len(), 1, "one recovery: {recovered:?}");
    stop.cancel();
    let stats = task.await.unwrap();
    assert!(stats.counts.load(std::sync::atomic::Ordering::Relaxed) >= 52);
}

/// A webhook endpoint that records the alerts it receives.
async fn webhook_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_burst_gives_one_alert_and_reaches_the_webhook() {
    let prefix = unique("t-log-burst");
    let db = unique("logburst");
    let (url, received) = webhook_server().await;
    let log_bus = bus(&prefix, "log", Clock::System);
    let stop = CancellationToken::new();
    let hook = Webhook::spawn(url, Duration::from_secs(2));
    let task = tokio::spawn(Ingest::new(log_bus, store(&db).await, None, Some(hook), config(200)).run(stop.clone()));

    let stocks = bus(&prefix, "stocks", Clock::System);
    for i in 0..25 {
        stocks.emit(stocks.event(EventKind::Error, "source.error", format!("provider said no ({i})")));
    }
    stocks.emit(stocks.event(EventKind::Error, "x", "one error from another service").with("n", 1));
    assert!(stocks.events().flush(Duration::from_secs(5)).await);
    let alerts = eventually_count(&db, "alert.error_burst", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts_after = stored(&db, "alert.error_burst").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts_after.len(), 1, "one alert for the whole burst");
    assert_eq!(alerts[0].event.fields["service"], "stocks");
    assert!(alerts[0].event.message.contains("11 errors from stocks"), "{}", alerts[0].event.message);

    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["code"], "alert.error_burst");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_does_not_stall_storage() {
    // An endpoint that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let _keep = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming() {
            conns.push(c);
        }
    });
    let prefix = unique("t-log-hang");
    let db = unique("loghang");
    let stop = CancellationToken::new();
    let hook = Webhook::spawn(url, Duration::from_secs(30));
    let mut cfg = config(200);
    cfg.burst_window = TimeDelta::milliseconds(1);
    cfg.burst_errors = 0;
    let task = tokio::spawn(
        Ingest::new(bus(&prefix, "log", Clock::System), store(&db).await, None, Some(hook), cfg).run(stop.clone()),
    );
    let stocks = bus(&prefix, "stocks", Clock::System);
    // Every error is an alert for the hanging webhook; storage must keep up anyway.
    let t0 = Instant::now();
    for i in 0..300 {
        // Published past the bus's limiter: the log's storage is under test, not the limiter.
        stocks.publish(stocks.stamp(stocks.event(EventKind::Error, "source.error", format!("e{i}"))));
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(stocks.events().flush(Duration::from_secs(5)).await);
    let errors = eventually_count(&db, "source.error", 300, Duration::from_secs(20)).await;
    assert_eq!(errors.len(), 300, "all stored");
    assert!(t0.elapsed() < Duration::from_secs(20), "storage was not stalled by the webhook");
    stop.cancel();
    task.await.unwrap();
}

/// An entry the database refuses for good (here: a 17 MiB event, larger than a document
/// may be; producers cap their events, but a stream can hold anything) goes to
/// `dead_letters` and is acknowledged; the events after it are stored as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_entry_is_dead_lettered_and_never_blocks_the_stream() {
    let prefix = unique("t-log-poison");
    let db = unique("logpoison");
    let log_bus = bus(&prefix, "log", Clock::System);
    let stop = CancellationToken::new();
    let ingest = Ingest::new(log_bus.clone(), store(&db).await, None, None, config(50));
    let task = tokio::spawn(ingest.run(stop.clone()));
    let producer = bus(&prefix, "stocks", Clock::System);
    producer.emit(producer.event(EventKind::Activity, "test.before", "before the poison"));
    assert!(producer.events().flush(Duration::from_secs(5)).await);
    // A poison entry written straight to the stream.
    let mut poison = producer.stamp(producer.event(EventKind::Error, "test.poison", "x"));
    poison.message = "x".repeat(17 * 1024 * 1024);
    let mut c = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(producer.keys().events_stream())
        .arg("*")
        .arg("data")
        .arg(serde_json::to_string(&poison).unwrap())
        .query_async(&mut c)
        .await
        .unwrap();
    for i in 0..20 {
        producer.emit(producer.event(EventKind::Activity, "test.after", format!("after {i}")));
    }
    assert!(producer.events().flush(Duration::from_secs(5)).await);
    assert_eq!(eventually_count(&db, "test.after", 20, Duration::from_secs(30)).await.len(), 20, "the stream went on");
    assert_eq!(stored(&db, "test.before").await.len(), 1);
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let dead = client.database(&db).collection::<bson::Document>("dead_letters");
    let letters = dead.count_documents(bson::doc! {"collection": "events"}).await.unwrap();
    assert_eq!(letters, 1, "the poison entry is kept aside");
    let letter = dead.find_one(bson::doc! {}).await.unwrap().unwrap();
    assert!(letter.get_str("reason").unwrap().contains("16 MiB"), "{letter:?}");
    // Nothing is left pending: the poison entry was acknowledged.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(producer.keys().events_stream())
        .arg("cashtag-log")
        .query_async(&mut c)
        .await
        .unwrap();
    let redis::Value::Array(p) = pending else { panic!("{pending:?}") };
    assert_eq!(p.first(), Some(&redis::Value::Int(0)), "{p:?}");
    stop.cancel();
    let _ = task.await;
}

/// A sample's delta is its change from the previous minute of its series: kept in memory
/// while the service runs (a sparse series — a minute without a sample — has none), and
/// read back from the store after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_follow_a_series_across_gaps_and_restarts() {
    let prefix = unique("t-log-delta");
    let db = unique("logdelta");
    let base: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
    let clock = Clock::manual(base);
    let stocks = bus(&prefix, "twitter", clock.clone());
    let counts = stocks.counts_writer(100_000).unwrap();
    let sample = |m: i64, count: u64| CountSample {
        id: format!("delta-{m}"),
        minute: minute(base, m),
        service: "twitter".into(),
        instance: "i1".into(),
        source: "sim".into(),
        ticker: Some("AAPL".parse().unwrap()),
        kind: CountKind::Posts,
        count,
    };
    let run = |samples: Vec<CountSample>| {
        let (clock, counts, db) = (clock.clone(), counts.clone(), db.clone());
        let prefix = prefix.clone();
        async move {
            let stop = CancellationToken::new();
            let ingest = Ingest::new(bus(&prefix, "log", clock), store(&db).await, None, None, config(20));
            let stats = ingest.stats();
            let task = tokio::spawn(ingest.run(stop.clone()));
            let n = samples.len() as u64;
            for s in samples {
                counts.push(s);
            }
            assert!(counts.flush(Duration::from_secs(10)).await, "counts reach the stream");
            let deadline = Instant::now() + Duration::from_secs(20);
            while stats.counts.load(std::sync::atomic::Ordering::Relaxed) < n {
                assert!(Instant::now() < deadline, "the log service stores the samples");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.cancel();
            task.await.unwrap();
        }
    };
    // Minutes 0, 1, then a gap until 4; a restart; then minute 5.
    run(vec![sample(0, 3), sample(1, 5), sample(4, 1)]).await;
    run(vec![sample(5, 4)]).await;
    let stored = store(&db).await.counts_since(base, Some("sim"), Some("AAPL")).await.unwrap();
    let deltas: Vec<(i64, Option<i64>)> =
        stored.iter().map(|c| ((c.sample.minute - base).num_minutes(), c.delta)).collect();
    assert_eq!(deltas, [(0, None), (1, Some(2)), (4, None), (5, Some(3))]);
}

/// A sink down and a failed backup reach the webhook once each when they start and once
/// when they are resolved, with a text a chat webhook shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_reach_the_webhook_once_opened_and_once_resolved() {
    use cashtag_core::catalog;
    let prefix = unique("t-log-incident");
    let db = unique("logincident");
    let (url, received) = webhook_server().await;
    let stop = CancellationToken::new();
    let hook = Webhook::spawn(url, Duration::from_secs(2));
    let task = tokio::spawn(
        Ingest::new(bus(&prefix, "log", Clock::System), store(&db).await, None, Some(hook), config(200))
            .run(stop.clone()),
    );
    let stocks = bus(&prefix, "stocks", Clock::System);
    let backup = bus(&prefix, "backup", Clock::System);
    stocks.emit(catalog::sink_down("kinesis", "connection refused"));
    stocks.emit(catalog::sink_down("kinesis", "connection refused"));
    backup.emit(catalog::backup_failed("MongoDB: timed out", 3.0, 5));
    stocks.emit(catalog::sink_recovered("kinesis", 42.0, 1_000, "connection refused"));
    backup.emit(catalog::backup_done("backups/x.tar.gz", 4, 1_000, 10_000, 2.0));
    assert!(stocks.events().flush(Duration::from_secs(5)).await && backup.events().flush(Duration::from_secs(5)).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received.lock().unwrap().clone();
    let seen: Vec<(String, String)> =
        got.iter().map(|v| (v["incident"].as_str().unwrap().into(), v["state"].as_str().unwrap().into())).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("backups".to_string(), "opened".to_string()),
            ("backups".to_string(), "resolved".to_string()),
            ("sink kinesis of stocks".to_string(), "opened".to_string()),
            ("sink kinesis of stocks".to_string(), "resolved".to_string()),
        ],
        "{got:#?}"
    );
    let opened = got.iter().find(|v| v["state"] == "opened" && v["code"] == "sink.down").unwrap();
    assert!(opened["text"].as_str().unwrap().starts_with("cashtag: sink kinesis of stocks: kinesis unreachable"));
    stop.cancel();
    task.await.unwrap();
}
