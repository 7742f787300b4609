//! `kill -9` of cashtag-stocks under load loses nothing: the simulated market (a
//! deterministic ground truth) runs at 60x, the process is killed twice at random moments
//! and restarted on the same journal, and MongoDB then holds exactly every simulated trade
//! between the first and the last one stored — none missing, none twice — and Kinesis
//! holds each at least once. A second process on the same journal refuses to start.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_core::{Clock, Record};
use cashtag_testkit::{aws_endpoint, free_port, mongo_uri, redis_url, unique};
use chrono::{DateTime, TimeDelta, Utc};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-stocks");
const TICKERS: [&str; 4] = ["AAPL", "MSFT", "NVDA", "SPY"];

struct Run {
    prefix: String,
    db: String,
    stream: String,
    journal: std::path::PathBuf,
    watchlist: std::path::PathBuf,
    spec: String,
}

impl Run {
    /// A process whose stderr goes to `stocks.log` beside the journal (a pipe nobody reads
    /// would stall it once full), shown when the test fails.
    fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log()).unwrap();
        self.command().stderr(log).spawn().unwrap()
    }

    fn log(&self) -> std::path::PathBuf {
        self.journal.with_file_name("stocks.log")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("run")
            .env("CASHTAG_REDIS_URL", redis_url())
            .env("CASHTAG_REDIS_PREFIX", &self.prefix)
            .env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &self.db)
            .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
            .env("CASHTAG_SINKS_KINESIS_MARKET_STREAM", &self.stream)
            .env("CASHTAG_SINKS_KINESIS_POSTS_STREAM", &self.stream)
            .env("CASHTAG_SINKS_SPOOL_DIR", &self.journal)
            .env("CASHTAG_SINKS_BATCH_AGE_MS", "200")
            .env("CASHTAG_WATCHLIST_FILE", &self.watchlist)
            .env("CASHTAG_CLOCK_SPEC", &self.spec)
            .env("CASHTAG_SIM_TRADES_PER_MINUTE", "60")
            .env("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1")
            .env("CASHTAG_HEARTBEAT_TTL_SECS", "3")
            .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("CASHTAG_LOG", "warn")
            .stdout(Stdio::null());
        c
    }
}

