//! cashtag-twitter: posts that mention the watchlist, from X and the other microblogs,
//! scored for sentiment, into MongoDB and Kinesis while the market is open; and `score`,
//! the sentiment engine on stdin.

mod score_cmd;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use cashtag_bus::Bus;
use cashtag_core::{CountKind, EventKind, Settings};
use cashtag_intake::{Intake, IntakeConfig};
use cashtag_telemetry::Telemetry;
use clap::{Parser, Subcommand};

const DEFAULT_PORT: u16 = 9103;

#[derive(Parser)]
#[command(name = "cashtag-twitter", version, about = "Collects and scores posts that mention the watchlist while the market is open")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run: collect while the manager says the market is open.
    Run {
        /// Record every raw provider payload here, rotated daily (for `replay`).
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Score texts from stdin (one per line, or JSON lines with a "text" field); print
    /// {"text", "vader": {neg, neu, pos, compound}, "finance": {score, label}} per line.
    Score(score_cmd::ScoreArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(args) => score_cmd::run(&args),
        Command::Run { record } => {
            cashtag_telemetry::init_tracing("twitter");
            (|| -> anyhow::Result<()> {
                let settings = Settings::load(cli.config.as_deref()).context("invalid configuration")?;
                tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(settings, record))
            })()
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-twitter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, record: Option<PathBuf>) -> anyhow::Result<()> {
    let clock = settings.clock.clock()?;
    let bus = Bus::from_settings(&settings, "twitter", clock)?;
    let telemetry = Telemetry::new("twitter");
    let shutdown = cashtag_telemetry::shutdown_token();
    let sources = cashtag_sources::social::from_settings(&settings)?;
    bus.emit(bus.event(
        EventKind::Activity,
        "service.start",
        format!("twitter {} starting, sources {}", env!("CARGO_PKG_VERSION"), sources.names().join(", ")),
    ));

    let fanout = Arc::new(cashtag_sinks::fanout_from_settings(&settings, &bus, &telemetry).await.map_err(anyhow::Error::msg)?);
    let watchlist = bus.watch_watchlist(settings.watchlist.load()?);
    let record_dir = record.or_else(|| (!settings.twitter.record_dir.is_empty()).then(|| settings.twitter.record_dir.clone().into()));
    let recorder = record_dir.map(|d| cashtag_sources::Recorder::new(&d).with_context(|| format!("recording directory {}", d.display()))).transpose()?;
    let mut filter = cashtag_intake::posts::PostFilter::new(settings.twitter.languages.clone(), settings.twitter.include_reposts);
    let counts = bus.counts_writer(settings.streams.counts_maxlen)?;
    let intake = Intake::new(
        bus.clone(),
        fanout.clone(),
        sources,
        watchlist,
        counts.clone(),
        IntakeConfig { bars_from_trades: false, primary_kind: CountKind::Posts, ..Default::default() },
    )
    .with_recorder(recorder)
    .with_transform(Box::new(move |r| filter.apply(r)));
    let status = intake.status();

    let hb_fan = fanout.clone();
    let health = telemetry.health.clone();
    let heartbeat = bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        move || {
            let info = serde_json::json!({
                "market_on": status.on.load(Ordering::Relaxed),
                "posts": status.records.load(Ordering::Relaxed),
                "dropped": status.dropped.load(Ordering::Relaxed),
                "sinks": serde_json::to_value(hb_fan.status()).unwrap_or_default(),
            });
            health.set(true, info.clone());
            info
        },
    );
    let (_addr, server) = telemetry.serve(settings.http_listen(DEFAULT_PORT), axum::Router::new(), shutdown.clone()).await?;
    intake.run(shutdown.clone()).await;

    let _ = heartbeat.await;
    let fanout = Arc::try_unwrap(fanout).map_err(|_| anyhow::anyhow!("fan-out still shared at shutdown"))?;
    if !fanout.shutdown(Duration::from_secs(7)).await {
        tracing::error!("sinks did not finish within 7 s");
    }
    counts.flush(Duration::from_secs(1)).await;
    bus.emit(bus.event(EventKind::Activity, "service.stop", "twitter stopped"));
    bus.events().flush(Duration::from_secs(2)).await;
    let _ = server.await;
    Ok(())
}
