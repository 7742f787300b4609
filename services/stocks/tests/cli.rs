//! cashtag-stocks as a process: the simulated market flows into MongoDB only while the
//! manager says the market is open; SIGTERM exits cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_bus::{ControlCommand, ControlState};
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
    let manager = cashtag_intake::harness::bus(&prefix, "manager");
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
    // Stopped, and what it took before is written; then nothing more for a while.
    let stopped_and_idle = cashtag_intake::harness::stopped_and_idle_after(stop_sent);
    assert!(manager.heartbeat_where("stocks", Duration::from_secs(30), stopped_and_idle).await.is_some());
    let at_stop = trades(&db).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(trades(&db).await, at_stop, "nothing written while stopped");

    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(spool);
}

/// A token in the configuration never reaches an output stream or the events: not with
/// `CASHTAG_LOG=trace` while the provider connection is made (Finnhub takes its token in
/// the WebSocket URL), and not when the configuration file holding it does not parse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_stays_out_of_trace_logs_events_and_config_errors() {
    use futures::StreamExt;
    const TOKEN: &str = "fh-sekret-7f3a9c";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (connected, mut handshake) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let connected = connected.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let _ = connected.send(());
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    let prefix = unique("t-stocks-secret");
    let dir = std::env::temp_dir().join(unique("secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(BIN)
        .arg("run")
        .env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", &prefix)
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", unique("secret"))
        .env("CASHTAG_FLAGS_KINESIS_WRITE", "false")
        .env("CASHTAG_SINKS_SPOOL_DIR", dir.join("spool"))
        .env("CASHTAG_STOCKS_SOURCE", "finnhub")
        .env("CASHTAG_STOCKS_FINNHUB_WS_URL", &url)
        .env("CASHTAG_STOCKS_FINNHUB_TOKEN", TOKEN)
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CASHTAG_LOG", "trace")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let manager = cashtag_intake::harness::bus(&prefix, "manager");
    let started = chrono::Utc::now();
    manager
        .publish_control(&ControlState { cmd: ControlCommand::Start, reason: "test".into(), at: started })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), handshake.recv()).await.expect("no connection to the provider");
    // Once connected, the source reports it: the events are written by then.
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events = manager.peek_events(10_000).await.unwrap();
        if events.iter().any(|e| e.code == "source.connected") {
            break events;
        }
        assert!(Instant::now() < deadline, "no source.connected event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(10)).success());
    let logs = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(&err).unwrap();
    assert!(logs.contains("\"level\":\"DEBUG\""), "logging below info is on:\n{logs}");
    assert!(!logs.contains(TOKEN), "the token is in the logs");
    for e in &events {
        assert!(!serde_json::to_string(e).unwrap().contains(TOKEN), "the token is in an event: {e:?}");
    }

    // A configuration file holding the token, on a line that does not parse.
    let config = dir.join("cashtag.toml");
    std::fs::write(&config, format!("[stocks.finnhub]\ntoken = \"{TOKEN}\nws_url = \"{url}\"\n")).unwrap();
    let broken =
        Command::new(BIN).arg("run").arg("--config").arg(&config).env("CASHTAG_LOG", "trace").output().unwrap();
    assert!(!broken.status.success());
    let said = String::from_utf8_lossy(&broken.stdout).to_string() + &String::from_utf8_lossy(&broken.stderr);
    assert!(said.contains("not valid TOML at line"), "{said}");
    assert!(!said.contains(TOKEN), "the token is echoed: {said}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `dead-letters list` shows what a sink refused; `redrive` writes it once the store takes
/// it, says so with an event, and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_redriven_from_the_command_line() {
    use cashtag_core::{Record, Ticker, Trade};
    let prefix = unique("t-stocks-dead");
    let db_name = unique("stocksdead");
    let spool = std::env::temp_dir().join(unique("spool"));
    let ts = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    let trade = Record::Trade(Trade {
        provider: "sim".into(),
        ticker: Ticker::parse("AAPL").unwrap(),
        ts,
        received_at: ts,
        price: 190.5,
        size: 10.0,
        exchange: Some("V".into()),
        trade_id: Some("1".into()),
        conditions: vec![],
        seq: 1,
    });
    let dead = cashtag_sinks::DeadLetters::in_spool(&spool);
    dead.append("mongo", &[cashtag_sinks::Rejected::record(&trade, "MongoDB error 121: failed validation".into())])
        .unwrap();
    let cmd = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("CASHTAG_REDIS_URL", redis_url())
            .env("CASHTAG_REDIS_PREFIX", &prefix)
            .env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &db_name)
            .env("CASHTAG_SINKS_SPOOL_DIR", &spool)
            .output()
            .unwrap()
    };
    let list = cmd(&["dead-letters", "list"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(&trade.key()) && text.contains("error 121"), "{text}");
    assert!(String::from_utf8_lossy(&list.stderr).contains("1 dead letter(s)"));

    let redrive = cmd(&["dead-letters", "redrive", "--sink", "mongo"]);
    let said = String::from_utf8_lossy(&redrive.stdout);
    assert!(redrive.status.success(), "{said} {}", String::from_utf8_lossy(&redrive.stderr));
    assert!(said.contains("1 written"), "{said}");
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    assert_eq!(trades(&client.database(&db_name)).await, 1, "the trade is in MongoDB");
    assert!(dead.list("mongo").unwrap().is_empty());
    let events = cashtag_intake::harness::bus(&prefix, "reader").peek_events(100).await.unwrap();
    assert!(events.iter().any(|e| e.code == "sink.redriven" && e.message.contains("1 written")), "{events:?}");
    let _ = std::fs::remove_dir_all(spool);
}
