//! The Spark roll-up job (`spark/`, PySpark on `local[2]`, its own `cashtag-kinesis`
//! source) against the embedded roll-up: a simulated session goes through the suite's
//! Kinesis sink into the emulator's streams and through the MongoDB sink into MongoDB;
//! `cashtag-analysis aggregate` rolls up MongoDB; the Spark job rolls up the streams into
//! a second database; the two are equal document for document. Run again from its
//! checkpoint, the job changes nothing; after the posts stream is resharded (2 → 4 shards)
//! and more records and some too late for the watermark arrive, a run from the checkpoint
//! reads every record once (the parents to their end, then the children), counts the late
//! ones, and is again equal to the embedded roll-up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use cashtag_core::{Record, collections};
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index};
use cashtag_sinks::Sink;
use cashtag_sinks::kinesis::KinesisSink;
use cashtag_sinks::mongo::MongoSink;
use cashtag_testkit::{aws_endpoint, mongo_uri, unique, venv, workspace_root};
use chrono::{DateTime, DurationRound, Utc};
use futures::TryStreamExt;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-analysis");

async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client.create_stream().stream_name(name).shard_count(shards).send().await.unwrap();
    for _ in 0..100 {
        let d = client.describe_stream_summary().stream_name(name).send().await.unwrap();
        if d.stream_description_summary().unwrap().stream_status().as_str() == "ACTIVE" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} did not become active");
}

