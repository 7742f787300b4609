//! cashtag-log: keeps the suite's events, errors and per-minute counts (MongoDB, daily
//! JSON-lines files, stdout), warns about stale feeds and error bursts, and answers
//! `tail` and `counts`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cashtag_bus::Bus;
use cashtag_core::{EventKind, Settings};
use cashtag_eventlog::query::{self, Grain};
use cashtag_eventlog::{DailyFiles, Ingest, IngestConfig, LogStore, Webhook};
use cashtag_telemetry::Telemetry;
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
    let result = (|| -> anyhow::Result<()> {
        let settings = Settings::load(cli.config.as_deref()).context("invalid configuration")?;
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        match cli.command {
            Command::Run => {
                cashtag_telemetry::init_tracing("log");
                rt.block_on(run(settings))
            }
            Command::Tail { service, kind, since, limit, follow, json } => {
                cashtag_telemetry::init_cli_tracing();
                rt.block_on(tail(settings, service, kind, &since, limit, follow, json))
            }
            Command::Counts { source, ticker, since, by, json } => {
                cashtag_telemetry::init_cli_tracing();
                rt.block_on(counts(settings, source, ticker, &since, by, json))
            }
        }
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-log: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn store(settings: &Settings) -> anyhow::Result<LogStore> {
    let client = cashtag_sinks::mongo::connect(settings.mongo.uri.expose(), "cashtag-log")
        .await
        .context("MongoDB connection string")?;
    Ok(LogStore::new(&client, &settings.mongo.database))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let clock = settings.clock.clock()?;
    let bus = Bus::from_settings(&settings, "log", clock)?;
    let store = store(&settings).await?;
    let telemetry = Telemetry::new("log");
    let shutdown = cashtag_telemetry::shutdown_token();
    bus.emit(bus.event(EventKind::Activity, "service.start", format!("log {} starting", env!("CARGO_PKG_VERSION"))));

    let retention = Duration::from_secs(settings.log.retention_days * 86_400);
    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), store.ensure_indexes(retention))
        .await
        .unwrap_or_else(|_| Err(mongodb::error::Error::custom("timed out")))
    {
        tracing::warn!(error = %e, "cannot create indexes now; entries are stored anyway and indexes are created at the next start");
    }
    let files = if settings.log.files_dir.is_empty() {
        None
    } else {
        let keep = settings.log.files_keep_days as usize;
        Some((
            DailyFiles::new(&settings.log.files_dir, "events", keep).context("events files")?,
            DailyFiles::new(&settings.log.files_dir, "counts", keep).context("counts files")?,
        ))
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
        bus.clone(),
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
    let hb = bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        || serde_json::Value::Null,
    );
    let (_addr, server) =
        telemetry.serve(settings.http_listen(DEFAULT_PORT), axum::Router::new(), shutdown.clone()).await?;
    let stats = ingest.run(shutdown.clone()).await;
    let _ = hb.await;
    tracing::info!(
        events = stats.events.load(std::sync::atomic::Ordering::Relaxed),
        counts = stats.counts.load(std::sync::atomic::Ordering::Relaxed),
        "log stopped"
    );
    bus.emit(bus.event(EventKind::Activity, "service.stop", "log stopped"));
    bus.events().flush(Duration::from_secs(3)).await;
    let _ = server.await;
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
) -> anyhow::Result<()> {
    let span = query::parse_span(since).map_err(anyhow::Error::msg)?;
    let clock = settings.clock.clock()?;
    let store = store(&settings).await?;
    let mut from = clock.now() - span;
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let events = store.events_since(from, service.as_deref(), kind, limit).await.context("querying events")?;
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
) -> anyhow::Result<()> {
    let span = query::parse_span(since).map_err(anyhow::Error::msg)?;
    let clock = settings.clock.clock()?;
    let store = store(&settings).await?;
    let samples = store
        .counts_since(clock.now() - span, source.as_deref(), ticker.as_deref())
        .await
        .context("querying counts")?;
    let rows = query::count_rows(&samples, by);
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        println!("{}", query::count_header());
        for r in &rows {
            println!("{}", query::count_line(r));
        }
    }
    Ok(())
}
