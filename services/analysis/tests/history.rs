//! History end to end, through the commands users run: a generated two-year daily archive
//! of 30 tickers in the research layout (`tweets/<TICKER>/<YYYY-MM-DD>`, Yahoo Finance
//! CSV) is imported by `cashtag-twitter import` and `cashtag-stocks import`, rolled up
//! by `aggregate`, studied by `study --interval 1d` and backtested at `--horizon 1d`.
//! The study's numbers and the backtest's buy-and-hold are compared with an independent
//! computation in pandas/scipy (`crates/history/check/daily_study.py`, its output
//! committed as `reference.json`).
//!
//! The same for a sparse archive that looks like real data (rare tickers, listings in
//! mid-window, no market proxy, copies across folders, retweets, other languages) against
//! `sparse_reference.json`, with a model trained and judged on a held-out year.

use std::path::{Path, PathBuf};
use std::process::Command;

use cashtag_sim::archive::{ArchiveSpec, generate, write};
use cashtag_testkit::{aws_endpoint, mongo_uri, redis_url, service_bin, unique};
use serde_json::Value;

struct Env {
    db: String,
    prefix: String,
    state: PathBuf,
}

impl Env {
    fn run(&self, bin: &Path, args: &[&str]) -> String {
        self.run_both(bin, args).0
    }

    /// Runs a command that must succeed; its stdout and stderr.
    fn run_both(&self, bin: &Path, args: &[&str]) -> (String, String) {
        let mut c = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("CASHTAG_") {
                c.env_remove(k);
            }
        }
        let started = std::time::Instant::now();
        let out = c
            .env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &self.db)
            .env("CASHTAG_REDIS_URL", redis_url())
            .env("CASHTAG_REDIS_PREFIX", &self.prefix)
            .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
            .env("CASHTAG_FLAGS_KINESIS_WRITE", "false")
            .env("CASHTAG_SINKS_SPOOL_DIR", &self.state)
            .env("CASHTAG_ANALYSIS_REPORTS_DIR", &self.state)
            .env("CASHTAG_MODELS_BUCKET", unique("hist"))
            .arg("--quiet")
            .args(args)
            .output()
            .unwrap();
        let name = bin.file_name().unwrap().to_string_lossy();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        println!(
            "$ {name} {} ({:.1} s)\n{}{}",
            args.join(" "),
            started.elapsed().as_secs_f64(),
            short(&stdout),
            short(&stderr)
        );
        assert!(out.status.success(), "{name} {args:?} failed: {stderr}");
        (stdout, stderr)
    }
}

fn short(s: &str) -> String {
    if s.len() < 3_000 { s.to_string() } else { format!("{}…\n", &s[..3_000]) }
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: cashtag {a} vs pandas/scipy {b}");
}

