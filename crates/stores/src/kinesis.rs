//! Kinesis: the client the sinks use, and reading a stream back (tests, the soak, an
//! operator's check).

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

/// A Kinesis client for the configured region and (emulator) endpoint. Deadlines per call:
/// 3 s to connect, 10 s per attempt, 30 s in all; the sink worker adds its own per write
/// (`sinks.op_timeout_ms`).
pub async fn client(region: &str, endpoint: &str) -> aws_sdk_kinesis::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build();
    aws_sdk_kinesis::Client::new(&crate::aws::sdk_config(region, endpoint, timeouts).await)
}

/// Every record of a stream, shard by shard, from the oldest (TRIM_HORIZON) to the newest:
/// how the tests, the soak and an operator's check read back what the sink wrote.
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<Vec<aws_sdk_kinesis::types::Record>>, String> {
    let ctx = |what: &str, e: &dyn std::fmt::Debug| format!("{what} of {stream}: {e:?}");
    let shards = client.list_shards().stream_name(stream).send().await.map_err(|e| ctx("ListShards", &e))?;
    let mut out = Vec::new();
    for shard in shards.shards() {
        let it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| ctx("GetShardIterator", &e))?;
        let mut it = it.shard_iterator().unwrap_or_default().to_string();
        let mut records = Vec::new();
        loop {
            let page = client
                .get_records()
                .shard_iterator(&it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| ctx("GetRecords", &e))?;
            let empty = page.records().is_empty();
            records.extend(page.records().iter().cloned());
            match page.next_shard_iterator() {
                Some(next) if !empty => it = next.to_string(),
                _ => break,
            }
        }
        out.push(records);
    }
    Ok(out)
}

/// Creates a stream of `shards` shards and waits until it is active (an emulator's, for
/// tests that need a stream of their own).
pub async fn create_active(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{name}: {e}");
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .map_err(|e| err(&aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
    for _ in 0..100 {
        let d = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| err(&aws_sdk_kinesis::error::DisplayErrorContext(&e)))?;
        if d.stream_description_summary().is_some_and(|s| s.stream_status().as_str() == "ACTIVE") {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(err(&"not active after 10 s"))
}

/// Creates the streams that do not exist (one shard each), for an emulator that starts
/// empty and forgets them when it restarts; returns the ones it created. Against real AWS
/// the suite never calls this: the streams are the operator's (CloudFormation).
pub async fn ensure_streams(client: &aws_sdk_kinesis::Client, names: &[&str]) -> Result<Vec<String>, String> {
    let mut created = Vec::new();
    for name in names {
        match client.describe_stream_summary().stream_name(*name).send().await {
            Ok(_) => continue,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(format!("{name}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e))),
        }
        match client.create_stream().stream_name(*name).shard_count(1).send().await {
            Ok(_) => created.push(name.to_string()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(format!("creating {name}: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e))),
        }
    }
    Ok(created)
}
