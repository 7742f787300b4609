//! Test harness (feature `harness`): an intake with a real bus (Redis) and a MongoDB
//! sink, and a manager stand-in that publishes control states. Used by the stocks and
//! twitter service tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Intake, IntakeConfig, Sources, Transform};
use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_core::{Clock, CountKind, Event, Ticker, Watchlist};
use cashtag_journal::{Fsync, Journal, JournalConfig};
use cashtag_sinks::{Delivery, MongoSink, SinkMetrics, WorkerConfig};
use cashtag_sources::{RestartPolicy, Source};
use cashtag_testkit::{mongo_uri, redis_url, unique};
use tokio_util::sync::CancellationToken;

/// A fetcher's heartbeat stamped after `since` that says it is stopped and every sink has
/// written everything (how a test knows a stop is complete; the heartbeat in Redis may
/// still be one from before a start, when the market was off too).
pub fn stopped_and_idle_after(since: chrono::DateTime<chrono::Utc>) -> impl Fn(&cashtag_bus::Heartbeat) -> bool {
    move |h| {
        h.at > since
            && h.info["market_on"] == false
            && h.info["sinks"]
                .as_array()
                .is_some_and(|s| s.iter().all(|x| x["idle"] == true && x["backlog_bytes"] == 0))
    }
}

pub fn bus(prefix: &str, service: &str) -> Bus {
    Bus::open(
        &redis_url(),
        prefix,
        Identity { service: service.into(), instance: "i1".into() },
        Clock::System,
        1_000_000,
    )
    .unwrap()
}

pub struct Harness {
    pub prefix: String,
    pub db: mongodb::Database,
    pub manager: Bus,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn start(source: impl Source + 'static, tickers: &[&str], config: IntakeConfig) -> Harness {
    start_with(source, tickers, config, None).await
}

/// Like [`start`], with a transform on every record.
pub async fn start_with(
    source: impl Source + 'static,
    tickers: &[&str],
    config: IntakeConfig,
    transform: Option<Transform>,
) -> Harness {
    let prefix = unique("t-stocks");
    let db_name = unique("stocks");
    let b = bus(&prefix, "stocks");
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let metrics = SinkMetrics::register(&cashtag_telemetry::Telemetry::new("stocks"));
    let journal = Journal::open(
        JournalConfig {
            dir: std::env::temp_dir().join(unique("journal")),
            segment_bytes: 1 << 24,
            max_bytes: 1 << 30,
            fsync: Fsync::Never,
        },
        &cashtag_sinks::SINKS,
    )
    .unwrap();
    let cfg = WorkerConfig { batch_age: Duration::from_millis(100), ..Default::default() };
    let flags = BTreeMap::from([("mongo_write".to_string(), true)]);
    let fan = Arc::new(
        Delivery::new(journal, &b, b.watch_flags(), flags)
            .sink("mongo_write", MongoSink::new(&client, &db_name), cfg, metrics)
            .start(None),
    );
    let watchlist = b.watch_watchlist(Watchlist::from_tickers(tickers.iter().map(|t| Ticker::parse(t).unwrap())));
    let mut intake = Intake::new(
        b.clone(),
        fan,
        Sources(vec![Box::new(source)]),
        watchlist,
        b.counts_writer(100_000).unwrap(),
        config,
    );
    if let Some(t) = transform {
        intake = intake.with_transform(t);
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(intake.run(stop.clone()));
    Harness { prefix: prefix.clone(), db: client.database(&db_name), manager: bus(&prefix, "manager"), stop, task }
}

pub fn fast_config() -> IntakeConfig {
    IntakeConfig {
        primary_kind: CountKind::Trades,
        restart: RestartPolicy { restart_pause: Duration::from_millis(200), auth_pause: Duration::from_secs(1) },
        ..Default::default()
    }
}

impl Harness {
    pub async fn control(&self, on: bool, minutes_ago: i64) {
        let state = ControlState {
            cmd: if on { ControlCommand::Start } else { ControlCommand::Stop },
            reason: "test".into(),
            at: chrono::Utc::now() - chrono::TimeDelta::minutes(minutes_ago),
        };
        self.manager.publish_control(&state).await.unwrap();
    }

    pub async fn count(&self, coll: &str, filter: bson::Document) -> u64 {
        self.db.collection::<bson::Document>(coll).count_documents(filter).await.unwrap()
    }

    /// Waits until `coll` holds at least `n` documents matching `filter`.
    pub async fn wait_count(&self, coll: &str, filter: bson::Document, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.count(coll, filter.clone()).await;
            if c >= n || Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn events(&self) -> Vec<Event> {
        bus(&self.prefix, "reader").peek_events(100_000).await.unwrap()
    }

    pub async fn finish(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task).await.expect("intake stops").unwrap();
    }
}