#[test]
fn a_two_year_daily_archive_imports_rolls_up_and_studies_as_pandas_computes() {
    let spec = ArchiveSpec::history_test();
    let dir = tempfile::tempdir().unwrap();
    let stats = write(dir.path(), &spec).unwrap();
    let env = Env { db: unique("hist"), prefix: unique("t-hist"), state: dir.path().join("state") };
    let wl = dir.path().join("watchlist.toml");
    let companies: String =
        spec.tickers.iter().map(|t| format!("[[company]]\nticker = \"{t}\"\nname = \"{t} Inc\"\n")).collect();
    std::fs::write(&wl, companies).unwrap();
    let (twitter, stocks, analysis) =
        (service_bin("cashtag-twitter"), service_bin("cashtag-stocks"), service_bin("cashtag-analysis"));
    let tweets = dir.path().join("tweets");
    let prices = dir.path().join("prices");

    let out = env.run(
        &twitter,
        &["import", "--ticker-from-path", "--watchlist", wl.to_str().unwrap(), "--json", tweets.to_str().unwrap()],
    );
    let r: Value = serde_json::from_str(&out).unwrap();
    let t = &r["total"];
    assert_eq!(t["read"], stats.tweets, "every line read");
    assert_eq!(t["rejected"], 0);
    let retweets = t["skipped"].as_u64().unwrap();
    assert!(retweets > 0 && retweets < stats.tweets / 20, "retweets are left out as live: {retweets}");
    assert_eq!(t["stored"].as_u64().unwrap() + retweets, stats.tweets);

    let out = env.run(&stocks, &["import", "--json", prices.to_str().unwrap()]);
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["total"]["stored"], stats.bars);
    assert!(p["total"]["skipped"].as_u64().unwrap() > 0, "null rows are skipped");
    assert!(p["files"].as_array().unwrap().iter().any(|f| f[0].as_str().unwrap().ends_with("BRK-B.csv")));
    // Importing the same files again stores nothing new.
    let again: Value =
        serde_json::from_str(&env.run(&stocks, &["import", "--json", prices.to_str().unwrap()])).unwrap();
    assert_eq!((again["total"]["stored"].as_u64(), again["total"]["duplicates"].as_u64()), (Some(0), Some(stats.bars)));

    let (from, to) = (spec.from.to_string(), spec.to.to_string());
    let before = (spec.from - chrono::TimeDelta::days(2)).to_string();
    let out = env.run(&analysis, &["aggregate", "--from", &before, "--to", &to]);
    assert!(out.contains(&format!("{} session days of daily bars", stats.bars)), "{out}");

    let tickers = spec.tickers.join(",");
    let study_dir = dir.path().join("study");
    let mut args = daily_study(&from, &to, &study_dir);
    args.extend(["--tickers".to_string(), tickers.clone()]);
    let out = env.run(&analysis, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let study: Value = serde_json::from_str(&out).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/history/check/reference.json"))
            .unwrap(),
    )
    .unwrap();
    let results = study["tickers"].as_array().unwrap();
    assert_eq!(results.len(), 30);
    let mut worst = 0.0f64;
    for r in results {
        let name = r["ticker"].as_str().unwrap();
        let want = &reference["tickers"][name];
        assert_eq!(r["intervals"], want["intervals"], "{name}: sessions");
        assert_eq!(r["posts"].as_f64(), want["posts"].as_f64(), "{name}: posts counted before each close");
        assert_eq!(r["observations"], want["observations"], "{name}: Granger rows");
        close(
            r["primary_p"].as_f64().unwrap(),
            want["granger_p"].as_f64().unwrap(),
            1e-6,
            &format!("{name} Granger p"),
        );
        for (k, fields) in [
            ("level", &["r", "p"][..]),
            ("level_spearman", &["r"][..]),
            ("change", &["r", "p"][..]),
            ("volume", &["r"][..]),
        ] {
            assert_eq!(r[k]["n"], want[k]["n"], "{name} {k}: pairs");
            for f in fields {
                let (a, b) = (r[k][f].as_f64().unwrap(), want[k][f].as_f64().unwrap());
                worst = worst.max((a - b).abs());
                close(a, b, 1e-9, &format!("{name} {k}.{f}"));
            }
        }
    }
    close(
        study["pooled_level"]["r"].as_f64().unwrap(),
        reference["pooled_level"]["r"].as_f64().unwrap(),
        1e-9,
        "pooled r",
    );
    assert_eq!(study["pooled_level"]["n"], reference["pooled_level"]["n"]);
    assert_eq!(sorted(&study["significant"]), sorted(&reference["significant"]), "the BH-adjusted findings");
    println!("study: 30 tickers × 4 correlations equal to pandas/scipy; largest difference {worst:.2e}");
    let planted = results.iter().filter(|r| r["level"]["r"].as_f64().unwrap() > 0.0).count();
    assert!(planted >= 25, "the planted lead shows in most tickers: {planted} of 30");
    let md = std::fs::read_to_string(study_dir.join("report.md")).unwrap();
    assert!(md.contains("previous session's close up to"), "the report states the cut-off");

    let bt_dir = dir.path().join("backtest");
    env.run(
        &analysis,
        &[
            "backtest",
            "--from",
            &from,
            "--to",
            &to,
            "--horizon",
            "1d",
            "--tickers",
            &tickers,
            "--retrain-every",
            "1w",
            "--min-train-sessions",
            "60",
            "--out",
            bt_dir.to_str().unwrap(),
        ],
    );
    let bt: Value = serde_json::from_str(&std::fs::read_to_string(bt_dir.join("results.json")).unwrap()).unwrap();
    let cumulative = find(&bt, "cumulative").expect("results.json has the cumulative P&L").as_array().unwrap().clone();
    assert!(cumulative.len() > 300, "{} forecast days", cumulative.len());
    let mut prev = 0.0;
    for c in &cumulative {
        let tick = c[0].as_str().unwrap().replace(".000", "");
        let want = &reference["buy_and_hold"][&tick];
        assert!(want.is_object(), "{tick} is a session the reference has a next-day move for");
        let b = c[2].as_f64().unwrap();
        close(b - prev, want["mean"].as_f64().unwrap(), 1e-9, &format!("buy-and-hold at {tick}"));
        prev = b;
    }
    let first_line = std::fs::read_to_string(bt_dir.join("report.md")).unwrap();
    println!(
        "backtest: {} days, buy-and-hold per day equal to pandas; report:\n{}",
        cumulative.len(),
        first_line.lines().take(3).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_sparse_research_archive_is_studied_and_judged_as_pandas_computes_and_says_what_it_left_out() {
    let spec = ArchiveSpec::sparse_test();
    let dir = tempfile::tempdir().unwrap();
    let stats = write(dir.path(), &spec).unwrap();
    let archive = generate(&spec);
    let env = Env { db: unique("sparse"), prefix: unique("t-sparse"), state: dir.path().join("state") };
    let wl = dir.path().join("watchlist.toml");
    let companies: String =
        spec.tickers.iter().map(|t| format!("[[company]]\nticker = \"{t}\"\nname = \"{t} Inc\"\n")).collect();
    std::fs::write(&wl, companies).unwrap();
    let wl = wl.to_str().unwrap();
    let (twitter, stocks, analysis) =
        (service_bin("cashtag-twitter"), service_bin("cashtag-stocks"), service_bin("cashtag-analysis"));
    let tweets = dir.path().join("tweets");

    // 6. The import says what it left out, by reason; a copy in a second folder is the
    // same post, with both tickers.
    let out =
        env.run(&twitter, &["import", "--ticker-from-path", "--watchlist", wl, "--json", tweets.to_str().unwrap()]);
    let t = serde_json::from_str::<Value>(&out).unwrap()["total"].clone();
    let lines = |f: &dyn Fn(&cashtag_sim::archive::Tweet) -> bool| -> u64 {
        archive.tweets.iter().filter(|t| f(t)).map(|t| t.folders.len() as u64).sum()
    };
    let reposts = lines(&|t| t.retweet);
    let spanish = lines(&|t| !t.retweet && t.lang != "en");
    let kept = archive.tweets.iter().filter(|t| !t.retweet && t.lang == "en").count() as u64;
    let second_copies =
        archive.tweets.iter().filter(|t| !t.retweet && t.lang == "en" && t.folders.len() > 1).count() as u64;
    assert_eq!(t["read"], stats.tweets + stats.copies, "every line of every folder");
    assert_eq!(t["rejected"], 0);
    assert_eq!(t["skipped_by"]["repost"], reposts, "{t}");
    assert_eq!(t["skipped_by"]["other language"], spanish, "{t}");
    assert_eq!(t["stored"], kept, "one post per tweet: {t}");
    assert_eq!(t["merged"].as_u64().unwrap() + t["duplicates"].as_u64().unwrap_or(0), second_copies, "{t}");
    env.run(&stocks, &["import", "--json", dir.path().join("prices").to_str().unwrap()]);
    let (from, to) = (spec.from.to_string(), spec.to.to_string());
    let before = (spec.from - chrono::TimeDelta::days(2)).to_string();
    env.run(&analysis, &["aggregate", "--from", &before, "--to", &to]);

    // 1–5, 8: the study over the watchlist (no --tickers), with the default market proxy
    // SPY, which this archive does not have.
    let study_dir = dir.path().join("study");
    let mut args = vec!["--watchlist".to_string(), wl.to_string()];
    args.extend(daily_study(&from, &to, &study_dir));
    let (out, err) = env.run_both(&analysis, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains(&format!("watchlist: {wl} (24 tickers)")), "{err}");
    assert!(err.contains("SPY") && err.contains("warning"), "the missing proxy is said: {err}");
    let study: Value = serde_json::from_str(&out).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../crates/history/check/sparse_reference.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let results = study["tickers"].as_array().unwrap();
    assert_eq!(results.len(), 24);
    for r in results {
        let name = r["ticker"].as_str().unwrap();
        let want = &reference["tickers"][name];
        assert_eq!(r["intervals"], want["intervals"], "{name}: returns only where prices are (listings)");
        assert_eq!(r["posts"].as_f64(), want["posts"].as_f64(), "{name}: posts (copies count for both tickers)");
        assert_eq!(r["observations"], want["observations"], "{name}: Granger rows with nothing missing");
        assert_eq!(
            r["excluded"].is_null(),
            want["tested"].as_bool().unwrap(),
            "{name}: tested or not: {}",
            r["excluded"]
        );
        if let Some(p) = want["granger_p"].as_f64() {
            close(r["primary_p"].as_f64().unwrap(), p, 1e-6, &format!("{name} Granger p"));
        }
        if let Some(l) = want["level"]["r"].as_f64() {
            close(r["level"]["r"].as_f64().unwrap(), l, 1e-9, &format!("{name} level r"));
        }
        if want["posts"].as_f64().unwrap() <= 20.0 {
            assert!(!r["excluded"].is_null() && r["significant"] == false, "{name}: a rare ticker is never a finding");
        }
    }
    assert_eq!(sorted(&study["significant"]), sorted(&reference["significant"]), "the BH-adjusted findings");
    close(
        study["pooled_level"]["r"].as_f64().unwrap(),
        reference["pooled_level"]["r"].as_f64().unwrap(),
        1e-9,
        "pooled r",
    );
    let md = std::fs::read_to_string(study_dir.join("report.md")).unwrap();
    let head: Vec<&str> = md.lines().filter(|l| !l.is_empty()).take(3).collect();
    println!("study report, first lines:\n{}", head.join("\n"));
    assert!(head[1].starts_with("**Yes, for ") && head[1].contains("Benjamini–Hochberg adjusted q"), "{}", head[1]);
    assert!(head[1].contains("were not tested"), "{}", head[1]);
    assert!(head[2].starts_with("**Warning:** The market proxy SPY"), "{}", head[2]);
    assert!(md.contains("## Not tested"));
    // 8: charts for the tickers with the most evidence, dates with the year, no clock time.
    let html = std::fs::read_to_string(study_dir.join("report.html")).unwrap();
    assert!(html.contains("with the most evidence (the lowest Granger p of those tested"), "the page says which");
    assert!(html.contains(">2025-") && !html.contains("21:00"), "daily dates with their year, no clock time");

    // 4, 7: a 1d model without a proxy: no market feature, and the model file says why.
    let (out, err) = env.run_both(
        &analysis,
        &[
            "--watchlist",
            wl,
            "train",
            "--from",
            &from,
            "--to",
            "2025-10-31",
            "--horizon",
            "1d",
            "--no-publish",
            "--json",
        ],
    );
    let model: Value = serde_json::from_str(&out).unwrap();
    assert!(err.contains("warning: ret_market dropped"), "{err}");
    let features: Vec<&str> =
        model["features"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(!features.contains(&"ret_market") && features.contains(&"sent_level"), "{features:?}");
    let notes = model["notes"].to_string();
    assert!(notes.contains("SPY has no prices") && notes.contains("previous session's close"), "{notes}");

    // 7: held out: fitted on the first year, judged on the second, never retrained.
    let ho_dir = dir.path().join("holdout");
    let (out, err) = env.run_both(
        &analysis,
        &[
            "--watchlist",
            wl,
            "backtest",
            "--horizon",
            "1d",
            "--train-from",
            &from,
            "--train-to",
            "2025-10-31",
            "--test-from",
            "2025-11-03",
            "--test-to",
            &to,
            "--out",
            ho_dir.to_str().unwrap(),
        ],
    );
    assert!(err.contains(&format!("watchlist: {wl} (24 tickers)")), "{err}");
    println!("held-out evaluation, first lines:\n{}", out.lines().take(8).collect::<Vec<_>>().join("\n"));
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("Held-out evaluation, horizon 1d: fitted once on 2024-11-01 to 2025-10-31"),
        "{out}"
    );
    assert!(out.contains("accuracy      mcc      auc"), "{out}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(ho_dir.join("results.json")).unwrap()).unwrap();
    let e = &r["evaluation"];
    assert_eq!(e["blocks"].as_array().unwrap().len(), 1, "one fit");
    let first_test = e["blocks"][0]["sessions"][0].as_u64().unwrap();
    assert_eq!(archive.sessions[first_test as usize].date.to_string(), "2025-11-03");
    let scored =
        e["baselines"].as_array().unwrap().iter().find(|b| b[0] == "last_move").unwrap()[1]["accuracy"].clone();
    let traded =
        r["record"]["baselines"].as_array().unwrap().iter().find(|b| b["name"] == "last_move").unwrap()["hit_rate"]
            .clone();
    assert_eq!(scored, traded, "one last-move baseline");
    assert!(e["model"]["roc_auc"].as_f64().unwrap() > 0.55, "the planted lead holds out of sample: {}", e["model"]);
}

/// `study` of the daily VADER mean from `from` to `to`, as JSON, its report into `out`.
fn daily_study(from: &str, to: &str, out: &Path) -> Vec<String> {
    ["study", "--from", from, "--to", to, "--interval", "1d", "--measure", "vader_mean", "--json", "--out"]
        .map(String::from)
        .into_iter()
        .chain([out.to_string_lossy().into_owned()])
        .collect()
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}
