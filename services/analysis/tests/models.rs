//! The model commands end to end against the real MongoDB-wire server and S3 emulator:
//! `train` on planted roll-ups publishes and promotes, a no-effect model is uploaded but
//! not promoted, `models list|show|promote`, a corrupt model file refused with its exit
//! code, `backtest` and `evaluate` write their reports and their numbers are the ones an
//! independent computation gives.

use std::process::{Command, Output};

use bson::{Document, doc};
use cashtag_calendar::Calendar;
use cashtag_core::collections;
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index, minute_start};
use cashtag_testkit::{aws_endpoint, mongo_uri, unique};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-analysis");

struct Env {
    db: String,
    bucket: String,
    reports: std::path::PathBuf,
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("CASHTAG_") {
                c.env_remove(k);
            }
        }
        c.env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &self.db)
            .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
            .env("CASHTAG_MODELS_BUCKET", &self.bucket)
            .env("CASHTAG_MODELS_S3_TIMEOUT_SECS", "10")
            .env("CASHTAG_REDIS_URL", "redis://127.0.0.1:1")
            .env("CASHTAG_ANALYSIS_REPORTS_DIR", &self.reports)
            .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(unique("state")))
            .arg("--quiet")
            .args(args);
        let out = c.output().unwrap();
        println!(
            "$ cashtag-analysis {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Roll-up documents as `aggregate` writes them, for simulated tickers (planted effect
/// for T*, none for N*) over the sessions of the range.
async fn rollups(db: &mongodb::Database, from: &str, to: &str) {
    let planted = Sim::new(SimParams { seed: 21, strength: 1.5, posts_per_minute: 1.5, ..Default::default() });
    let none = Sim::new(SimParams { seed: 22, strength: 0.0, posts_per_minute: 1.5, ..Default::default() });
    let scorer = Scorer::new();
    let (mut sent, mut price) = (vec![], vec![]);
    for s in Calendar::nyse().sessions(from.parse().unwrap(), to.parse().unwrap()) {
        for (sim, t) in [
            (&planted, "TA"),
            (&planted, "TB"),
            (&planted, "TC"),
            (&planted, "TD"),
            (&planted, "SPY"),
            (&none, "NA"),
            (&none, "NB"),
        ] {
            for m in minute_index(s.open - chrono::TimeDelta::minutes(40))..minute_index(s.close) {
                let minute = bson::DateTime::from_chrono(minute_start(m));
                let id = format!("{t}:{}", minute_start(m).format("%Y-%m-%dT%H:%MZ"));
                if m >= minute_index(s.open) {
                    price.push(doc! {"_id": &id, "ticker": t, "minute": minute, "close": sim.price(t, m)});
                }
                let posts = sim.posts(t, m, &[]);
                if !posts.is_empty() {
                    let scores: Vec<f64> = posts.iter().map(|p| scorer.finance(&p.text, &[t]).score).collect();
                    sent.push(doc! {
                        "_id": &id, "ticker": t, "minute": minute, "posts": posts.len() as i64, "authors": posts.len() as i64,
                        "finance_sum": scores.iter().sum::<f64>(), "vader_sum": 0.0,
                        "bullish": scores.iter().filter(|s| **s > 0.2).count() as i64,
                        "bearish": scores.iter().filter(|s| **s < -0.2).count() as i64,
                    });
                }
            }
        }
    }
    for (coll, docs) in [(collections::SENTIMENT_1M, sent), (collections::PRICE_1M, price)] {
        for chunk in docs.chunks(5_000) {
            db.collection::<Document>(coll).insert_many(chunk.to_vec()).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_publish_promote_backtest_and_evaluate() {
    let env = Env {
        db: unique("models-cli"),
        bucket: unique("models-cli"),
        reports: std::env::temp_dir().join(unique("reports")),
    };
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let db = client.database(&env.db);
    rollups(&db, "2026-11-02", "2026-11-13").await;
    let s3 = cashtag_stores::s3::client("us-east-1", &aws_endpoint()).await;
    s3.create_bucket().bucket(&env.bucket).send().await.unwrap();

    // The planted tickers: promoted.
    let out = env.ok(&[
        "train",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-13",
        "--tickers",
        "TA,TB,TC,TD",
        "--name",
        "planted",
    ]);
    assert!(out.contains("verdict: beats every baseline"), "{out}");
    assert!(out.contains("promoted: models/planted/latest.json"), "{out}");
    // The no-effect tickers: uploaded, not promoted, and the report says why.
    let out =
        env.ok(&["train", "--from", "2026-11-02", "--to", "2026-11-13", "--tickers", "NA,NB", "--name", "planted"]);
    assert!(out.contains("does not beat the baselines") && out.contains("not promoted"), "{out}");
    let list: Value = serde_json::from_str(&env.ok(&["models", "list", "--name", "planted", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|l| l["latest"] == true).count(), 1);
    assert_eq!(list[0]["latest"], true, "the first (planted) version is the promoted one");
    let (good, weak) = (list[0]["version"].as_str().unwrap(), list[1]["version"].as_str().unwrap());

    // show / promote.
    let shown: Value = serde_json::from_str(&env.ok(&["models", "show", "--name", "planted"])).unwrap();
    assert_eq!(shown["version"], good);
    assert_eq!(shown["schema"], "cashtag.model");
    assert_eq!(shown["features"].as_array().unwrap().len(), 7);
    env.ok(&["models", "promote", weak, "--name", "planted"]);
    let shown: Value = serde_json::from_str(&env.ok(&["models", "show", "latest", "--name", "planted"])).unwrap();
    assert_eq!(shown["version"], weak);
    let missing = env.cmd(&["models", "promote", "19990101T000000.000Z", "--name", "planted"]);
    assert_eq!(missing.status.code(), Some(4), "no such version");

    // A model file replaced behind the pointer: refused, exit 7.
    s3.put_object()
        .bucket(&env.bucket)
        .key(format!("models/planted/{weak}/model.json"))
        .body(br#"{"schema":"cashtag.model","schema_version":99}"#.to_vec().into())
        .send()
        .await
        .unwrap();
    let refused = env.cmd(&["models", "show", "--name", "planted"]);
    assert_eq!(refused.status.code(), Some(7), "{}", String::from_utf8_lossy(&refused.stderr));

    // The backtest over history: planted makes money after costs, and says so first.
    let dir = env.reports.join("bt");
    let out = env.ok(&[
        "backtest",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-13",
        "--tickers",
        "TA,TB,TC,TD",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.starts_with("Yes"), "{out}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.lines().next().unwrap().starts_with("Yes"));
    assert!(std::fs::read_to_string(dir.join("report.html")).unwrap().contains("<svg"));
    let results: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert!(results["record"]["pnl"].as_f64().unwrap() > 0.0);

    // evaluate: the track record of stored predictions, checked against a direct count.
    let preds = db.collection::<Document>(collections::PREDICTIONS);
    let base: chrono::DateTime<chrono::Utc> = "2026-11-16T15:10:00Z".parse().unwrap();
    let mut hits = 0;
    let mut pnl = 0.0;
    for i in 0..40i64 {
        let made = base + chrono::TimeDelta::minutes(20 * (i / 2));
        let p_up = 0.3 + 0.01 * i as f64;
        let ret = if i % 3 == 0 { -0.001 } else { 0.002 } * if i % 2 == 0 { 1.0 } else { -1.0 };
        let pos = cashtag_models::predictor::position(p_up, 0.02);
        let net = cashtag_models::predictor::net_pnl(pos, ret, 1.0);
        hits += usize::from((p_up > 0.5) == (ret > 0.0));
        pnl += net;
        preds
            .insert_one(doc! {
                "_id": format!("planted:v:{}:{i}", if i % 2 == 0 { "TA" } else { "TB" }),
                "model": "planted", "version": "v", "ticker": if i % 2 == 0 { "TA" } else { "TB" },
                "made_at": bson::DateTime::from_chrono(made), "target_at": bson::DateTime::from_chrono(made + chrono::TimeDelta::minutes(20)),
                "p_up": p_up, "position": pos, "last_move": 0.001, "reference_price": 100.0,
                "outcome": {"log_return": ret, "pnl": net, "hit": (p_up > 0.5) == (ret > 0.0)},
            })
            .await
            .unwrap();
    }
    preds
        .insert_one(doc! {"_id": "planted:v:TA:late", "model": "planted", "ticker": "TA", "made_at": bson::DateTime::from_chrono(base), "p_up": 0.9, "outcome": {"unresolved": "no trade"}})
        .await
        .unwrap();
    let dir = env.reports.join("ev");
    let r: Value = serde_json::from_str(&env.ok(&[
        "evaluate",
        "--from",
        "2026-11-16",
        "--to",
        "2026-11-16",
        "--model",
        "planted",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(r["n"], 40);
    assert_eq!(r["unresolved"], 1);
    assert!((r["hit_rate"].as_f64().unwrap() - hits as f64 / 40.0).abs() < 1e-12);
    // P&L: per tick, the mean over the tick's two predictions; summed.
    assert!((r["pnl"].as_f64().unwrap() - pnl / 2.0).abs() < 1e-12, "{} vs {}", r["pnl"], pnl / 2.0);
    assert_eq!(r["sharpe"]["trials"], 2, "two versions of `planted` were tried");
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("## Calibration"));
}
