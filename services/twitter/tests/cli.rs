//! cashtag-twitter as a process: help, `score`, and scored sim posts flowing into MongoDB
//! only while the market is open.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_bus::{ControlCommand, ControlState};
use cashtag_testkit::{free_port, mongo_uri, redis_url, unique};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-twitter");

#[test]
fn help_works() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: cashtag-twitter") && text.contains("score") && text.contains("run"));
}

fn score(input: &str, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let mut child = Command::new(BIN)
        .arg("score")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread: a long input's output fills the pipe before the input ends.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let rows = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.success(), rows, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn score_reads_lines_and_json_lines() {
    let (ok, rows, _) = score(
        "VADER is smart, handsome, and funny.\n{\"text\": \"$TSLA to the moon 🚀\"}\n{\"text\": \"LOVE is dumping\", \"tickers\": [\"LOVE\"]}\n",
        &[],
    );
    assert!(ok);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["vader"]["compound"], 0.8316);
    assert_eq!(rows[0]["vader"]["pos"], 0.746);
    assert_eq!(rows[1]["finance"]["label"], "bullish");
    assert_eq!(rows[2]["finance"]["label"], "bearish", "LOVE is a ticker on this line: only \"dumping\" counts");
}

#[test]
fn bad_json_lines_are_reported_and_skipped() {
    let (ok, rows, err) = score("{\"txt\": 1}\n{not json\nfine text\n", &["--tickers", "AAPL"]);
    assert!(!ok, "exit status says lines were skipped");
    assert_eq!(rows.len(), 1);
    assert!(err.contains("line 1") && err.contains("\"text\""), "{err}");
    assert!(err.contains("line 2") && err.contains("not valid JSON"), "{err}");
}

/// Input longer than one block: every thread count writes the same lines in input order,
/// and a bad line far down is reported with its own line number.
#[test]
fn many_lines_score_in_order_whatever_the_threads() {
    let mut input = String::new();
    for i in 0..12_000 {
        if i == 9_999 {
            input.push_str("{not json\n");
        } else {
            input.push_str(&format!("{{\"text\": \"post {i}: $AAPL looks great, buying calls\"}}\n"));
        }
    }
    let (ok, one, err) = score(&input, &["--threads", "1"]);
    assert!(!ok && err.contains("line 10000: not valid JSON"), "{err}");
    assert_eq!(one.len(), 11_999);
    assert!(one.iter().enumerate().all(|(i, r)| {
        let n = if i < 9_999 { i } else { i + 1 };
        r["text"].as_str().unwrap().starts_with(&format!("post {n}:"))
    }));
    for threads in ["2", "3"] {
        let (ok, rows, err) = score(&input, &["--threads", threads]);
        assert!(!ok && err.contains("line 10000: not valid JSON"), "{err}");
        assert_eq!(rows, one, "{threads} threads");
    }
}

async fn posts(db: &mongodb::Database) -> u64 {
    db.collection::<bson::Document>("posts").count_documents(bson::doc! {}).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scored_sim_posts_flow_only_while_the_market_is_open() {
    let prefix = unique("t-twitter-cli");
    let db_name = unique("twittercli");
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
        .env("CASHTAG_SIM_POSTS_PER_MINUTE", "10")
        .env("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1")
        .env("CASHTAG_HEARTBEAT_TTL_SECS", "3")
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CASHTAG_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let db = client.database(&db_name);
    let manager = cashtag_intake::harness::bus(&prefix, "manager");
    let publish = |cmd| {
        let m = manager.clone();
        async move { m.publish_control(&ControlState { cmd, reason: "test".into(), at: chrono::Utc::now() }).await.unwrap() }
    };
    // Up and told the market is closed (its heartbeat says so): nothing is written.
    let off = |h: &cashtag_bus::Heartbeat| h.info["market_on"] == false;
    assert!(manager.heartbeat_where("twitter", Duration::from_secs(30), off).await.is_some(), "twitter never came up");
    assert_eq!(posts(&db).await, 0, "nothing while the market is closed");
    publish(ControlCommand::Start).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while posts(&db).await < 5 {
        assert!(Instant::now() < deadline, "no sim posts arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let one = db.collection::<bson::Document>("posts").find_one(bson::doc! {}).await.unwrap().unwrap();
    let sentiment = one.get_document("sentiment").expect("scored");
    assert!(sentiment.get_document("vader").is_ok() && sentiment.get_document("finance").is_ok());
    assert_eq!(sentiment.get_str("model_version").unwrap(), cashtag_sentiment::MODEL_VERSION);
    let stop_sent = chrono::Utc::now();
    publish(ControlCommand::Stop).await;
    // Stopped, and what it took before is written; then nothing more for a while.
    let stopped_and_idle = cashtag_intake::harness::stopped_and_idle_after(stop_sent);
    assert!(manager.heartbeat_where("twitter", Duration::from_secs(30), stopped_and_idle).await.is_some());
    let at_stop = posts(&db).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(posts(&db).await, at_stop, "nothing written while stopped");
    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(spool);
}
