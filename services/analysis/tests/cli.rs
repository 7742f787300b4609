//! The command line end to end: `stats` on a CSV equals scipy/statsmodels; `aggregate`,
//! `study` and `export` against the real MongoDB-wire server on a simulated session;
//! `run` keeps the roll-ups current as a (simulated) clock passes, picks up a late post,
//! and stops cleanly on SIGTERM; exit codes an operator can act on.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bson::doc;
use cashtag_core::{Record, collections};
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index};
use cashtag_sinks::Sink;
use cashtag_sinks::mongo::MongoSink;
use cashtag_testkit::{free_port, mongo_uri, redis_url, terminate, unique};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-analysis");

fn base(db: &str) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHTAG_") {
            c.env_remove(k);
        }
    }
    c.env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", db)
        .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(cashtag_testkit::unique("state")))
        .arg("--quiet");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Simulated trades and scored posts of `tickers` for `minutes` from `from`, written by the
/// real MongoDB sink.
async fn load(db: &str, tickers: &[&str], from: DateTime<Utc>, minutes: i64) -> usize {
    let sim = Sim::new(SimParams { seed: 5, trades_per_minute: 2.0, posts_per_minute: 1.0, ..Default::default() });
    let mut recs = sim.records(tickers, minute_index(from)..minute_index(from) + minutes);
    let scorer = Scorer::new();
    for r in &mut recs {
        if let Record::Post(p) = r {
            let t: Vec<&str> = p.tickers.iter().map(|t| t.as_str()).collect();
            p.sentiment = Some(scorer.score_post(&p.text, &t, None));
        }
    }
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let n = recs.len();
    MongoSink::new(&client, db).write(&recs).await.map_err(|e| e.reason).unwrap();
    n
}

async fn count(db: &str, coll: &str, filter: bson::Document) -> u64 {
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    client.database(db).collection::<bson::Document>(coll).count_documents(filter).await.unwrap()
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let t = String::from_utf8_lossy(&out.stdout);
    for c in ["run", "aggregate", "study", "stats", "export"] {
        assert!(t.contains(c), "{t}");
    }
}

