//! The Spark roll-up job (`spark/`, PySpark on `local[2]`, its own `cashtag-kinesis`
//! source) against the embedded roll-up: a simulated session goes through the suite's
//! Kinesis sink into the emulator's streams and through the MongoDB sink into MongoDB;
//! `cashtag-analysis aggregate` rolls up MongoDB; the Spark job rolls up the streams into
//! a second database; the two are equal document for document. Run again from its
//! checkpoint, the job changes nothing; after the posts stream is resharded (2 → 4 shards)
//! and more records and some too late for the watermark arrive, a run from the checkpoint
//! reads every record once (the parents to their end, then the children), counts the late
//! ones, and is again equal to the embedded roll-up; and after the driver is killed (-9)
//! while it streams and started again from its checkpoint. On a standalone cluster (a
//! master and two workers, separate JVMs on loopback) the output is the same, and both
//! workers' executors ran tasks.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use cashtag_core::{Record, collections};
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index};
use cashtag_sinks::Sink;
use cashtag_sinks::kinesis::KinesisSink;
use cashtag_sinks::mongo::MongoSink;
use cashtag_testkit::{aws_endpoint, mongo_uri, redis_url, unique, venv, workspace_root};
use chrono::{DateTime, DurationRound, Utc};
use futures::TryStreamExt;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-analysis");

/// The job's command: over the streams into `database` (and the raw records as Parquet
/// under `parquet`), from `checkpoint`.
fn job_command(posts: &str, market: &str, database: &str, checkpoint: &Path, parquet: &Path) -> Command {
    let mut c = Command::new(venv().join("bin/python"));
    // Its events into this run's events stream (the prefix is the database's name).
    c.env("CASHTAG_REDIS_URL", redis_url()).env("CASHTAG_REDIS_PREFIX", database);
    c.args(["-m", "cashtag_spark", "--master", "local[2]", "--trigger-secs", "2"])
        .arg("--parquet")
        .arg(parquet)
        .args(["--posts-stream", posts, "--market-stream", market])
        .args(["--kinesis-endpoint", &aws_endpoint(), "--mongo-uri", &mongo_uri(), "--database", database])
        .arg("--checkpoint")
        .arg(checkpoint)
        .current_dir(workspace_root().join("spark"))
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    c
}

