//! Writer benchmark against the local stack (scripts/stack up), in one run:
//! - MongoDB: records/s of the batched writer (insert_many of 500, unordered) versus one
//!   `insert_one` per record, the original system's way;
//! - Kinesis: API calls (and time) per 10,000 records with `PutRecords` batching versus
//!   one `PutRecord` per record.
//!
//! `cargo bench -p cashtag-sinks --bench writers` (with the stack's env: `scripts/bench-sinks`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use cashtag_core::{Record, Ticker, Trade};
use cashtag_sinks::{KinesisSink, MongoSink, Sink};
use cashtag_testkit::{aws_endpoint, mongo_uri, unique};

fn trade(i: u64) -> Record {
    const T: [&str; 10] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "V", "SPY"];
    let ts = chrono::DateTime::from_timestamp(1_790_000_000 + i as i64, 0).unwrap();
    Record::Trade(Trade {
        provider: "bench".into(),
        ticker: Ticker::parse(T[(i % 10) as usize]).unwrap(),
        ts,
        received_at: ts,
        price: 100.0 + (i % 7) as f64,
        size: 100.0,
        exchange: Some("V".into()),
        trade_id: Some(i.to_string()),
        conditions: vec!["@".into()],
        seq: i,
    })
}

#[tokio::main]
async fn main() {
    const MONGO_N: u64 = 5_000;
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "bench").await.unwrap();

    // Batched: the sink itself, in batches of 500.
    let db = unique("bench-batched");
    let mut sink = MongoSink::new(&client, &db);
    sink.ensure_indexes().await.unwrap();
    let records: Vec<Record> = (0..MONGO_N).map(trade).collect();
    let t = Instant::now();
    for chunk in records.chunks(500) {
        sink.write(chunk).await.unwrap();
    }
    let batched = MONGO_N as f64 / t.elapsed().as_secs_f64();

    // Baseline: insert_one per record, same documents, same indexes.
    let db = unique("bench-single");
    let mut base = MongoSink::new(&client, &db);
    base.ensure_indexes().await.unwrap();
    let coll = base.database().collection::<bson::RawDocumentBuf>("trades");
    let t = Instant::now();
    for r in &records {
        coll.insert_one(cashtag_sinks::mongo::document(r).unwrap()).await.unwrap();
    }
    let single = MONGO_N as f64 / t.elapsed().as_secs_f64();
    println!("MongoDB, {MONGO_N} records against the local MongoDB-wire server:");
    println!("  batched insert_many(500)   {batched:>10.0} records/s");
    println!("  one insert_one per record  {single:>10.0} records/s");
    println!("  ratio                      {:>10.1}x", batched / single);

    // Kinesis.
    const KIN_N: u64 = 10_000;
    let kin = cashtag_stores::kinesis::client("us-east-1", &aws_endpoint()).await;
    let stream = unique("bench");
    kin.create_stream().stream_name(&stream).shard_count(4).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let records: Vec<Record> = (0..KIN_N).map(trade).collect();
    let mut sink = KinesisSink::new(kin.clone(), &stream, &stream);
    let calls = sink.call_counter();
    let t = Instant::now();
    for chunk in records.chunks(500) {
        sink.write(chunk).await.unwrap();
    }
    let batched_secs = t.elapsed().as_secs_f64();
    let batched_calls = calls.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut single_calls = 0u64;
    for r in &records {
        let e = cashtag_sinks::kinesis::entry(r);
        kin.put_record()
            .stream_name(&stream)
            .data(aws_sdk_kinesis::primitives::Blob::new(e.data))
            .partition_key(e.partition_key)
            .send()
            .await
            .unwrap();
        single_calls += 1;
    }
    let single_secs = t.elapsed().as_secs_f64();
    println!("Kinesis, {KIN_N} records against the local emulator:");
    println!("  PutRecords (500 per call)  {batched_calls:>6} calls  {batched_secs:>7.2} s");
    println!("  one PutRecord per record   {single_calls:>6} calls  {single_secs:>7.2} s");
    println!(
        "  ratio                      {:>6.0}x fewer calls, {:.1}x faster",
        single_calls as f64 / batched_calls as f64,
        single_secs / batched_secs
    );
}
