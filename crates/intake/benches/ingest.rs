//! The pipeline's own ceiling: provider payloads replayed as fast as the intake takes them
//! through the product's path — the provider's parser (X API v2 filtered-stream lines,
//! Alpaca stream frames), cashtag extraction, the post filter and scoring, the checks, the
//! journal's group commit and the sink worker — into a sink that only counts (a
//! blackhole), so the figures are the pipeline's, not a database's.
//!
//! `scripts/bench-ingest` (it starts the local stack for the bus); directly:
//! `cargo bench -p cashtag-intake --bench ingest` with `CASHTAG_REDIS_URL` set.
//! The payloads are generated from the simulator in the providers' wire formats; each
//! record's receive time is stamped when its payload is parsed, so the latency printed is
//! receive → sink. Prints posts/s and trades/s, p50/p99 latency and the process's RSS.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_core::{Clock, CountKind, Record, Ticker, Watchlist};
use cashtag_intake::posts::PostFilter;
use cashtag_intake::{Intake, IntakeConfig, Sources};
use cashtag_journal::{Fsync, Journal, JournalConfig};
use cashtag_sim::{Sim, SimParams};
use cashtag_sinks::{Delivery, KinesisSink, MongoSink, Sink, SinkMetrics, WorkerConfig, WriteFailure, WriteReport};
use cashtag_sources::recorder::RecordedPayload;
use cashtag_sources::{BoxFuture, Source, SourceCtx, SourceError};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

const TICKERS: [&str; 10] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "V", "SPY"];

/// Simulated posts as X API v2 filtered-stream lines (one post per line, as X sends them).
fn x_lines(minutes: std::ops::Range<i64>, sim: &Sim) -> Vec<RecordedPayload> {
    let others: Vec<String> = TICKERS.iter().map(|t| t.to_string()).collect();
    let mut out = Vec::new();
    for m in minutes {
        for t in TICKERS {
            for p in sim.posts(t, m, &others) {
                let line = serde_json::json!({
                    "data": {"id": p.id, "text": p.text, "author_id": p.author_id, "lang": "en",
                             "created_at": p.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                             "public_metrics": {"like_count": p.likes, "retweet_count": p.reposts, "reply_count": 0, "quote_count": 0}},
                    "includes": {"users": [{"id": p.author_id, "username": p.author_name, "public_metrics": {"followers_count": p.followers}}]},
                    "matching_rules": [{"id": "1", "tag": format!("cashtag:{t}")}]
                });
                out.push(payload("x", "stream", line.to_string()));
            }
        }
    }
    out
}

/// Simulated trades as Alpaca stream frames (arrays of up to 100 trade messages).
fn alpaca_frames(minutes: std::ops::Range<i64>, sim: &Sim) -> Vec<RecordedPayload> {
    let mut msgs = Vec::new();
    for m in minutes {
        for t in TICKERS {
            for tr in sim.trades(t, m) {
                msgs.push(serde_json::json!({
                    "T": "t", "S": t, "i": tr.index as u64 + (m as u64) * 10_000, "x": "V", "p": tr.price, "s": tr.size,
                    "c": ["@"], "t": tr.ts.to_rfc3339_opts(SecondsFormat::Nanos, true), "z": "C"
                }));
            }
        }
    }
    msgs.chunks(100).map(|c| payload("alpaca", "ws", serde_json::Value::Array(c.to_vec()).to_string())).collect()
}

fn payload(provider: &str, channel: &str, payload: String) -> RecordedPayload {
    RecordedPayload { at: Utc::now(), provider: provider.into(), channel: channel.into(), payload }
}

/// Plays payloads through the registry's parsers as fast as the intake takes the records.
struct Firehose {
    name: &'static str,
    payloads: Vec<RecordedPayload>,
    parsed: Arc<AtomicU64>,
    /// When the first payload was parsed: the clock starts there, not at the control switch.
    started: Arc<std::sync::OnceLock<Instant>>,
}

impl Source for Firehose {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let watched: HashSet<Ticker> = ctx.watched();
            self.started.get_or_init(Instant::now);
            for mut p in std::mem::take(&mut self.payloads) {
                p.at = Utc::now();
                let parsed = cashtag_sources::registry::parse_recorded(&p, &watched).expect("generated payloads parse");
                self.parsed.fetch_add(parsed.records.len() as u64, Ordering::SeqCst);
                if !ctx.deliver(&p.provider, &p.payload, parsed).await {
                    return Ok(());
                }
            }
            ctx.cancel.cancelled().await;
            Ok(())
        })
    }
}