#[test]
fn stats_on_a_csv_equal_scipy_and_statsmodels() {
    let fixture: Value = serde_json::from_str(include_str!("../../../crates/stats/parity/reference.json")).unwrap();
    let dir = std::env::temp_dir().join(unique("stats-csv"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut compared = 0;
    for name in ["missing rows n=300", "ties n=60", "x leads y by 2, n=500"] {
        let case = fixture["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
        let mut csv = String::from("t,sentiment,ret\n");
        for (i, (x, y)) in case["x"].as_array().unwrap().iter().zip(case["y"].as_array().unwrap()).enumerate() {
            let cell = |v: &Value| v.as_f64().map_or("NA".to_string(), |f| format!("{f:?}"));
            csv.push_str(&format!("{i},{},{}\n", cell(x), cell(y)));
        }
        let file = dir.join("case.csv");
        std::fs::write(&file, csv).unwrap();
        let lag = case["max_lag"].as_u64().unwrap().to_string();
        let out = base("unused")
            .args([
                "stats",
                "--csv",
                file.to_str().unwrap(),
                "--x",
                "sentiment",
                "--y",
                "ret",
                "--max-lag",
                &lag,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) || a.abs().max(b.abs()) < 1e-300;
        for (key, idx) in [("pearson", 0), ("spearman", 0)] {
            let (r, p) = (ours[key]["r"].as_f64().unwrap(), ours[key]["p"].as_f64().unwrap());
            assert!(close(r, case[key][idx].as_f64().unwrap()), "{name} {key} r {r} vs {}", case[key][0]);
            assert!(close(p, case[key][1].as_f64().unwrap()), "{name} {key} p {p} vs {}", case[key][1]);
            compared += 2;
        }
        for (ours_key, theirs_key) in [("granger_x_to_y", "x_causes_y"), ("granger_y_to_x", "y_causes_x")] {
            let theirs = case[theirs_key].as_array().unwrap();
            assert_eq!(ours[ours_key].as_array().unwrap().len(), theirs.len());
            for (o, t) in ours[ours_key].as_array().unwrap().iter().zip(theirs) {
                assert!(
                    close(o["f"].as_f64().unwrap(), t["f"].as_f64().unwrap()),
                    "{name} {ours_key} lag {}",
                    o["lag"]
                );
                assert!(
                    close(o["p"].as_f64().unwrap(), t["p"].as_f64().unwrap()),
                    "{name} {ours_key} lag {}",
                    o["lag"]
                );
                assert_eq!(o["df_denom"], t["df_denom"]);
                compared += 2;
            }
        }
        let dropped = case["x"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["y"].as_array().unwrap())
            .filter(|(x, y)| x.is_null() || y.is_null())
            .count();
        assert_eq!(ours["dropped"].as_u64().unwrap() as usize, dropped);
    }
    assert!(compared > 50);

    // The human-readable table, and clear errors for bad input.
    let file = dir.join("bad.csv");
    std::fs::write(&file, "a,b\n1,2\n2,3\nthree,4\n4,5\n").unwrap();
    let out = base("unused").args(["stats", "--csv", file.to_str().unwrap(), "--x", "a", "--y", "b"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("row 3 (line 4), column \"a\": \"three\" is not a number"), "{}", text(&out));
    let out = base("unused").args(["stats", "--csv", file.to_str().unwrap(), "--x", "a", "--y", "c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("no column \"c\""));
    std::fs::write(&file, "a,b\n1,2\n2,3.5\n3,4\n4,4.5\n5,7\n").unwrap();
    let out = base("unused")
        .args(["stats", "--csv", file.to_str().unwrap(), "--x", "a", "--y", "b", "--max-lag", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Pearson  r =  0.953821  p = 1.182959e-2"), "{}", text(&out)); // scipy: 0.9538209664765323, 0.011829593
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_study_and_export_a_simulated_session() {
    let db = unique("analysis-cli");
    let open: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let n = load(&db, &["AAPL", "MSFT", "NVDA", "SPY"], open, 390).await;
    assert!(n > 3_000);

    // No roll-ups yet: the study says what to run.
    let out_dir = std::env::temp_dir().join(unique("study"));
    let out = base(&db)
        .args(["study", "--from", "2026-11-24", "--tickers", "AAPL,MSFT,NVDA", "--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("run `cashtag-analysis aggregate --from 2026-11-24"), "{}", text(&out));

    let out = base(&db).args(["aggregate", "--from", "2026-11-24", "--to", "2026-11-24"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let price_minutes = count(&db, collections::PRICE_1M, doc! {}).await;
    assert!(price_minutes > 4 * 300, "{price_minutes} price minutes");
    assert!(text(&out).contains(&format!("{price_minutes} price minutes")), "{}", text(&out));
    // Idempotent through the CLI too.
    let again = base(&db).args(["aggregate", "--from", "2026-11-24", "--to", "2026-11-24"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&out.stdout));

    let out = base(&db)
        .args([
            "study",
            "--from",
            "2026-11-24",
            "--tickers",
            "AAPL,MSFT,NVDA",
            "--interval",
            "5m",
            "--max-lag",
            "4",
            "--granger-lags",
            "2",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(["Yes", "No", "Inconclusive"].iter().any(|a| stdout.starts_with(a)), "{stdout}");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["market_proxy"], "SPY");
    let tickers = results["tickers"].as_array().unwrap();
    assert_eq!(tickers.len(), 3);
    for t in tickers {
        assert_eq!(t["intervals"], 77, "a regular session has 78 five-minute intervals, the first without a return");
        assert!(t["excluded"].is_null(), "tested: {t}");
        assert_eq!(t["cross_correlation"].as_array().unwrap().len(), 9);
        assert_eq!(t["granger_sentiment_to_returns"].as_array().unwrap().len(), 2);
        assert!(t["primary_q"].as_f64().is_some());
    }
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 6, "sentiment/price per ticker, correlation by lag, heatmap, CAR");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("| AAPL | 77 |"), "{md}");
    assert!(!md.contains("**Warning:**"), "SPY has data: no fallback");

    // One watchlist flag, said at the start; a market proxy without data is a warning
    // (first in the report); with no ticker testable the answer is exit 4, not "No".
    let wl = out_dir.join("watchlist.toml");
    std::fs::write(
        &wl,
        "[[company]]\nticker = \"AAPL\"\nname = \"Apple\"\n[[company]]\nticker = \"MSFT\"\nname = \"Microsoft\"\n",
    )
    .unwrap();
    let study_dir = out_dir.join("flagged");
    let out = base(&db)
        .args(["study", "--from", "2026-11-24", "--interval", "5m", "--granger-lags", "2", "--market", "QQQ"])
        .args(["--watchlist", wl.to_str().unwrap(), "--out", study_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("watchlist: {} (2 tickers)", wl.display())), "{err}");
    assert!(err.contains("warning: The market proxy QQQ has no data"), "{err}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(study_dir.join("results.json")).unwrap()).unwrap();
    let studied: Vec<&str> =
        results["tickers"].as_array().unwrap().iter().map(|t| t["ticker"].as_str().unwrap()).collect();
    assert_eq!(studied, ["AAPL", "MSFT"]);
    let md = std::fs::read_to_string(study_dir.join("report.md")).unwrap();
    assert!(md.find("**Warning:** The market proxy QQQ").unwrap() < md.find("| ticker |").unwrap(), "{md}");
    let out = base(&db)
        .args(["study", "--from", "2026-11-24", "--tickers", "AAPL,MSFT,NVDA", "--min-posts", "100000"])
        .args(["--out", study_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("Not computable: no ticker has enough data"), "{}", text(&out));
    let out = base(&db).args(["study", "--from", "2026-11-24", "--out", study_dir.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("watchlist: the built-in list ("), "{}", text(&out));
    let out = base(&db).args(["study", "--from", "2026-11-24", "--interval", "7x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("not like 5m"));

    // Export: CSV of a roll-up feeds `stats`; Parquet of the posts reads back.
    let csv = out_dir.join("price.csv");
    let out = base(&db)
        .args([
            "export",
            "--collection",
            "price_1m",
            "--from",
            "2026-11-24",
            "--to",
            "2026-11-24",
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let body = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(body.lines().count() as u64, price_minutes + 1);
    assert!(
        body.lines().next().unwrap().starts_with("_id,ticker,minute,open,high,low,close,volume,trades"),
        "{}",
        body.lines().next().unwrap()
    );
    let out =
        base(&db).args(["stats", "--csv", csv.to_str().unwrap(), "--x", "trades", "--y", "volume"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("{price_minutes} complete rows")));

    let pq = out_dir.join("posts.parquet");
    let out = base(&db)
        .args(["export", "--collection", "posts", "--format", "parquet", "--out", pq.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let posts = count(&db, collections::POSTS, doc! {}).await;
    read_parquet_back(&pq, posts);
    let out = base(&db)
        .args(["export", "--collection", "mystery", "--from", "2026-11-24", "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("--time-field"));

    let _ = std::fs::remove_dir_all(&out_dir);
    mongodb::Client::with_uri_str(mongo_uri()).await.unwrap().database(&db).drop().await.unwrap();
}

fn read_parquet_back(path: &Path, rows: u64) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows() as u64, rows);
    let schema = meta.file_metadata().schema_descr();
    let names: Vec<String> = schema.columns().iter().map(|c| c.name().to_string()).collect();
    for want in
        ["_id", "created_at", "text", "author.id", "tickers", "sentiment.finance.score", "sentiment.finance.label"]
    {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let score = schema.columns().iter().find(|c| c.name() == "sentiment.finance.score").unwrap();
    assert_eq!(score.physical_type(), parquet::basic::Type::DOUBLE);
    let mut seen = 0;
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let s = row
            .get_column_iter()
            .find(|(n, _)| n.as_str() == "sentiment.finance.score")
            .map(|(_, f)| f.to_string())
            .unwrap();
        let v: f64 = s.parse().unwrap();
        assert!((-1.0..=1.0).contains(&v));
        seen += 1;
    }
    assert_eq!(seen, rows);
}

/// `run` on `db`, its bus under `prefix`, on a simulated clock from `start` at 30x (a
/// minute every two seconds).
fn run_from(db: &str, prefix: &str, start: DateTime<Utc>) -> Command {
    let anchor = cashtag_core::time::rfc3339(&Utc::now());
    let mut c = base(db);
    c.arg("run")
        .env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", prefix)
        .env("CASHTAG_CLOCK_SPEC", format!("{}@30@{anchor}", cashtag_core::time::rfc3339(&start)))
        .env("CASHTAG_ANALYSIS_DELAY_SECS", "5")
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_rollups_current_and_picks_up_late_posts() {
    let db = unique("analysis-run");
    let prefix = unique("t-analysis");
    let start: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
    load(&db, &["AAPL", "MSFT"], start - TimeDelta::minutes(10), 12).await;
    let mut child = run_from(&db, &prefix, start).spawn().unwrap();
    let wait_for =
        |what: &'static str,
         f: Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send>| async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !f().await {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
    let d = db.clone();
    wait_for(
        "the first pass",
        Box::new(move || {
            let d = d.clone();
            Box::pin(async move { count(&d, collections::PRICE_1M, doc! {"ticker": "AAPL"}).await >= 10 })
        }),
    )
    .await;
    // A post that arrives late for 14:58.
    let late_minute: DateTime<Utc> = "2026-11-24T14:58:00Z".parse().unwrap();
    let id = "AAPL:2026-11-24T14:58Z";
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let sent = client.database(&db).collection::<bson::Document>(collections::SENTIMENT_1M);
    let before = sent.find_one(doc! {"_id": id}).await.unwrap().map_or(0, |d| d.get_i64("posts").unwrap());
    let mut late =
        Sim::new(SimParams::default()).records(&["AAPL"], minute_index(late_minute) - 30..minute_index(late_minute));
    late.retain(|r| matches!(r, Record::Post(_)));
    let Some(Record::Post(mut post)) = late.into_iter().next() else { panic!("no simulated post") };
    post.id = "late".into();
    post.created_at = late_minute + TimeDelta::seconds(20);
    post.sentiment = Some(Scorer::new().score_post(&post.text, &["AAPL"], None));
    MongoSink::new(&client, &db).write(&[Record::Post(post)]).await.map_err(|e| e.reason).unwrap();
    let s2 = sent.clone();
    wait_for(
        "the late post's minute to update",
        Box::new(move || {
            let s = s2.clone();
            Box::pin(async move {
                s.find_one(doc! {"_id": id}).await.unwrap().is_some_and(|d| d.get_i64("posts").unwrap() == before + 1)
            })
        }),
    )
    .await;
    let status = terminate(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let bus = cashtag_bus::Bus::open(
        &redis_url(),
        &prefix,
        cashtag_bus::Identity { service: "t".into(), instance: "t".into() },
        cashtag_core::Clock::System,
        1000,
    )
    .unwrap();
    let codes: Vec<String> = bus.peek_events(100).await.unwrap().into_iter().map(|e| e.code).collect();
    assert!(codes.contains(&"service.start".to_string()) && codes.contains(&"service.stop".to_string()), "{codes:?}");
    client.database(&db).drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_spark_as_the_rollup_engine_run_writes_no_rollups() {
    let db = unique("analysis-run-spark");
    let start: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
    load(&db, &["AAPL", "MSFT"], start - TimeDelta::minutes(10), 12).await;
    let mut child =
        run_from(&db, &unique("t-analysis"), start).env("CASHTAG_ANALYSIS_ROLLUP_ENGINE", "spark").spawn().unwrap();
    // Four simulated minutes: the embedded engine writes its first pass within one
    // (`run_keeps_rollups_current_and_picks_up_late_posts`).
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(child.try_wait().unwrap().is_none(), "the service stays up");
    assert_eq!(count(&db, collections::PRICE_1M, doc! {}).await, 0, "one writer: Spark's");
    assert_eq!(count(&db, collections::SENTIMENT_1M, doc! {}).await, 0);
    let status = terminate(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let out =
        base(&db).args(["aggregate", "--follow"]).env("CASHTAG_ANALYSIS_ROLLUP_ENGINE", "flink").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("analysis.rollup_engine"), "{}", text(&out));
}

#[test]
fn bad_configuration_exits_2() {
    let out = base("x").args(["aggregate", "--follow"]).env("CASHTAG_ANALYSIS_TRAILING_MINUTES", "0").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("analysis.trailing_minutes"));
    let out = base("x").args(["aggregate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--from"));
}