/// The job over the streams, everything they hold, into `database` (and the raw records
/// as Parquet under `parquet`).
fn spark_job(
    posts: &str,
    market: &str,
    database: &str,
    checkpoint: &std::path::Path,
    parquet: &std::path::Path,
) -> String {
    let started = Instant::now();
    let out = Command::new(venv().join("bin/python"))
        .args(["-m", "cashtag_spark", "--available-now", "--master", "local[2]"])
        .arg("--parquet")
        .arg(parquet)
        .args(["--posts-stream", posts, "--market-stream", market])
        .args(["--kinesis-endpoint", &aws_endpoint(), "--mongo-uri", &mongo_uri(), "--database", database])
        .arg("--checkpoint")
        .arg(checkpoint)
        .current_dir(workspace_root().join("spark"))
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("spark job: {:.1} s\n{stdout}", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "the Spark job failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The records each query read since the job started and the rows it dropped as too late
/// (the last progress line of each query).
fn read_counts(progress: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in progress.lines().filter(|l| l.contains("\"query\"")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        out.insert(
            v["query"].as_str().unwrap().to_string(),
            (v["input_rows_total"].as_u64().unwrap(), v["late_rows_total"].as_u64().unwrap()),
        );
    }
    out
}

fn scored(mut records: Vec<Record>) -> Vec<Record> {
    let scorer = Scorer::new();
    for r in &mut records {
        if let Record::Post(p) = r {
            let t: Vec<&str> = p.tickers.iter().map(|t| t.as_str()).collect();
            p.sentiment = Some(scorer.score_post(&p.text, &t, None));
        }
    }
    records
}

fn posts_in(records: &[Record]) -> u64 {
    records.iter().filter(|r| matches!(r, Record::Post(_))).count() as u64
}

async fn documents(db: &mongodb::Database, coll: &str) -> BTreeMap<String, Document> {
    let mut c = db.collection::<Document>(coll).find(doc! {}).await.unwrap();
    let mut out = BTreeMap::new();
    while let Some(d) = c.try_next().await.unwrap() {
        out.insert(d.get_str("_id").unwrap().to_string(), d);
    }
    out
}

/// Every field equal: the same keys, types and values (doubles within 1e-9 relative).
fn compare(coll: &str, embedded: &BTreeMap<String, Document>, spark: &BTreeMap<String, Document>) -> f64 {
    assert_eq!(embedded.keys().collect::<Vec<_>>(), spark.keys().collect::<Vec<_>>(), "{coll}: the same minutes");
    let mut worst = 0.0f64;
    for (id, e) in embedded {
        let s = &spark[id];
        let keys = |d: &Document| d.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(e), keys(s), "{coll} {id}: the same fields in the same order");
        for (k, v) in e {
            match (v, s.get(k).unwrap()) {
                (Bson::Double(a), Bson::Double(b)) => {
                    let d = (a - b).abs() / (1.0 + a.abs());
                    worst = worst.max(d);
                    assert!(d <= 1e-9, "{coll} {id} {k}: embedded {a} vs spark {b}");
                }
                (a, b) => assert_eq!(a, b, "{coll} {id} {k}"),
            }
        }
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_rolls_up_the_streams_into_the_documents_the_embedded_rollup_writes() {
    let (embedded_db, spark_db) = (unique("rollup-embedded"), unique("rollup-spark"));
    let (posts, market) = (unique("spark-posts"), unique("spark-market"));
    let open: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let sim = Sim::new(SimParams { seed: 37, trades_per_minute: 3.0, posts_per_minute: 2.0, ..Default::default() });
    let tickers = ["AAPL", "MSFT", "NVDA", "SPY"];
    let records = scored(sim.records(&tickers, minute_index(open)..minute_index(open) + 90));
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    MongoSink::new(&client, &embedded_db).write(&records).await.map_err(|e| e.reason).unwrap();
    let kinesis = cashtag_stores::kinesis::client("us-east-1", &aws_endpoint()).await;
    create_stream(&kinesis, &posts, 2).await;
    create_stream(&kinesis, &market, 2).await;
    let mut sink = KinesisSink::new(kinesis.clone(), &posts, &market);
    for chunk in records.chunks(400) {
        sink.write(chunk).await.map_err(|e| e.reason).unwrap();
    }
    // A few records twice, as an at-least-once delivery may hand them: counted once.
    sink.write(&records[..50]).await.map_err(|e| e.reason).unwrap();

    let aggregate = || {
        let out = Command::new(BIN)
            .env("CASHTAG_MONGO_URI", mongo_uri())
            .env("CASHTAG_MONGO_DATABASE", &embedded_db)
            .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(unique("state")))
            .args(["--quiet", "aggregate", "--from", "2026-11-24", "--to", "2026-11-24"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    aggregate();

    let checkpoint: PathBuf = tempfile::tempdir().unwrap().keep();
    let parquet = checkpoint.join("raw");
    let progress = spark_job(&posts, &market, &spark_db, &checkpoint, &parquet);
    let read = read_counts(&progress);
    let n = records.len() as u64;
    let (p_all, p_dup) = (posts_in(&records), posts_in(&records[..50]));
    assert_eq!(read["sentiment_1m"], (p_all + p_dup, 0), "every post record read once, duplicates included");
    assert_eq!(read["price_1m"], (n - p_all + 50 - p_dup, 0), "every market record read once");
    let (e, s) = (client.database(&embedded_db), client.database(&spark_db));
    let equal = |what: &'static str| {
        let (e, s) = (e.clone(), s.clone());
        async move {
            let mut figures = Vec::new();
            for coll in [collections::SENTIMENT_1M, collections::PRICE_1M] {
                let (a, b) = (documents(&e, coll).await, documents(&s, coll).await);
                assert!(a.len() > 200, "{coll}: {} minutes", a.len());
                let worst = compare(coll, &a, &b);
                figures.push(format!("{what}: {coll}: {} documents equal, largest difference {worst:.1e}", a.len()));
            }
            println!("{}", figures.join("\n"));
        }
    };
    equal("first run").await;
    // The raw records as they came, partitioned by New York date and ticker.
    let rows = |kind: &str| -> u64 {
        let out = Command::new(venv().join("bin/python"))
            .args([
                "-c",
                "import sys, pyarrow.dataset as ds; print(ds.dataset(sys.argv[1], partitioning='hive').count_rows())",
            ])
            .arg(parquet.join(kind))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    assert_eq!(rows("raw_posts"), p_all + p_dup, "every post record kept as it came");
    assert_eq!(rows("raw_market"), n - p_all + 50 - p_dup);
    assert!(parquet.join("raw_market/date=2026-11-24/ticker=AAPL").is_dir());

    // From its checkpoint, with nothing new in the streams: nothing changes.
    let before = (documents(&s, collections::SENTIMENT_1M).await, documents(&s, collections::PRICE_1M).await);
    spark_job(&posts, &market, &spark_db, &checkpoint, &parquet);
    let after = (documents(&s, collections::SENTIMENT_1M).await, documents(&s, collections::PRICE_1M).await);
    assert!(before == after, "a run from the checkpoint changed the roll-ups");

    // The posts stream is resharded; 30 more minutes arrive, and five posts from an hour
    // ago — later than the 2-minute watermark (they go to Kinesis only: the embedded
    // roll-up, which recomputes from MongoDB, would take them).
    kinesis
        .update_shard_count()
        .stream_name(&posts)
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    let more = scored(sim.records(&tickers, minute_index(open) + 90..minute_index(open) + 120));
    MongoSink::new(&client, &embedded_db).write(&more).await.map_err(|e| e.reason).unwrap();
    for chunk in more.chunks(400) {
        sink.write(chunk).await.map_err(|e| e.reason).unwrap();
    }
    let mut late: Vec<Record> = records.iter().filter(|r| matches!(r, Record::Post(_))).take(5).cloned().collect();
    for (i, r) in late.iter_mut().enumerate() {
        if let Record::Post(p) = r {
            p.id = format!("late-{i}");
        }
    }
    sink.write(&late).await.map_err(|e| e.reason).unwrap();
    aggregate();
    let progress = spark_job(&posts, &market, &spark_db, &checkpoint, &parquet);
    let read = read_counts(&progress);
    // Late: a post whose minute ended at or before the watermark the first run left
    // (its last minute's end minus 2 minutes) — the five, and any of the new posts stamped
    // that early. Counted per ticker (a window is per ticker); never written over a minute.
    let last_minute = before.0.values().map(|d| d.get_datetime("minute").unwrap().to_chrono()).max().unwrap();
    let mark = last_minute + chrono::TimeDelta::minutes(1) - chrono::TimeDelta::minutes(2);
    let mut touched = std::collections::BTreeSet::new();
    for r in more.iter().chain(&late) {
        if let Record::Post(p) = r {
            let minute = p.created_at.duration_trunc(chrono::TimeDelta::minutes(1)).unwrap();
            if minute + chrono::TimeDelta::minutes(1) <= mark {
                for t in &p.tickers {
                    touched.insert(format!("{t}:{}", minute.format("%Y-%m-%dT%H:%MZ")));
                }
            }
        }
    }
    let late_rows: u64 = more
        .iter()
        .chain(&late)
        .filter_map(|r| match r {
            Record::Post(p) => Some(p),
            _ => None,
        })
        .filter(|p| {
            p.created_at.duration_trunc(chrono::TimeDelta::minutes(1)).unwrap() + chrono::TimeDelta::minutes(1) <= mark
        })
        .map(|p| p.tickers.len() as u64)
        .sum();
    assert!(late_rows >= 5);
    assert_eq!(
        read["sentiment_1m"],
        (posts_in(&more) + 5, late_rows),
        "the new posts read once; the late ones counted"
    );
    assert_eq!(read["price_1m"].0, more.len() as u64 - posts_in(&more));
    let spark_after = documents(&s, collections::SENTIMENT_1M).await;
    for id in &touched {
        assert_eq!(spark_after.get(id), before.0.get(id), "{id}: a late record does not overwrite its minute");
    }
    let mut embedded: BTreeMap<String, Document> = documents(&e, collections::SENTIMENT_1M).await;
    let mut spark = spark_after.clone();
    embedded.retain(|id, _| !touched.contains(id));
    spark.retain(|id, _| !touched.contains(id));
    let worst = compare(collections::SENTIMENT_1M, &embedded, &spark);
    let prices = compare(
        collections::PRICE_1M,
        &documents(&e, collections::PRICE_1M).await,
        &documents(&s, collections::PRICE_1M).await,
    );
    println!(
        "after resharding and a restart: {} sentiment minutes equal (largest difference {worst:.1e}), {} left to the embedded repair ({late_rows} late rows), price minutes equal (largest difference {prices:.1e})",
        embedded.len(),
        touched.len()
    );
    let _ = std::fs::remove_dir_all(&checkpoint);
}