/// Counts what reaches it, and how long after its receive time.
#[derive(Clone, Default)]
struct Blackhole {
    seen: Arc<AtomicU64>,
    /// (when, records seen so far) after every write.
    writes: Arc<Mutex<Vec<(Instant, u64)>>>,
    latencies_us: Arc<Mutex<Vec<i64>>>,
    kind: &'static str,
}

impl Sink for Blackhole {
    fn name(&self) -> &'static str {
        "mongo"
    }

    async fn write(&mut self, batch: &[Record]) -> Result<WriteReport, WriteFailure> {
        let now = Utc::now();
        let mut lat = self.latencies_us.lock().unwrap();
        for r in batch {
            let received: Option<DateTime<Utc>> = match r {
                Record::Post(p) if self.kind == "post" => Some(p.received_at),
                Record::Trade(t) if self.kind == "trade" => Some(t.received_at),
                _ => None,
            };
            if let Some(at) = received {
                lat.push((now - at).num_microseconds().unwrap_or(i64::MAX));
                self.seen.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.writes.lock().unwrap().push((Instant::now(), self.seen.load(Ordering::SeqCst)));
        Ok(WriteReport { written: batch.len(), ..Default::default() })
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Outcome {
    records: u64,
    /// Records at the sink when the rate was taken, and the seconds that took.
    counted: u64,
    left_out: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

/// Where the records go: the counting sink, or the local stack's MongoDB and Kinesis.
enum Target {
    Blackhole,
    Stack { mongo_uri: String, aws_endpoint: String, region: String },
}

async fn run(
    redis: &str,
    name: &'static str,
    kind: &'static str,
    payloads: Vec<RecordedPayload>,
    transform: bool,
    target: &Target,
) -> Outcome {
    let prefix = format!("bench-ingest-{}-{kind}", std::process::id());
    let ident = |s: &str| Identity { service: s.into(), instance: "bench".into() };
    let bus = Bus::open(redis, &prefix, ident("bench"), Clock::System, 1_000_000).expect("the bus (Redis)");
    let manager = Bus::open(redis, &prefix, ident("manager"), Clock::System, 1_000).expect("the bus (Redis)");
    let dir = std::env::temp_dir().join(&prefix);
    let journal = Journal::open(
        JournalConfig { dir: dir.clone(), segment_bytes: 1 << 26, max_bytes: 1 << 32, fsync: Fsync::Always },
        &cashtag_sinks::SINKS,
    )
    .expect("journal");
    let sink = Blackhole { kind, ..Default::default() };
    let telemetry = cashtag_telemetry::Telemetry::new("bench");
    let flags = BTreeMap::from([("mongo_write".to_string(), true), ("kinesis_write".to_string(), true)]);
    let delivery = Delivery::new(journal, &bus, bus.watch_flags(), flags);
    let delivery = match target {
        Target::Blackhole => {
            delivery.sink("mongo_write", sink.clone(), WorkerConfig::default(), SinkMetrics::register(&telemetry))
        }
        Target::Stack { mongo_uri, aws_endpoint, region } => {
            let client = cashtag_stores::mongo::connect(mongo_uri, "bench").await.expect("MongoDB");
            let mut mongo = MongoSink::new(&client, &prefix);
            mongo.ensure_indexes().await.expect("MongoDB indexes");
            let kinesis = KinesisSink::new(
                cashtag_stores::kinesis::client(region, aws_endpoint).await,
                "cashtag-posts",
                "cashtag-market",
            );
            let metrics = SinkMetrics::register(&telemetry);
            delivery.sink("mongo_write", mongo, WorkerConfig::default(), metrics.clone()).sink(
                "kinesis_write",
                kinesis,
                WorkerConfig::default(),
                metrics,
            )
        }
    };
    let fan = Arc::new(delivery.start(None));
    let watchlist = bus.watch_watchlist(Watchlist::from_tickers(TICKERS.iter().map(|t| Ticker::parse(t).unwrap())));
    let parsed = Arc::new(AtomicU64::new(0));
    let started = Arc::new(std::sync::OnceLock::new());
    let source = Firehose { name, payloads, parsed: parsed.clone(), started: started.clone() };
    let config = IntakeConfig {
        primary_kind: if kind == "post" { CountKind::Posts } else { CountKind::Trades },
        bars_from_trades: kind == "trade",
        ..Default::default()
    };
    let mut intake = Intake::new(
        bus.clone(),
        fan.clone(),
        Sources(vec![Box::new(source)]),
        watchlist,
        bus.counts_writer(100_000).unwrap(),
        config,
    );
    if transform {
        let mut filter = PostFilter::new(vec!["en".into()], false);
        intake = intake.with_transform(Box::new(move |r| filter.apply(r)));
    }
    let status = intake.status();
    let stop = CancellationToken::new();
    let rss_idle = rss_kib();
    let task = tokio::spawn(intake.run(stop.clone()));
    let begin = Instant::now();
    manager
        .publish_control(&ControlState { cmd: ControlCommand::Start, reason: "bench".into(), at: Utc::now() })
        .await
        .expect("publish control");
    // Done when every parsed record reached the sink or was dropped (duplicates) or
    // refused by the checks, and the count holds.
    let mut rss_peak = rss_idle;
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        rss_peak = rss_peak.max(rss_kib());
        let (mut seen, p) = (sink.seen.load(Ordering::SeqCst), parsed.load(Ordering::SeqCst));
        let left_out = status.dropped.load(Ordering::SeqCst) + status.refused.load(Ordering::SeqCst);
        if let Target::Stack { .. } = target {
            // Every accepted record written by both sinks (bars built from trades included).
            let accepted = status.records.load(Ordering::SeqCst);
            let written = fan.status().iter().map(|s| s.written + s.duplicates).min().unwrap_or(0);
            seen = if accepted + left_out >= p && written >= accepted { p - left_out } else { written.min(p) };
        }
        if seen != last.0 {
            last = (seen, Instant::now());
        }
        let settled = last.1.elapsed() > Duration::from_millis(300);
        if (p > 0 && seen + left_out >= p && settled) || begin.elapsed() > Duration::from_secs(600) {
            assert!(
                seen + left_out >= p,
                "the pipeline lost records: {p} parsed, {seen} at the sink, {left_out} left out"
            );
            break;
        }
    }
    // The rate up to the last full batch: the final, partial one waits for the batch age
    // (1 s) because the input ends, which a live source's never does.
    let writes = sink.writes.lock().unwrap().clone();
    let (until, counted) = match target {
        Target::Blackhole => writes.len().checked_sub(2).map_or(last, |i| (writes[i].1, writes[i].0)),
        // Into the stack the whole run counts, the last batch's wait included.
        Target::Stack { .. } => last,
    };
    let secs = counted.duration_since(*started.get().expect("the source ran")).as_secs_f64();
    stop.cancel();
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut lat = std::mem::take(&mut *sink.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let pct = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    Outcome {
        records: last.0,
        counted: until,
        left_out: status.dropped.load(Ordering::SeqCst) + status.refused.load(Ordering::SeqCst),
        secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        rss_mib: rss_peak as f64 / 1024.0,
    }
}

#[tokio::main]
async fn main() {
    let redis = std::env::var("CASHTAG_REDIS_URL").unwrap_or_else(|_| {
        eprintln!("CASHTAG_REDIS_URL is not set: run scripts/bench-ingest (it starts the local stack)");
        std::process::exit(2)
    });
    let minutes: i64 = std::env::var("CASHTAG_BENCH_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let sim = Sim::new(SimParams { posts_per_minute: 40.0, trades_per_minute: 200.0, ..Default::default() });
    let end = cashtag_sim::minute_index(Utc::now()) - 1;
    let window = end - minutes..end;
    let posts = x_lines(window.clone(), &sim);
    let frames = alpaca_frames(window, &sim);
    let rss = rss_kib() as f64 / 1024.0;
    println!(
        "payloads: {} X v2 stream lines, {} Alpaca frames ({minutes} simulated minutes, {} tickers)",
        posts.len(),
        frames.len(),
        TICKERS.len()
    );
    println!("RSS with the payloads in memory: {rss:.0} MiB");
    // CASHTAG_BENCH_ONLY=posts|trades runs one half (for profiling); CASHTAG_BENCH_STACK=0
    // leaves out the runs into the local stack.
    let only = std::env::var("CASHTAG_BENCH_ONLY").unwrap_or_default();
    let stack_minutes: i64 =
        std::env::var("CASHTAG_BENCH_STACK_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let stack = std::env::var("CASHTAG_BENCH_STACK").map_or(true, |v| v != "0");
    println!("CPUs this process may use: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("\ninto a sink that only counts (the pipeline's ceiling):");
    if only != "trades" {
        report(POSTS_PATH, "posts/s ", &run(&redis, "x", "post", posts, true, &Target::Blackhole).await);
    }
    if only != "posts" {
        report(TRADES_PATH, "trades/s", &run(&redis, "alpaca", "trade", frames, false, &Target::Blackhole).await);
    }
    if !stack {
        return;
    }
    let target = Target::Stack {
        mongo_uri: std::env::var("CASHTAG_MONGO_URI").expect("CASHTAG_MONGO_URI (scripts/bench-ingest sets it)"),
        aws_endpoint: std::env::var("CASHTAG_AWS_ENDPOINT")
            .expect("CASHTAG_AWS_ENDPOINT (scripts/bench-ingest sets it)"),
        region: std::env::var("CASHTAG_AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
    };
    let window = end - stack_minutes..end;
    let (posts, frames) = (x_lines(window.clone(), &sim), alpaca_frames(window, &sim));
    println!("\ninto the local stack, MongoDB and Kinesis both on ({stack_minutes} simulated minutes):");
    let p = run(&redis, "x", "post", posts.clone(), true, &target).await;
    report(POSTS_PATH, "posts/s ", &p);
    let t = run(&redis, "alpaca", "trade", frames.clone(), false, &target).await;
    report(TRADES_PATH, "trades/s", &t);
    original_pipeline(&posts, &frames, &p, &t);
}

const POSTS_PATH: &str = "posts  (parse, cashtags, filter, VADER + finance, checks, journal, sink)";
const TRADES_PATH: &str = "trades (parse, checks, bars, journal, sink)";

/// The original system's pipeline, re-created in Python (`benches/original_pipeline.py`:
/// json parse, substring ticker match, vaderSentiment, pymongo `insert_one` per record),
/// on the same payloads and the same MongoDB server.
fn original_pipeline(posts: &[RecordedPayload], frames: &[RecordedPayload], p: &Outcome, t: &Outcome) {
    let dir = std::env::temp_dir().join(format!("bench-ingest-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, items: &[RecordedPayload]| {
        let path = dir.join(name);
        let text: String = items.iter().map(|x| format!("{}\n", x.payload)).collect();
        std::fs::write(&path, text).expect("write payloads");
        path
    };
    let (xp, ap) = (write("x.jsonl", posts), write("alpaca.jsonl", frames));
    let python = std::env::var("CASHTAG_BENCH_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/original_pipeline.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(std::env::var("CASHTAG_MONGO_URI").unwrap_or_default())
        .arg(format!("bench-original-{}", std::process::id()))
        .arg(&xp)
        .arg(&ap)
        .arg(TICKERS.join(","))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return println!(
                "the Python pipeline failed: {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
        }
        Err(e) => return println!("the Python pipeline did not run ({python}: {e}); run scripts/bench-ingest"),
    };
    let rate =
        |key: &str| -> f64 { out.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok()).unwrap_or(f64::NAN) };
    let (py_posts, py_trades) = (rate("posts_per_second"), rate("trades_per_second"));
    println!(
        "\nthe original pipeline in Python (json, substring match, vaderSentiment, insert_one), same payloads and server:"
    );
    println!("{:<74} {py_posts:>9.0} posts/s", "posts");
    println!("{:<74} {py_trades:>9.0} trades/s", "trades");
    println!(
        "ratio cashtag / original: posts {:.1}x, trades {:.1}x",
        p.counted as f64 / p.secs / py_posts,
        t.counted as f64 / t.secs / py_trades
    );
}

fn report(path: &str, unit: &str, o: &Outcome) {
    let latency =
        if o.p99_ms > 0.0 { format!("latency p50 {:.1} ms p99 {:.1} ms  ", o.p50_ms, o.p99_ms) } else { String::new() };
    println!(
        "{path:<74} {:>9.0} {unit} ({} of {} in {:.2} s)  {latency}peak RSS {:.0} MiB  ({} dropped or refused)",
        o.counted as f64 / o.secs,
        o.counted,
        o.records,
        o.secs,
        o.rss_mib,
        o.left_out
    );
}
