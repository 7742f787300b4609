//! cashtag-log: keeps the suite's events, errors and per-minute counts (MongoDB, daily
//! JSON-lines files, stdout), warns about stale feeds and error bursts, and answers
//! `tail` and `counts`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cashtag_core::{EventKind, Settings};
use cashtag_eventlog::query::{self, Grain};
use cashtag_eventlog::{DailyFiles, Ingest, IngestConfig, LogStore, Webhook};
use cashtag_runtime::{Failure, Logging, Service};
use chrono::TimeDelta;
use clap::{Parser, Subcommand};

const DEFAULT_PORT: u16 = 9104;

#[derive(Parser)]
#[command(name = "cashtag-log", version, about = "Keeps the suite's events, errors and per-minute counts")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read the events and counts streams and keep them.
    Run,
    /// Print stored events, oldest first.
    Tail {
        #[arg(long)]
        service: Option<String>,
        /// activity, warning or error.
        #[arg(long)]
        kind: Option<EventKind>,
        /// How far back: 30s, 15m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// At most this many events (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep printing new events.
        #[arg(long)]
        follow: bool,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print per-minute or per-hour record counts by source and ticker.
    Counts {
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        ticker: Option<String>,
        #[arg(long, default_value = "1d")]
        since: String,
        /// minute or hour.
        #[arg(long, default_value = "minute")]
        by: Grain,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Run => cashtag_runtime::main("cashtag-log", Logging::Service, config, run),
        Command::Tail { service, kind, since, limit, follow, json } => {
            cashtag_runtime::main("cashtag-log", Logging::Cli, config, |s| async move {
                tail(s, service, kind, &since, limit, follow, json).await
            })
        }
        Command::Counts { source, ticker, since, by, json } => {
            cashtag_runtime::main("cashtag-log", Logging::Cli, config, |s| async move {
                counts(s, source, ticker, &since, by, json).await
            })
        }
    }
}

async fn store(settings: &Settings) -> anyhow::Result<LogStore> {
    let client = cashtag_stores::mongo::connect(settings.mongo.uri.expose(), "cashtag-log")
        .await
        .context("MongoDB connection string")?;
    Ok(LogStore::new(&client, &settings.mongo.database))
}

async fn run(settings: Settings) -> Result<(), Failure> {
    let mut svc = Service::start("log", &settings, "events and counts")?;
    let store = store(&settings).await.map_err(cashtag_runtime::config)?;
    let database = store.database().clone();
    let retention = Duration::from_secs(settings.log.retention_days * 86_400);
    let indexes = tokio::time::timeout(Duration::from_secs(10), store.ensure_indexes(retention)).await;
    if let Err(e) = indexes.unwrap_or_else(|_| Err(mongodb::error::Error::custom("timed out"))) {
        tracing::warn!(error = %e, "cannot create indexes now; entries are stored anyway and indexes are created at the next start");
    }
    let files = if settings.log.files_dir.is_empty() {
        None
    } else {
        let keep = settings.log.files_keep_days as usize;
        let open = |kind| DailyFiles::new(&settings.log.files_dir, kind, keep).map_err(cashtag_runtime::config);
        Some((open("events")?, open("counts")?))
    };
    let webhook = (!settings.log.webhook_url.is_empty()).then(|| {
        Webhook::spawn(
            settings.log.webhook_url.expose().to_string(),
            Duration::from_millis(settings.log.webhook_timeout_ms),
        )
    });
    let consumer = if settings.service.instance.is_empty() {
        "cashtag-log".to_string()
    } else {
        settings.service.instance.clone()
    };
    let ingest = Ingest::new(
        svc.bus.clone(),
        store,
        files,
        webhook,
        IngestConfig {
            consumer,
            stale_after: TimeDelta::minutes(settings.log.stale_after_minutes as i64),
            burst_errors: settings.log.burst_errors as usize,
            burst_window: TimeDelta::seconds(settings.log.burst_window_secs as i64),
            check_every: Duration::from_secs(1),
            print: true,
        },
    );
    svc.heartbeat(|| serde_json::Value::Null);
    svc.serve(DEFAULT_PORT, axum::Router::new()).await?;
    svc.watch_mongo(&database);
    let stats = ingest.run(svc.shutdown.clone()).await;
    tracing::info!(
        events = stats.events.load(std::sync::atomic::Ordering::Relaxed),
        counts = stats.counts.load(std::sync::atomic::Ordering::Relaxed),
        "log stopped"
    );
    svc.stop("log stopped").await;
    Ok(())
}

async fn tail(
    settings: Settings,
    service: Option<String>,
    kind: Option<EventKind>,
    since: &str,
    limit: usize,
    follow: bool,
    json: bool,
) -> Result<(), Failure> {
    let span = since_span(since)?;
    let clock = settings.clock.clock()?;
    let store = store(&settings).await.map_err(cashtag_runtime::config)?;
    let mut from = clock.now() - span;
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let events = store
            .events_since(from, service.as_deref(), kind, limit)
            .await
            .context("querying events")
            .map_err(cashtag_runtime::other)?;
        for e in &events {
            if !seen.insert(e.id.clone()) {
                continue;
            }
            if json {
                println!("{}", query::event_json(e));
            } else {
                println!("{}", query::event_line(e));
            }
            from = from.max(e.event.at);
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn counts(
    settings: Settings,
    source: Option<String>,
    ticker: Option<String>,
    since: &str,
    by: Grain,
    json: bool,
) -> Result<(), Failure> {
    let span = since_span(since)?;
    let clock = settings.clock.clock()?;
    let store = store(&settings).await.map_err(cashtag_runtime::config)?;
    let samples = store
        .counts_since(clock.now() - span, source.as_deref(), ticker.as_deref())
        .await
        .context("querying counts")
        .map_err(cashtag_runtime::other)?;
    let rows = query::count_rows(&samples, by);
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).map_err(cashtag_runtime::other)?);
        }
    } else {
        println!("{}", query::count_header());
        for r in &rows {
            println!("{}", query::count_line(r));
        }
    }
    Ok(())
}

/// `--since`: a positive span back from now.
fn since_span(since: &str) -> Result<TimeDelta, Failure> {
    cashtag_core::span::parse_positive(since).map_err(|e| Failure::usage(format!("--since {e}")))
}
