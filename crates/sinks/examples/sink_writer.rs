//! A process that writes trades to MongoDB through the journal and the sinks, for the
//! SIGKILL test (tests/sigkill.rs) and for trying the journal by hand.
//!
//! sink_writer MONGO_URI DB REDIS_URL PREFIX JOURNAL_DIR FROM TO [--exit-when-idle]
//! Accepts trades FROM..TO (printing `accepted N` once they are in the journal), then
//! prints `status up=.. written=.. replayed=.. backlog_bytes=..` every 100 ms; with
//! --exit-when-idle it shuts down cleanly once everything is written.

use std::collections::BTreeMap;
use std::time::Duration;

use cashtag_bus::{Bus, Identity};
use cashtag_core::{Clock, Record, Ticker, Trade};
use cashtag_journal::{Fsync, Journal, JournalConfig};
use cashtag_sinks::{Delivery, MongoSink, SinkMetrics, WorkerConfig};

fn trade(i: u64) -> Record {
    let ts = chrono::DateTime::from_timestamp(1_790_000_000 + i as i64, 0).unwrap();
    Record::Trade(Trade {
        provider: "sim".into(),
        ticker: Ticker::parse("AAPL").unwrap(),
        ts,
        received_at: ts,
        price: 100.0,
        size: 1.0,
        exchange: None,
        trade_id: None,
        conditions: vec![],
        seq: i,
    })
}

#[tokio::main]
async fn main() {
    cashtag_telemetry::init_cli_tracing();
    let a: Vec<String> = std::env::args().collect();
    let (mongo, db, redis, prefix, journal_dir) = (&a[1], &a[2], &a[3], &a[4], &a[5]);
    let from: u64 = a[6].parse().unwrap();
    let to: u64 = a[7].parse().unwrap();
    let exit_when_idle = a.iter().any(|x| x == "--exit-when-idle");

    let bus = Bus::open(
        redis,
        prefix,
        Identity { service: "sink_writer".into(), instance: std::process::id().to_string() },
        Clock::System,
        100_000,
    )
    .unwrap();
    let client = cashtag_stores::mongo::connect(mongo, "sink_writer").await.unwrap();
    let config = WorkerConfig {
        retry_budget: Duration::from_secs(1),
        batch_age: Duration::from_millis(200),
        probe_every: Duration::from_millis(500),
        op_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let metrics = SinkMetrics::register(&cashtag_telemetry::Telemetry::new("sink_writer"));
    let journal = Journal::open(
        JournalConfig { dir: journal_dir.into(), segment_bytes: 1 << 20, max_bytes: 1 << 30, fsync: Fsync::Always },
        &cashtag_sinks::SINKS,
    )
    .unwrap();
    let fan = Delivery::new(journal, &bus, bus.watch_flags(), BTreeMap::from([("mongo_write".to_string(), true)]))
        .sink("mongo_write", MongoSink::new(&client, db), config, metrics)
        .start(None);
    let records: Vec<Record> = (from..to).map(trade).collect();
    for chunk in records.chunks(500) {
        fan.accept(chunk).await.unwrap();
    }
    println!("accepted {}", to - from);
    loop {
        let s = &fan.status()[0];
        println!("status up={} written={} replayed={} backlog_bytes={}", s.up, s.written, s.replayed, s.backlog_bytes);
        if exit_when_idle && s.idle && s.backlog_bytes == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fan.shutdown(Duration::from_secs(10)).await);
    bus.events().flush(Duration::from_secs(3)).await;
    println!("idle");
}
