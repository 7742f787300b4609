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
use cashtag_sinks::{Delivery, Sink, SinkMetrics, WorkerConfig, WriteFailure, WriteReport};
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
}

impl Source for Firehose {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let watched: HashSet<Ticker> = ctx.watched();
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
    latencies_us: Arc<Mutex<Vec<i64>>>,
    kind: &'static str,
}

impl Sink for Blackhole {
    fn name(&self) -> &'static str {
        "mongo"
    }

    async fn write(&mut self, batch: Vec<Record>) -> Result<WriteReport, WriteFailure> {
        let now = Utc::now();
        let mut lat = self.latencies_us.lock().unwrap();
        for r in &batch {
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
    left_out: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

async fn run(
    redis: &str,
    name: &'static str,
    kind: &'static str,
    payloads: Vec<RecordedPayload>,
    transform: bool,
) -> Outcome {
    let prefix = format!("bench-ingest-{}-{kind}", std::process::id());
    let ident = |s: &str| Identity { service: s.into(), instance: "bench".into() };
    let bus = Bus::open(redis, &prefix, ident("bench"), Clock::System, 1_000_000).expect("the bus (Redis)");
    let manager = Bus::open(redis, &prefix, ident("manager"), Clock::System, 1_000).expect("the bus (Redis)");
    let dir = std::env::temp_dir().join(&prefix);
    let journal = Journal::open(
        JournalConfig { dir: dir.clone(), segment_bytes: 1 << 26, max_bytes: 1 << 32, fsync: Fsync::Never },
        &cashtag_sinks::SINKS,
    )
    .expect("journal");
    let sink = Blackhole { kind, ..Default::default() };
    let metrics = SinkMetrics::register(&cashtag_telemetry::Telemetry::new("bench"));
    let fan = Arc::new(
        Delivery::new(journal, &bus, bus.watch_flags(), BTreeMap::from([("mongo_write".to_string(), true)]))
            .sink("mongo_write", sink.clone(), WorkerConfig::default(), metrics)
            .start(None),
    );
    let watchlist = bus.watch_watchlist(Watchlist::from_tickers(TICKERS.iter().map(|t| Ticker::parse(t).unwrap())));
    let parsed = Arc::new(AtomicU64::new(0));
    let source = Firehose { name, payloads, parsed: parsed.clone() };
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
    let start = Instant::now();
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
        let (seen, p) = (sink.seen.load(Ordering::SeqCst), parsed.load(Ordering::SeqCst));
        let left_out = status.dropped.load(Ordering::SeqCst) + status.refused.load(Ordering::SeqCst);
        if seen != last.0 {
            last = (seen, Instant::now());
        }
        let settled = last.1.elapsed() > Duration::from_millis(300);
        if (p > 0 && seen + left_out >= p && settled) || start.elapsed() > Duration::from_secs(600) {
            assert!(
                seen + left_out >= p,
                "the pipeline lost records: {p} parsed, {seen} at the sink, {left_out} left out"
            );
            break;
        }
    }
    let secs = last.1.duration_since(start).as_secs_f64();
    stop.cancel();
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut lat = std::mem::take(&mut *sink.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let pct = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    Outcome {
        records: sink.seen.load(Ordering::SeqCst),
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
    let p = run(&redis, "x", "post", posts, true).await;
    println!(
        "posts  (parse, cashtags, filter, VADER + finance, checks, journal, sink): {:>9.0} posts/s  ({} in {:.2} s)  latency p50 {:.1} ms p99 {:.1} ms  peak RSS {:.0} MiB  ({} dropped or refused)",
        p.records as f64 / p.secs,
        p.records,
        p.secs,
        p.p50_ms,
        p.p99_ms,
        p.rss_mib,
        p.left_out
    );
    let t = run(&redis, "alpaca", "trade", frames, false).await;
    println!(
        "trades (parse, checks, bars, journal, sink):                             {:>9.0} trades/s ({} in {:.2} s)  latency p50 {:.1} ms p99 {:.1} ms  peak RSS {:.0} MiB  ({} dropped or refused)",
        t.records as f64 / t.secs,
        t.records,
        t.secs,
        t.p50_ms,
        t.p99_ms,
        t.rss_mib,
        t.left_out
    );
}
