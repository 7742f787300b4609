//! cashtag-log as a process: exactly-once storage across a SIGKILL, `tail` and `counts`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, Identity};
use cashtag_core::{Clock, CountKind, CountSample, Event, EventKind, Ticker};
use cashtag_eventlog::{LogStore, StoredCount};
use cashtag_testkit::{free_port, mongo_uri, redis_url, unique};
use chrono::{DurationRound, TimeDelta, Utc};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-log");

fn log_cmd(prefix: &str, db: &str, files: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHTAG_") {
            c.env_remove(k);
        }
    }
    c.env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", prefix)
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", db)
        .env("CASHTAG_LOG_FILES_DIR", files)
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CASHTAG_LOG", "warn")
        .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(cashtag_testkit::unique("state")));
    c
}

fn spawn_run(prefix: &str, db: &str, files: &std::path::Path) -> Child {
    log_cmd(prefix, db, files).arg("run").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

async fn test_events_stored(db: &mongodb::Database) -> u64 {
    db.collection::<bson::Document>("events").count_documents(bson::doc! {"code": "test.event"}).await.unwrap()
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["run", "tail", "counts"] {
        assert!(text.contains(c));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_are_stored_exactly_once_across_a_sigkill() {
    let prefix = unique("t-log-10k");
    let db_name = unique("log10k");
    let files = std::env::temp_dir().join(unique("logfiles"));
    let producer = Bus::open(
        &redis_url(),
        &prefix,
        Identity { service: "stocks".into(), instance: "s1".into() },
        Clock::System,
        1_000_000,
    )
    .unwrap();
    // Published while the log service is down.
    for i in 0..10_000u64 {
        producer.emit(producer.event(EventKind::Activity, "test.event", format!("event {i}")).with("i", i));
    }
    assert!(producer.events().flush(Duration::from_secs(30)).await);

    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let db = client.database(&db_name);
    let mut first = spawn_run(&prefix, &db_name, &files);
    let deadline = Instant::now() + Duration::from_secs(120);
    while test_events_stored(&db).await < 2_500 {
        assert!(Instant::now() < deadline, "the log service stored nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap(); // SIGKILL mid-way
    first.wait().unwrap();
    let at_kill = test_events_stored(&db).await;
    assert!(at_kill < 10_000, "killed mid-way ({at_kill} stored)");

    let mut second = spawn_run(&prefix, &db_name, &files);
    let deadline = Instant::now() + Duration::from_secs(180);
    while test_events_stored(&db).await < 10_000 {
        assert!(Instant::now() < deadline, "only {} stored", test_events_stored(&db).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(test_events_stored(&db).await, 10_000, "exactly once");
    let mut seen = std::collections::HashSet::new();
    let mut cursor = db.collection::<bson::Document>("events").find(bson::doc! {"code": "test.event"}).await.unwrap();
    while cursor.advance().await.unwrap() {
        let d = cursor.deserialize_current().unwrap();
        seen.insert(d.get_document("fields").unwrap().get_i64("i").unwrap());
    }
    assert_eq!(seen.len(), 10_000, "every event, none twice");

    // SIGTERM: a clean exit within 10 s.
    assert!(cashtag_testkit::terminate(&mut second, Duration::from_secs(10)).success());
    // The daily file has every event too (at least once).
    let day = Utc::now().format("%Y-%m-%d");
    let text = std::fs::read_to_string(files.join(format!("events-{day}.jsonl"))).unwrap();
    assert!(text.lines().filter(|l| l.contains("\"test.event\"")).count() >= 10_000);
    let _ = std::fs::remove_dir_all(files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_counts_print_the_seeded_rows() {
    let db_name = unique("logquery");
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let store = LogStore::new(&client, &db_name);
    let now = Utc::now();
    let ev = |mins_ago: i64, service: &str, kind: EventKind, code: &str| {
        let mut e =
            Event::new(now - TimeDelta::minutes(mins_ago), service, "h1", kind, code, format!("{code} from {service}"));
        e.fields.insert("n".into(), mins_ago.into());
        e
    };
    store
        .store_events(&[
            ("1-1".into(), ev(200, "stocks", EventKind::Error, "too.old")),
            ("2-1".into(), ev(30, "stocks", EventKind::Error, "sink.down")),
            ("3-1".into(), ev(20, "twitter", EventKind::Error, "source.error")),
            ("4-1".into(), ev(10, "stocks", EventKind::Activity, "sink.recovered")),
        ])
        .await
        .unwrap();
    let minute0 = (now - TimeDelta::minutes(90)).duration_trunc(TimeDelta::hours(1)).unwrap();
    let sample = |m: i64, ticker: Option<&str>, count: u64| StoredCount {
        sample: CountSample {
            id: String::new(),
            minute: minute0 + TimeDelta::minutes(m),
            service: "stocks".into(),
            instance: "h1".into(),
            source: "sim".into(),
            ticker: ticker.map(|t| Ticker::parse(t).unwrap()),
            kind: CountKind::Trades,
            count,
        },
        delta: None,
    };
    store
        .store_counts(&[
            ("1-1".into(), sample(0, Some("AAPL"), 10)),
            ("1-2".into(), sample(1, Some("AAPL"), 13)),
            ("1-3".into(), sample(1, Some("MSFT"), 4)),
            ("1-4".into(), sample(61, Some("AAPL"), 2)),
        ])
        .await
        .unwrap();
    let files = std::env::temp_dir();

    let out = log_cmd("unused", &db_name, &files)
        .args(["tail", "--since", "1h", "--service", "stocks", "--kind", "error", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["code"], "sink.down");

    let out = log_cmd("unused", &db_name, &files).args(["tail", "--since", "1h"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let codes: Vec<&str> = text.lines().map(|l| l.split_whitespace().nth(4).unwrap()).collect();
    assert_eq!(codes, ["sink.down", "source.error", "sink.recovered"], "{text}");

    let out = log_cmd("unused", &db_name, &files)
        .args(["counts", "--since", "1d", "--ticker", "AAPL", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(u64, serde_json::Value)> =
        rows.iter().map(|r| (r["count"].as_u64().unwrap(), r["change"].clone())).collect();
    assert_eq!(got, vec![(10, serde_json::Value::Null), (13, 3.into()), (2, serde_json::Value::Null)]);

    let out = log_cmd("unused", &db_name, &files)
        .args(["counts", "--since", "1d", "--source", "sim", "--by", "hour"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("time (UTC)"));
    assert_eq!(lines.len(), 4, "{text}"); // header, AAPL hour 1, MSFT hour 1, AAPL hour 2
    assert!(lines[1].contains("AAPL") && lines[1].contains(" 23 "), "{text}");
    assert!(lines[3].contains("AAPL") && lines[3].ends_with("-21"), "{text}");
}

/// `/healthz`'s status code and body, over a plain HTTP/1.0 request.
fn healthz(port: u16) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

fn wait_healthz(port: u16, code: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let got = healthz(port);
        if let Some((c, body)) = &got
            && *c == code
        {
            return body.clone();
        }
        assert!(Instant::now() < deadline, "/healthz did not answer {code}: {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Health tells the truth about what the service depends on: Redis or MongoDB unreachable
/// past the grace is a 503 naming it, and 200 again once it answers.
#[test]
fn healthz_says_503_while_redis_or_mongodb_is_unreachable() {
    use cashtag_testkit::{PrivateServer, ServerKind};
    let mut redis = PrivateServer::start(ServerKind::Redis);
    let mut mongo = PrivateServer::start(ServerKind::Mongo);
    let port = free_port();
    let files = std::env::temp_dir().join(unique("logfiles"));
    let mut child = log_cmd(&unique("t-log-health"), &unique("loghealth"), &files)
        .arg("run")
        .env("CASHTAG_REDIS_URL", redis.url())
        .env("CASHTAG_MONGO_URI", mongo.url())
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1")
        .env("CASHTAG_HEARTBEAT_DEPENDENCY_GRACE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthz(port, 200, Duration::from_secs(30));
    for (name, server) in [("redis", &mut redis), ("mongodb", &mut mongo)] {
        server.stop();
        let body = wait_healthz(port, 503, Duration::from_secs(20));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let state = v["details"]["dependencies"][name].as_str().unwrap_or_default().to_string();
        assert!(state.starts_with("unreachable for"), "{name}: {body}");
        server.restart();
        wait_healthz(port, 200, Duration::from_secs(30));
    }
    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(15)).success());
}
