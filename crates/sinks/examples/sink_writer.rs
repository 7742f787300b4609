//! A process that writes trades to MongoDB through the sinks, for the SIGKILL test
//! (tests/sigkill.rs) and for trying the spool by hand.
//!
//! sink_writer MONGO_URI DB REDIS_URL PREFIX SPOOL_DIR FROM TO [--exit-when-idle]
//! Accepts trades FROM..TO, then prints `status pending=.. spooled=.. written=.. replayed=..`
//! every 100 ms; with --exit-when-idle it shuts down cleanly once everything is written.

use std::collections::BTreeMap;
use std::time::Duration;

use cashtag_bus::{Bus, Identity};
use cashtag_core::{Clock, Record, Ticker, Trade};
use cashtag_sinks::{FanOut, MongoSink, SinkMetrics, Spool, WorkerConfig, spawn_worker};

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
    let (mongo, db, redis, prefix, spool) = (&a[1], &a[2], &a[3], &a[4], &a[5]);
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
    let client = cashtag_sinks::mongo::connect(mongo, "sink_writer").await.unwrap();
    let config = WorkerConfig {
        retry_budget: Duration::from_secs(1),
        batch_age: Duration::from_millis(200),
        probe_every: Duration::from_millis(500),
        ..Default::default()
    };
    let metrics = SinkMetrics::register(&cashtag_telemetry::Telemetry::new("sink_writer"));
    let worker = spawn_worker(
        MongoSink::new(&client, db),
        Spool::open(spool, 1 << 30, 1 << 20).unwrap(),
        config,
        bus.clone(),
        metrics,
    );
    let fan = FanOut::new(
        &bus,
        bus.watch_flags(),
        BTreeMap::from([("mongo_write".to_string(), true)]),
        vec![("mongo_write".into(), worker)],
    );
    fan.accept_all((from..to).map(trade)).await;
    loop {
        fan.flush().await;
        let s = &fan.status()[0];
        println!(
            "status pending={} spooled={} written={} replayed={} spool_bytes={}",
            s.pending, s.spooled, s.written, s.replayed, s.spool_bytes
        );
        if exit_when_idle && s.pending == 0 && s.spool_bytes == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fan.shutdown(Duration::from_secs(10)).await);
    bus.events().flush(Duration::from_secs(3)).await;
    println!("idle");
}
