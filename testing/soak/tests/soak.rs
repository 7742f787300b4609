//! The soak: a whole simulated session of manager, stocks, twitter and log at speed, with
//! kills, server restarts, a Kinesis stall and a full disk — then every simulated record
//! must be in MongoDB exactly once and in Kinesis at least once, every event a service
//! logged must be in the log store, and the market must have stayed on the whole session.
//!
//! `cargo test -p cashtag-soak --test soak -- --nocapture` runs the CI version (about four
//! minutes); `scripts/soak` runs a longer one. Set `CASHTAG_TEST_SOAK_REPORT=FILE` to keep
//! the figures as JSON.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cashtag_soak::*;
use cashtag_testkit::fault::Fault;
use chrono::{DateTime, TimeDelta, Utc};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_simulated_day_under_faults_loses_nothing() {
    let cfg = SoakConfig::from_env();
    let bins = build_services(&["manager", "log", "stocks", "twitter"]);
    let t0 = Instant::now();
    let dir = work_dir();
    let mut servers = Servers::start();
    let prefix = cashtag_testkit::unique("soak");
    let db_name = cashtag_testkit::unique("soak");
    let (posts_stream, market_stream) = (cashtag_testkit::unique("posts"), cashtag_testkit::unique("market"));
    let kin_direct = cashtag_stores::kinesis::client("us-east-1", &servers.moto.url()).await;
    create_streams(&kin_direct, &[&posts_stream, &market_stream]).await;
    let watchlist = dir.join("watchlist.toml");
    let body: String = cfg.tickers.iter().map(|t| format!("[[company]]\nticker = \"{t}\"\nname = \"{t}\"\n")).collect();
    std::fs::write(&watchlist, body).unwrap();
    // The stocks journal lives on a small disk that will fill up.
    let stocks_state = dir.join("stocks-state");
    let disk = Tmpfs::mount(&stocks_state, 64 * 1024 * 1024);

    // 09:20 New York on a Tuesday: the manager turns the sources on at 09:25, off at 16:05.
    let start: DateTime<Utc> = "2026-11-24T14:20:00Z".parse().unwrap();
    let spec =
        format!("{}@{}@{}", cashtag_core::time::rfc3339(&start), cfg.speed, cashtag_core::time::rfc3339(&Utc::now()));
    let clock = cashtag_core::Clock::Simulated(cashtag_core::SimSpec::parse(&spec).unwrap());
    let common = |state: &std::path::Path| -> Vec<(String, String)> {
        [
            ("CASHTAG_REDIS_URL", servers.redis.url()),
            ("CASHTAG_REDIS_PREFIX", prefix.clone()),
            ("CASHTAG_MONGO_URI", servers.mongo_uri()),
            ("CASHTAG_MONGO_DATABASE", db_name.clone()),
            ("CASHTAG_AWS_ENDPOINT", servers.aws_endpoint()),
            ("CASHTAG_SINKS_KINESIS_POSTS_STREAM", posts_stream.clone()),
            ("CASHTAG_SINKS_KINESIS_MARKET_STREAM", market_stream.clone()),
            ("CASHTAG_SINKS_SPOOL_DIR", state.display().to_string()),
            ("CASHTAG_SINKS_BATCH_AGE_MS", "300".into()),
            ("CASHTAG_SINKS_RETRY_BUDGET_SECS", "3".into()),
            ("CASHTAG_SINKS_OP_TIMEOUT_MS", "10000".into()),
            ("CASHTAG_WATCHLIST_FILE", watchlist.display().to_string()),
            ("CASHTAG_CLOCK_SPEC", spec.clone()),
            ("CASHTAG_SIM_TRADES_PER_MINUTE", cfg.trades_per_minute.to_string()),
            ("CASHTAG_SIM_POSTS_PER_MINUTE", cfg.posts_per_minute.to_string()),
            ("CASHTAG_LOG_FILES_DIR", String::new()),
            ("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1".into()),
            ("CASHTAG_HEARTBEAT_TTL_SECS", "5".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let mut manager = Proc::new("manager", bins["manager"].clone(), common(&dir.join("manager-state")), &dir);
    let mut log = Proc::new("log", bins["log"].clone(), common(&dir.join("log-state")), &dir);
    let mut stocks = Proc::new("stocks", bins["stocks"].clone(), common(&stocks_state), &dir);
    let mut twitter = Proc::new("twitter", bins["twitter"].clone(), common(&dir.join("twitter-state")), &dir);
    for p in [&mut manager, &mut log, &mut stocks, &mut twitter] {
        p.start();
    }
    let mut report = Report { speed: cfg.speed, ..Default::default() };
    let sim_now = || clock.now();
    let at = |h: u32, m: u32| -> DateTime<Utc> {
        start + TimeDelta::hours(h as i64 - 9) + TimeDelta::minutes(m as i64 - 20)
    };
    let wall_until = |t: DateTime<Utc>| {
        let secs = ((t - sim_now()).num_milliseconds() as f64 / 1000.0 / cfg.speed).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(secs))
    };

    // The schedule, in simulated New York time.
    let kill_restart = |p: &mut Proc| {
        p.kill();
        std::thread::sleep(Duration::from_millis(1200));
        p.start();
    };
    let mut kill_times: Vec<(DateTime<Utc>, &str)> = Vec::new();
    // Spread over the session (09:30–16:00), the twitter kill 50 minutes after stocks'.
    let spacing = 280 / cfg.fetcher_kills.max(1) as i64;
    for k in 0..cfg.fetcher_kills {
        let offset = 40 + spacing * k as i64 + rand_minutes(spacing.min(30));
        kill_times.push((at(9, 30) + TimeDelta::minutes(offset), "stocks"));
        kill_times.push((at(9, 30) + TimeDelta::minutes(offset + 50), "twitter"));
    }
    kill_times.push((at(11, 50), "log"));
    kill_times.push((at(14, 40), "log"));
    let mut faults: Vec<(DateTime<Utc>, String)> = kill_times.iter().map(|(t, p)| (*t, format!("kill {p}"))).collect();
    faults.push((at(10, 40), "restart redis".into()));
    faults.push((at(12, 20), "restart mongo".into()));
    faults.push((at(13, 10), "stall kinesis".into()));
    faults.push((at(14, 10), "fill disk".into()));
    faults.sort();
    let mut kinesis_seen: HashMap<String, usize> = HashMap::new();
    for (when, what) in &faults {
        wall_until(*when).await;
        eprintln!("soak: {} at {}", what, when.format("%H:%M UTC"));
        match what.as_str() {
            "kill stocks" => kill_restart(&mut stocks),
            "kill twitter" => kill_restart(&mut twitter),
            "kill log" => kill_restart(&mut log),
            "restart redis" => {
                servers.redis.kill();
                servers.redis.restart();
                report.server_restarts.push(format!("redis (no persistence) at {}", when.format("%H:%M")));
            }
            "restart mongo" => {
                servers.mongo.stop();
                tokio::time::sleep(Duration::from_secs(2)).await;
                servers.mongo.restart();
                report.server_restarts.push(format!("mongo at {}", when.format("%H:%M")));
            }
            "stall kinesis" => {
                servers.set_kinesis(Fault::Blackhole);
                tokio::time::sleep(cfg.kinesis_stall).await;
                // The emulator restarts (it keeps nothing): read what it holds first.
                read_kinesis(&kin_direct, &posts_stream, &mut kinesis_seen).await;
                read_kinesis(&kin_direct, &market_stream, &mut kinesis_seen).await;
                servers.moto.kill();
                servers.moto.restart();
                create_streams(&kin_direct, &[&posts_stream, &market_stream]).await;
                servers.set_kinesis(Fault::Pass);
                report.stalls.push(format!(
                    "kinesis blackholed {} s at {}",
                    cfg.kinesis_stall.as_secs(),
                    when.format("%H:%M")
                ));
                report.server_restarts.push(format!("s3/kinesis emulator at {}", when.format("%H:%M")));
            }
            "fill disk" => {
                let ballast = disk.fill(0);
                tokio::time::sleep(cfg.disk_full).await;
                std::fs::remove_file(ballast).unwrap();
                report.stalls.push(format!(
                    "stocks journal disk full {} s at {}",
                    cfg.disk_full.as_secs(),
                    when.format("%H:%M")
                ));
            }
            other => unreachable!("{other}"),
        }
    }
    // The close: the manager turns the sources off at 16:05; then the sinks drain.
    wall_until(at(16, 6)).await;
    let client = mongodb::Client::with_uri_str(servers.mongo.url()).await.unwrap();
    let db = client.database(&db_name);
    // Both fetchers' sinks have written everything (their heartbeats say so, three times
    // in a row).
    let watcher = cashtag_bus::Bus::open(
        &servers.redis.url(),
        &prefix,
        cashtag_bus::Identity { service: "soak".into(), instance: "soak".into() },
        cashtag_core::Clock::System,
        1_000,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut idle_in_a_row = 0;
    while idle_in_a_row < 3 {
        let beats = watcher.alive().await.unwrap_or_default();
        let fetchers: Vec<_> = beats.iter().filter(|h| h.service == "stocks" || h.service == "twitter").collect();
        let idle = fetchers.len() == 2
            && fetchers.iter().all(|h| {
                h.info["sinks"]
                    .as_array()
                    .is_some_and(|s| s.iter().all(|x| x["idle"] == true && x["backlog_bytes"] == 0))
            });
        idle_in_a_row = if idle { idle_in_a_row + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "the sinks never caught up: {:?}",
            fetchers.iter().map(|h| &h.info["sinks"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for p in [&mut stocks, &mut twitter] {
        assert!(p.running(), "{} died: see {}", p.name, p.log_path().display());
    }
    // Stop everything cleanly: the log service last, once it has stored every event the
    // others logged (their last ones at their stop) and its own so far.
    for p in [&mut stocks, &mut twitter, &mut manager] {
        assert!(p.stop(), "{} did not stop cleanly", p.name);
    }
    let stored_ids = || async {
        use futures::TryStreamExt;
        let ids: HashSet<String> = db
            .collection::<bson::Document>("events")
            .find(bson::doc! {})
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
            .collect();
        ids
    };
    let logged_so_far: HashSet<String> =
        [&stocks, &twitter, &log, &manager].iter().flat_map(|p| p.logged_events()).map(|(id, _)| id).collect();
    let all_in =
        cashtag_soak::wait_until(Duration::from_secs(60), || async { logged_so_far.is_subset(&stored_ids().await) })
            .await;
    eprintln!("soak: every event logged so far in the log store before its stop: {all_in}");
    assert!(log.stop(), "log did not stop cleanly");
    report.wall_seconds = t0.elapsed().as_secs_f64();
    for p in [&stocks, &twitter, &log, &manager] {
        report.kills.insert(p.name.to_string(), p.kills);
    }

    // MongoDB against the simulator, between the first and the last record stored.
    let trades = mongo_keys(&db, "trades", "ts").await;
    let quotes = mongo_keys(&db, "quotes", "ts").await;
    let posts = mongo_keys(&db, "posts", "created_at").await;
    let span =
        |v: &[(String, DateTime<Utc>)]| (v.iter().map(|x| x.1).min().unwrap(), v.iter().map(|x| x.1).max().unwrap());
    let (from, to) = span(&trades);
    assert!(from < at(9, 40) && to > at(15, 50), "the session ran: {from} to {to}");
    let truth = Truth::compute(&cfg, (from, to), span(&posts));
    let mut lost_any = 0;
    for (kind, want, got) in
        [("trades", &truth.trades, &trades), ("quotes", &truth.quotes, &quotes), ("posts", &truth.posts, &posts)]
    {
        let got_keys: HashSet<String> = got.iter().map(|x| x.0.clone()).collect();
        let lost = want.difference(&got_keys).count();
        let extra = got_keys.difference(want).count();
        report.expected.insert(kind.into(), want.len());
        report.stored.insert(kind.into(), got.len());
        report.lost_mongo.insert(kind.into(), lost);
        report.extra_mongo.insert(kind.into(), extra);
        lost_any += lost + extra;
    }

    // Kinesis: what it held before the emulator restart plus what it holds now.
    let before_restart = kinesis_seen.clone();
    let mut after_restart = HashMap::new();
    read_kinesis(&kin_direct, &posts_stream, &mut after_restart).await;
    read_kinesis(&kin_direct, &market_stream, &mut after_restart).await;
    eprintln!(
        "soak: kinesis held {} keys ({} copies) before the emulator restart, {} keys ({} copies) after, {} in both",
        before_restart.len(),
        before_restart.values().sum::<usize>(),
        after_restart.len(),
        after_restart.values().sum::<usize>(),
        after_restart.keys().filter(|k| before_restart.contains_key(*k)).count()
    );
    for (k, n) in after_restart {
        *kinesis_seen.entry(k).or_default() += n;
    }
    let all: Vec<String> = [("trade", &truth.trades), ("quote", &truth.quotes), ("post", &truth.posts)]
        .iter()
        .flat_map(|(kind, keys)| keys.iter().map(move |k| format!("{kind}/{k}")))
        .collect();
    report.lost_kinesis = all.iter().filter(|k| !kinesis_seen.contains_key(*k)).count();
    report.kinesis_duplicates = all.iter().filter_map(|k| kinesis_seen.get(k)).map(|n| n - 1).sum();
    report.kinesis_duplicated_keys = all.iter().filter(|k| kinesis_seen.get(*k).is_some_and(|n| *n > 1)).count();

    // Every event a service logged reached the log store — but the log service's own last
    // `service.stop`, which no log service was left to store (it waits in its outbox).
    let mut logged: HashSet<String> =
        [&stocks, &twitter, &log, &manager].iter().flat_map(|p| p.logged_events()).map(|(id, _)| id).collect();
    if let Some((last_stop, _)) = log.logged_events().into_iter().rev().find(|(_, code)| code == "service.stop") {
        logged.remove(&last_stop);
    }
    use futures::TryStreamExt;
    let stored: Vec<bson::Document> =
        db.collection::<bson::Document>("events").find(bson::doc! {}).await.unwrap().try_collect().await.unwrap();
    let stored_ids: HashSet<String> = stored.iter().filter_map(|d| d.get_str("_id").ok().map(str::to_string)).collect();
    let missing_events: Vec<&String> = logged.difference(&stored_ids).collect();
    report.events_logged = logged.len();
    report.events_stored = stored_ids.len();
    report.events_lost = missing_events.len();
    let codes = |c: &str| stored.iter().filter(|d| d.get_str("code") == Ok(c)).count();
    report.control_starts = codes("control.start");
    report.control_stops = codes("control.stop");

    let json = serde_json::to_string_pretty(&report).unwrap();
    eprintln!("soak report:\n{json}");
    if let Ok(path) = std::env::var("CASHTAG_TEST_SOAK_REPORT") {
        std::fs::write(path, &json).unwrap();
    }
    assert_eq!(lost_any, 0, "MongoDB must hold every simulated record exactly once");
    assert_eq!(report.lost_kinesis, 0, "Kinesis must hold every simulated record");
    assert!(
        missing_events.is_empty(),
        "{} logged events never reached the log store, e.g. {:?}",
        missing_events.len(),
        missing_events.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!((report.control_starts, report.control_stops), (1, 1), "the market was on for the whole session, once");
    drop(disk);
    let _ = std::fs::remove_dir_all(dir);
}

/// A pseudo-random number of minutes below `n`, so kills land at different moments.
fn rand_minutes(n: i64) -> i64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as i64;
    nanos % n
}