/// The job over everything the streams hold, then it stops (`--available-now`).
fn spark_job(posts: &str, market: &str, database: &str, checkpoint: &Path, parquet: &Path) -> String {
    let started = Instant::now();
    let out = job_command(posts, market, database, checkpoint, parquet).arg("--available-now").output().unwrap();
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

const TICKERS: [&str; 4] = ["AAPL", "MSFT", "NVDA", "SPY"];

/// A simulated 90-minute session of [`TICKERS`] from `open`, written by the MongoDB sink
/// into `embedded_db` and by the Kinesis sink into two new streams of two shards.
struct Session {
    records: Vec<Record>,
    sink: KinesisSink<aws_sdk_kinesis::Client>,
    kinesis: aws_sdk_kinesis::Client,
    client: mongodb::Client,
    posts: String,
    market: String,
}

impl Session {
    async fn write(sim: &Sim, open: DateTime<Utc>, embedded_db: &str) -> Session {
        let (posts, market) = (unique("spark-posts"), unique("spark-market"));
        let records = scored(sim.records(&TICKERS, minute_index(open)..minute_index(open) + 90));
        let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
        MongoSink::new(&client, embedded_db).write(&records).await.map_err(|e| e.reason).unwrap();
        let kinesis = cashtag_stores::kinesis::client("us-east-1", &aws_endpoint()).await;
        cashtag_stores::kinesis::create_active(&kinesis, &posts, 2).await.unwrap();
        cashtag_stores::kinesis::create_active(&kinesis, &market, 2).await.unwrap();
        let mut sink = KinesisSink::new(kinesis.clone(), &posts, &market);
        for chunk in records.chunks(400) {
            sink.write(chunk).await.map_err(|e| e.reason).unwrap();
        }
        Session { records, sink, kinesis, client, posts, market }
    }
}

/// `cashtag-analysis aggregate` of one New York day into `embedded_db`.
fn aggregate(embedded_db: &str, day: &str) {
    let out = Command::new(BIN)
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", embedded_db)
        .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(unique("state")))
        .args(["--quiet", "aggregate", "--from", day, "--to", day])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Both collections equal between the embedded and the Spark roll-up, but for the
/// sentiment minutes `except`; the figures in words.
async fn equal_except(
    embedded: &mongodb::Database,
    spark: &mongodb::Database,
    except: &std::collections::BTreeSet<String>,
) -> String {
    let mut figures = Vec::new();
    for coll in [collections::SENTIMENT_1M, collections::PRICE_1M] {
        let (mut a, mut b) = (documents(embedded, coll).await, documents(spark, coll).await);
        a.retain(|id, _| !except.contains(id));
        b.retain(|id, _| !except.contains(id));
        assert!(a.len() > 200, "{coll}: {} minutes", a.len());
        let worst = compare(coll, &a, &b);
        figures.push(format!("{coll}: {} documents equal, largest difference {worst:.1e}", a.len()));
    }
    figures.join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_rolls_up_the_streams_into_the_documents_the_embedded_rollup_writes() {
    let (embedded_db, spark_db) = (unique("rollup-embedded"), unique("rollup-spark"));
    let open: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let sim = Sim::new(SimParams { seed: 37, trades_per_minute: 3.0, posts_per_minute: 2.0, ..Default::default() });
    let Session { records, mut sink, kinesis, client, posts, market } = Session::write(&sim, open, &embedded_db).await;
    let tickers = TICKERS;
    // A few records twice, as an at-least-once delivery may hand them: counted once.
    sink.write(&records[..50]).await.map_err(|e| e.reason).unwrap();
    let aggregate = || aggregate(&embedded_db, "2026-11-24");
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
    println!("first run: {}", equal_except(&e, &s, &Default::default()).await);
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
    // As cashtag events, for the log and cashtagctl: each batch, and the late minutes.
    let bus = cashtag_bus::Bus::open(
        &redis_url(),
        &spark_db,
        cashtag_bus::Identity { service: "t".into(), instance: "t".into() },
        cashtag_core::Clock::System,
        1000,
    )
    .unwrap();
    let events = bus.peek_events(1000).await.unwrap();
    let late_event: Vec<_> = events.iter().filter(|e| e.code == cashtag_core::catalog::SPARK_LATE).collect();
    assert_eq!(late_event.len(), 1, "{:?}", events.iter().map(|e| &e.code).collect::<Vec<_>>());
    assert_eq!(late_event[0].fields["late_rows"], late_rows);
    assert_eq!(late_event[0].service, "spark");
    assert!(
        events.iter().filter(|e| e.code == cashtag_core::catalog::SPARK_BATCH).count() >= 4,
        "two queries, two runs with data"
    );
    let spark_after = documents(&s, collections::SENTIMENT_1M).await;
    for id in &touched {
        assert_eq!(spark_after.get(id), before.0.get(id), "{id}: a late record does not overwrite its minute");
    }
    let figures = equal_except(&e, &s, &touched).await;
    println!(
        "after resharding and a restart: {figures}; {} sentiment minutes left to the embedded repair ({late_rows} late rows)",
        touched.len()
    );

    // The driver killed (-9, with its JVM) while it streams, then started again from the
    // checkpoint: no minute missing, none counted twice.
    let last = scored(sim.records(&tickers, minute_index(open) + 120..minute_index(open) + 150));
    MongoSink::new(&client, &embedded_db).write(&last).await.map_err(|e| e.reason).unwrap();
    for chunk in last.chunks(400) {
        sink.write(chunk).await.map_err(|e| e.reason).unwrap();
    }
    aggregate();
    let mut child = job_command(&posts, &market, &spark_db, &checkpoint, &parquet)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its stdout read to the end on a thread (a pipe nobody reads would stop it).
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap().contains("\"started\"") {}
    // Mid-batch: the first micro-batch takes several seconds on two cores.
    std::thread::sleep(Duration::from_secs(6));
    // The whole process group: the Python driver and the JVM it started.
    let killed = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
    spark_job(&posts, &market, &spark_db, &checkpoint, &parquet);
    println!("after a kill -9 mid-stream and a restart: {}", equal_except(&e, &s, &touched).await);
    let _ = std::fs::remove_dir_all(&checkpoint);
}

/// A Spark standalone cluster on loopback: a master and two one-core workers, each a JVM of
/// its own (the distribution's `spark-class`), stopped with their process groups.
struct Cluster {
    processes: Vec<std::process::Child>,
    master: String,
    work: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let home = venv().join("lib").read_dir().unwrap().next().unwrap().unwrap().path().join("site-packages/pyspark");
        let class = home.join("bin/spark-class");
        let work: PathBuf = tempfile::tempdir().unwrap().keep();
        let (port, ui) = (cashtag_testkit::free_port(), cashtag_testkit::free_port());
        let spawn = |args: Vec<String>, log: &str| {
            Command::new(&class)
                .args(args)
                .env("SPARK_HOME", &home)
                .env("SPARK_LOCAL_IP", "127.0.0.1")
                .env("SPARK_LOG_DIR", &work)
                .process_group(0)
                .stdout(std::fs::File::create(work.join(log)).unwrap())
                .stderr(std::fs::File::create(work.join(format!("{log}.err"))).unwrap())
                .spawn()
                .unwrap()
        };
        let master = format!("spark://127.0.0.1:{port}");
        let mut processes = vec![spawn(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
                .map(String::from)
                .into_iter()
                .chain(["--port".into(), port.to_string(), "--webui-port".into(), ui.to_string()])
                .collect(),
            "master.log",
        )];
        assert!(cashtag_testkit::wait_for_port(port, Duration::from_secs(60)), "the master did not listen");
        for w in ["w1", "w2"] {
            let dir = work.join(w);
            std::fs::create_dir_all(&dir).unwrap();
            processes.push(spawn(
                vec![
                    "org.apache.spark.deploy.worker.Worker".into(),
                    master.clone(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--cores".into(),
                    "1".into(),
                    "--memory".into(),
                    "1g".into(),
                    "--webui-port".into(),
                    cashtag_testkit::free_port().to_string(),
                    "--work-dir".into(),
                    dir.to_string_lossy().into_owned(),
                ],
                &format!("{w}.log"),
            ));
        }
        // Both workers registered: the master's status page lists them ALIVE.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{ui}/json/")]).output().unwrap();
            if String::from_utf8_lossy(&out.stdout).matches("\"ALIVE\"").count() >= 3 {
                break;
            }
            assert!(Instant::now() < deadline, "the workers did not register");
            std::thread::sleep(Duration::from_millis(500));
        }
        Cluster { processes, master, work }
    }

    /// The tasks each worker's executors ran (from their logs).
    fn tasks_per_worker(&self) -> Vec<usize> {
        ["w1", "w2"]
            .iter()
            .map(|w| {
                let mut n = 0;
                for app in self.work.join(w).read_dir().unwrap().flatten() {
                    for exec in app.path().read_dir().unwrap().flatten() {
                        let log = std::fs::read_to_string(exec.path().join("stderr")).unwrap_or_default();
                        n += log.matches("Running task").count();
                    }
                }
                n
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", p.id())]).status();
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_standalone_cluster_the_job_writes_the_same_rollups_with_work_on_both_workers() {
    let cluster = Cluster::start();
    let (embedded_db, spark_db) = (unique("cluster-embedded"), unique("cluster-spark"));
    let open: DateTime<Utc> = "2026-11-25T14:30:00Z".parse().unwrap();
    let sim = Sim::new(SimParams { seed: 38, trades_per_minute: 3.0, posts_per_minute: 2.0, ..Default::default() });
    let Session { client, posts, market, .. } = Session::write(&sim, open, &embedded_db).await;
    aggregate(&embedded_db, "2026-11-25");
    let checkpoint: PathBuf = tempfile::tempdir().unwrap().keep();
    let started = Instant::now();
    let out = job_command(&posts, &market, &spark_db, &checkpoint, &checkpoint.join("raw"))
        .args(["--available-now", "--master", &cluster.master])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let figures = equal_except(&client.database(&embedded_db), &client.database(&spark_db), &Default::default()).await;
    let tasks = cluster.tasks_per_worker();
    println!("standalone cluster ({:.1} s): {figures}; tasks per worker {tasks:?}", started.elapsed().as_secs_f64());
    assert!(tasks.iter().all(|t| *t > 0), "both workers ran tasks: {tasks:?}");
    let _ = std::fs::remove_dir_all(&checkpoint);
}
