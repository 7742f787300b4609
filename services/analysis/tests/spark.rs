//! The Spark roll-up job (`spark/`, PySpark on `local[2]`, its own `cashtag-kinesis`
//! source) against the embedded roll-up: a simulated session goes through the suite's
//! Kinesis sink into the emulator's streams and through the MongoDB sink into MongoDB;
//! `cashtag-analysis aggregate` rolls up MongoDB; the Spark job rolls up the streams into
//! a second database; the two are equal document for document. Run again from its
//! checkpoint, the job changes nothing.

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
use chrono::{DateTime, Utc};
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

/// The job over the streams, everything they hold, into `database`.
fn spark_job(posts: &str, market: &str, database: &str, checkpoint: &std::path::Path) -> String {
    let started = Instant::now();
    let out = Command::new(venv().join("bin/python"))
        .args(["-m", "cashtag_spark", "--available-now", "--master", "local[2]"])
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
    let mut records = sim.records(&["AAPL", "MSFT", "NVDA", "SPY"], minute_index(open)..minute_index(open) + 90);
    let scorer = Scorer::new();
    for r in &mut records {
        if let Record::Post(p) = r {
            let t: Vec<&str> = p.tickers.iter().map(|t| t.as_str()).collect();
            p.sentiment = Some(scorer.score_post(&p.text, &t, None));
        }
    }
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

    let out = Command::new(BIN)
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", &embedded_db)
        .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(unique("state")))
        .args(["--quiet", "aggregate", "--from", "2026-11-24", "--to", "2026-11-24"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let checkpoint: PathBuf = tempfile::tempdir().unwrap().keep();
    let progress = spark_job(&posts, &market, &spark_db, &checkpoint);
    assert!(progress.contains("\"late_rows_dropped\": 0"), "{progress}");
    let (e, s) = (client.database(&embedded_db), client.database(&spark_db));
    let mut figures = Vec::new();
    for coll in [collections::SENTIMENT_1M, collections::PRICE_1M] {
        let (a, b) = (documents(&e, coll).await, documents(&s, coll).await);
        assert!(a.len() > 200, "{coll}: {} minutes", a.len());
        let worst = compare(coll, &a, &b);
        figures.push(format!("{coll}: {} documents equal, largest difference {worst:.1e}", a.len()));
    }
    println!("{}", figures.join("\n"));

    // From its checkpoint, with nothing new in the streams: nothing changes.
    let before = (documents(&s, collections::SENTIMENT_1M).await, documents(&s, collections::PRICE_1M).await);
    spark_job(&posts, &market, &spark_db, &checkpoint);
    let after = (documents(&s, collections::SENTIMENT_1M).await, documents(&s, collections::PRICE_1M).await);
    assert!(before == after, "a run from the checkpoint changed the roll-ups");
    let _ = std::fs::remove_dir_all(&checkpoint);
}
