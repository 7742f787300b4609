//! Helpers shared by the sink tests: records, a bus, Kinesis stream setup and reading.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use cashtag_bus::{Bus, Identity};
use cashtag_core::{Author, Clock, Event, Post, Quote, Record, Ticker, Trade};
use cashtag_journal::{Fsync, Journal, JournalConfig};
use cashtag_sinks::{SinkMetrics, WorkerConfig};
use cashtag_testkit::{redis_url, unique};

pub const TICKERS: [&str; 30] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "AVGO", "JPM", "LLY", "V", "MA", "XOM", "UNH",
    "COST", "WMT", "HD", "PG", "JNJ", "NFLX", "BAC", "ORCL", "KO", "AMD", "CRM", "PLTR", "DIS", "BA", "INTC",
];

/// Record number `i`: a mix of trades, quotes and posts over 30 tickers.
pub fn record(i: u64) -> Record {
    let ticker = Ticker::parse(TICKERS[((i + i / 10) % 30) as usize]).unwrap();
    let ts = chrono::DateTime::from_timestamp(1_790_000_000 + (i / 30) as i64, 0).unwrap();
    match i % 10 {
        0 => Record::Post(Post {
            source: "sim".into(),
            id: format!("p{i}"),
            created_at: ts,
            received_at: ts,
            text: format!("${ticker} to the moon #{i}"),
            lang: Some("en".into()),
            author: Author { id: format!("a{}", i % 97), name: "someone".into(), followers: Some(i % 1000) },
            engagement: None,
            tickers: vec![ticker],
            is_repost: false,
            author_label: None,
            sentiment: None,
        }),
        1..=3 => Record::Quote(Quote {
            provider: "sim".into(),
            ticker,
            ts,
            received_at: ts,
            bid_price: Some(100.0),
            bid_size: Some(1.0),
            ask_price: Some(100.1),
            ask_size: Some(2.0),
            last_price: None,
            volume: None,
            seq: i,
        }),
        _ => Record::Trade(Trade {
            provider: "sim".into(),
            ticker,
            ts,
            received_at: ts,
            price: 100.0 + (i % 100) as f64 / 100.0,
            size: 10.0,
            exchange: Some("V".into()),
            trade_id: Some(i.to_string()),
            conditions: vec![],
            seq: i,
        }),
    }
}

pub fn bus(prefix: &str, service: &str) -> Bus {
    Bus::open(
        &redis_url(),
        prefix,
        Identity { service: service.into(), instance: unique("i") },
        Clock::System,
        1_000_000,
    )
    .unwrap()
}

pub fn metrics() -> SinkMetrics {
    SinkMetrics::register(&cashtag_telemetry::Telemetry::new("test"))
}

pub fn journal_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique(&format!("journal-{name}")))
}

/// A journal for both sinks in `dir`.
pub fn journal_at(dir: &std::path::Path, max_bytes: u64) -> Journal {
    Journal::open(
        JournalConfig { dir: dir.to_path_buf(), segment_bytes: 1 << 24, max_bytes, fsync: Fsync::Never },
        &cashtag_sinks::SINKS,
    )
    .unwrap()
}

pub fn journal(name: &str) -> Journal {
    journal_at(&journal_dir(name), 1 << 32)
}

pub fn fast_config() -> WorkerConfig {
    WorkerConfig {
        batch_size: 500,
        batch_age: Duration::from_millis(200),
        retry_budget: Duration::from_secs(2),
        probe_every: Duration::from_millis(500),
        op_timeout: Duration::from_secs(2),
    }
}

/// Accepts records in groups of 1,000, as the intake does.
pub async fn accept_all(d: &cashtag_sinks::Delivery, records: impl IntoIterator<Item = Record>) {
    let all: Vec<Record> = records.into_iter().collect();
    for chunk in all.chunks(1_000) {
        d.accept(chunk).await.unwrap();
    }
}

pub async fn kinesis() -> aws_sdk_kinesis::Client {
    cashtag_stores::kinesis::client("us-east-1", &cashtag_testkit::aws_endpoint()).await
}

/// Creates a stream with `shards` shards and waits until it is active.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    cashtag_stores::kinesis::create_active(client, name, shards).await.unwrap();
}

/// Every record in every shard of a stream: key → count, and records per shard.
pub async fn read_stream(client: &aws_sdk_kinesis::Client, name: &str) -> (HashMap<String, usize>, Vec<usize>) {
    let shards = cashtag_stores::kinesis::read_stream(client, name).await.unwrap();
    let mut keys: HashMap<String, usize> = HashMap::new();
    for r in shards.iter().flatten() {
        let rec: Record = serde_json::from_slice(r.data().as_ref()).unwrap();
        *keys.entry(rec.key()).or_default() += 1;
    }
    (keys, shards.iter().map(Vec::len).collect())
}

/// Total documents in the record collections of a database.
pub async fn mongo_count(db: &mongodb::Database) -> u64 {
    let mut total = 0;
    for c in ["posts", "trades", "quotes", "bars"] {
        total += db.collection::<bson::Document>(c).count_documents(bson::doc! {}).await.unwrap();
    }
    total
}

/// Every event on the prefix's events stream so far.
pub async fn events(prefix: &str) -> Vec<Event> {
    bus(prefix, "reader").peek_events(100_000).await.unwrap()
}
