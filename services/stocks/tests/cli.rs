//! cashtag-stocks as a process: the simulated market flows into MongoDB only while the
//! manager says the market is open; SIGTERM exits cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_core::Clock;
use cashtag_testkit::{free_port, mongo_uri, redis_url, unique};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-stocks");

#[test]
fn help_works() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: cashtag-stocks"));
}

#[test]
fn an_unknown_source_is_a_clear_error() {
    let out = Command::new(BIN).arg("run").env("CASHTAG_STOCKS_SOURCE", "bloomberg").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stocks.source") && err.contains("bloomberg"), "{err}");
}

async fn trades(db: &mongodb::Database) -> u64 {
    db.collection::<bson::Document>("trades").count_documents(bson::doc! {}).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_quotes_flow_only_while_the_market_is_open() {
    let prefix = unique("t-stocks-cli");
    let db_name = unique("stockscli");
    let spool = std::env::temp_dir().join(unique("spool"));
    let mut child = Command::new(BIN)
        .arg("run")
        .env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", &prefix)
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", &db_name)
        .env("CASHTAG_FLAGS_KINESIS_WRITE", "false")
        .env("CASHTAG_SINKS_SPOOL_DIR", &spool)
        .env("CASHTAG_SINKS_BATCH_AGE_MS", "200")
        .env("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1")
        .env("CASHTAG_HEARTBEAT_TTL_SECS", "3")
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CASHTAG_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let db = client.database(&db_name);
    let manager = Bus::open(
        &redis_url(),
        &prefix,
        Identity { service: "manager".into(), instance: "m".into() },
        Clock::System,
        1000,
    )
    .unwrap();
    let publish = |cmd| {
        let m = manager.clone();
        async move { m.publish_control(&ControlState { cmd, reason: "test".into(), at: chrono::Utc::now() }).await.unwrap() }
    };

    // Up and told the market is closed (its heartbeat says so): nothing is written.
    let off = |h: &cashtag_bus::Heartbeat| h.info["market_on"] == false;
    assert!(manager.heartbeat_where("stocks", Duration::from_secs(30), off).await.is_some(), "stocks never came up");
    assert_eq!(trades(&db).await, 0, "nothing while the market is closed");
    publish(ControlCommand::Start).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while trades(&db).await < 20 {
        assert!(Instant::now() < deadline, "no sim trades arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stop_sent = chrono::Utc::now();
    publish(ControlCommand::Stop).await;
    // Stopped, and what it took before is written; then nothing more for a while. (A
    // heartbeat stamped after the stop was sent: the one in Redis may still be from before
    // the start, when the market was off too.)
    let stopped_and_idle = move |h: &cashtag_bus::Heartbeat| {
        h.at > stop_sent
            && h.info["market_on"] == false
            && h.info["sinks"]
                .as_array()
                .is_some_and(|s| s.iter().all(|x| x["idle"] == true && x["backlog_bytes"] == 0))
    };
    assert!(manager.heartbeat_where("stocks", Duration::from_secs(30), stopped_and_idle).await.is_some());
    let at_stop = trades(&db).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(trades(&db).await, at_stop, "nothing written while stopped");

    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(spool);
}