async fn stored_trades(db: &mongodb::Database) -> Vec<(String, DateTime<Utc>)> {
    use futures::TryStreamExt;
    let docs: Vec<bson::Document> =
        db.collection::<bson::Document>("trades").find(bson::doc! {}).await.unwrap().try_collect().await.unwrap();
    docs.iter().map(|d| (d.get_str("_id").unwrap().to_string(), d.get_datetime("ts").unwrap().to_chrono())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_a_second_process_is_refused() {
    let kin = cashtag_stores::kinesis::client("us-east-1", &aws_endpoint()).await;
    let stream = unique("kill-market");
    kin.create_stream().stream_name(&stream).shard_count(1).send().await.unwrap();
    let dir = std::env::temp_dir().join(unique("kill"));
    std::fs::create_dir_all(&dir).unwrap();
    let watchlist = dir.join("watchlist.toml");
    let body: String = TICKERS.iter().map(|t| format!("[[company]]\nticker = \"{t}\"\nname = \"{t}\"\n")).collect();
    std::fs::write(&watchlist, body).unwrap();
    // A simulated Tuesday mid-session at 60x: a wall second is a market minute.
    let start: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
    let anchor = Utc::now();
    let spec = format!("{}@60@{}", cashtag_core::time::rfc3339(&start), cashtag_core::time::rfc3339(&anchor));
    let run = Run {
        prefix: unique("t-kill"),
        db: unique("kill"),
        stream: stream.clone(),
        journal: dir.join("journal"),
        watchlist,
        spec: spec.clone(),
    };
    let manager = Bus::open(
        &redis_url(),
        &run.prefix,
        Identity { service: "manager".into(), instance: "m".into() },
        Clock::System,
        1000,
    )
    .unwrap();
    manager
        .publish_control(&ControlState { cmd: ControlCommand::Start, reason: "test".into(), at: start })
        .await
        .unwrap();
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let db = client.database(&run.db);

    // A process's heartbeat after `since` (simulated time, as the process stamps it): it
    // runs, with its journal open.
    let clock = Clock::Simulated(cashtag_core::SimSpec::parse(&spec).unwrap());
    let log = run.log();
    let beat_since = |since: DateTime<Utc>, pred: fn(&cashtag_bus::Heartbeat) -> bool| {
        let manager = manager.clone();
        let log = log.clone();
        async move {
            let found =
                manager.heartbeat_where("stocks", Duration::from_secs(60), |h| h.started_at >= since && pred(h)).await;
            let logged = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String =
                logged.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            assert!(found.is_some(), "no heartbeat of a stocks process started after {since}; its log ends:\n{tail}");
        }
    };
    let spawned_at = clock.now() - TimeDelta::seconds(60);
    let mut child = run.spawn();
    // A second process on the same journal directory is refused, with the holder named.
    beat_since(spawned_at, |_| true).await;
    let second = run.command().stderr(Stdio::piped()).spawn().unwrap().wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("in use by pid"), "{err}");

    // Two kills at random moments of a busy market, each followed by a restart.
    let mut kills = 0;
    for wait_ms in [1_500 + rand_ms(2_000), 1_000 + rand_ms(2_000)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while stored_trades(&db).await.is_empty() {
            assert!(Instant::now() < deadline, "no trades arrived");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
        child = run.spawn();
    }
    // The last restarted process writes again; then it stops with SIGTERM.
    let before = stored_trades(&db).await.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_trades(&db).await.len() <= before {
        assert!(Instant::now() < deadline, "the restarted process never wrote");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(10)).success());
    // Whatever the last process could not write in time is written by the next one: it
    // runs, the market closes, and its sinks are idle with nothing left in the journal.
    let spawned_at = clock.now() - TimeDelta::seconds(60);
    let mut child = run.spawn();
    beat_since(spawned_at, |h| h.info["market_on"] == true).await;
    manager
        .publish_control(&ControlState { cmd: ControlCommand::Stop, reason: "test".into(), at: Utc::now() })
        .await
        .unwrap();
    beat_since(spawned_at, |h| {
        h.info["market_on"] == false
            && h.info["sinks"]
                .as_array()
                .is_some_and(|s| s.iter().all(|x| x["idle"] == true && x["backlog_bytes"] == 0))
    })
    .await;
    assert!(cashtag_testkit::terminate(&mut child, Duration::from_secs(10)).success());

    // The ground truth: every simulated trade between the first and the last stored.
    let stored = stored_trades(&db).await;
    let first = stored.iter().map(|(_, t)| *t).min().unwrap();
    let last = stored.iter().map(|(_, t)| *t).max().unwrap();
    assert!(last - first > TimeDelta::minutes(5), "a few simulated minutes ran: {first} to {last}");
    let sim = cashtag_sim::Sim::new(cashtag_sim::SimParams {
        trades_per_minute: 60.0,
        ..cashtag_sim::SimParams::from(&cashtag_core::config::SimSettings::default())
    });
    let mut expected = HashSet::new();
    for m in cashtag_sim::minute_index(first)..=cashtag_sim::minute_index(last) {
        for t in TICKERS {
            let ticker = cashtag_core::Ticker::parse(t).unwrap();
            for tr in sim.trades(t, m) {
                // MongoDB keeps milliseconds: the last stored trade may be up to 1 ms later.
                if tr.ts >= first && tr.ts < last + TimeDelta::milliseconds(1) {
                    expected.insert(Record::Trade(tr.to_trade(&ticker, tr.ts)).key());
                }
            }
        }
    }
    let stored_keys: HashSet<String> = stored.iter().map(|(k, _)| k.clone()).collect();
    let missing: Vec<&String> = expected.difference(&stored_keys).take(5).collect();
    let extra: Vec<&String> = stored_keys.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty(),
        "{kills} kills: {} of {} trades missing, e.g. {missing:?}",
        expected.len() - stored_keys.intersection(&expected).count(),
        expected.len()
    );
    assert!(extra.is_empty(), "trades that the simulator never made: {extra:?}");
    assert_eq!(stored.len(), expected.len(), "each trade once");

    // Kinesis: every trade at least once (a batch written just before a kill may repeat).
    let mut in_kinesis: HashMap<String, usize> = HashMap::new();
    for r in cashtag_stores::kinesis::read_stream(&kin, &stream).await.unwrap().iter().flatten() {
        let rec: Record = serde_json::from_slice(r.data().as_ref()).unwrap();
        if matches!(rec, Record::Trade(_)) {
            *in_kinesis.entry(rec.key()).or_default() += 1;
        }
    }
    let missing_k = expected.iter().filter(|k| !in_kinesis.contains_key(*k)).count();
    let dups: usize = in_kinesis.values().map(|n| n - 1).sum();
    assert_eq!(missing_k, 0, "trades missing from Kinesis");
    eprintln!(
        "kill test: {kills} kills, {} trades expected, {} in MongoDB, 0 lost; Kinesis {} distinct, {dups} duplicates",
        expected.len(),
        stored.len(),
        in_kinesis.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A pseudo-random number of milliseconds below `n` (kill moments differ between runs).
fn rand_ms(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos % n
}
