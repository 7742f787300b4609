//! cashtag-stocks: live market data for the watchlist while the market is open, from the
//! configured provider (or the simulated market), into MongoDB and Kinesis.

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

const DEFAULT_PORT: u16 = 9102;

#[derive(Parser)]
#[command(name = "cashtag-stocks", version, about = "Fetches live market data for the watchlist while the market is open")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run: fetch while the manager says the market is open.
    Run {
        /// Record every raw provider payload here, rotated daily (for `replay`).
        #[arg(long)]
        record: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cashtag_telemetry::init_tracing("stocks");
    let result = (|| -> anyhow::Result<()> {
        let settings = Settings::load(cli.config.as_deref()).context("invalid configuration")?;
        let Command::Run { record } = cli.command;
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(settings, record))
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-stocks: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, record: Option<PathBuf>) -> anyhow::Result<()> {
    let clock = settings.clock.clock()?;
    let bus = Bus::from_settings(&settings, "stocks", clock)?;
    let telemetry = Telemetry::new("stocks");
    let shutdown = cashtag_telemetry::shutdown_token();
    let source = cashtag_sources::market::from_settings(&settings)?;
    bus.emit(bus.event(EventKind::Activity, "service.start", format!("stocks {} starting, source {}", env!("CARGO_PKG_VERSION"), source.name())));

    let fanout = Arc::new(cashtag_sinks::fanout_from_settings(&settings, &bus, &telemetry).await.map_err(anyhow::Error::msg)?);
    let watchlist = bus.watch_watchlist(settings.watchlist.load()?);
    let record_dir = record.or_else(|| (!settings.stocks.record_dir.is_empty()).then(|| settings.stocks.record_dir.clone().into()));
    let recorder = record_dir.map(|d| cashtag_sources::Recorder::new(&d).with_context(|| format!("recording directory {}", d.display()))).transpose()?;
    let counts = bus.counts_writer(settings.streams.counts_maxlen)?;
    let intake = Intake::new(
        bus.clone(),
        fanout.clone(),
        source,
        watchlist,
        counts.clone(),
        IntakeConfig { bars_from_trades: settings.stocks.bars_from_trades, primary_kind: CountKind::Trades, ..Default::default() },
    )
    .with_recorder(recorder);
    let status = intake.status();

    let hb_status = status.clone();
    let hb_fan = fanout.clone();
    let health = telemetry.health.clone();
    let heartbeat = bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        move || {
            let sinks = serde_json::to_value(hb_fan.status()).unwrap_or_default();
            let info = serde_json::json!({
                "market_on": hb_status.on.load(Ordering::Relaxed),
                "records": hb_status.records.load(Ordering::Relaxed),
                "sinks": sinks,
            });
            health.set(true, info.clone());
            info
        },
    );
    let (_addr, server) = telemetry.serve(settings.http_listen(DEFAULT_PORT), axum::Router::new(), shutdown.clone()).await?;
    intake.run(shutdown.clone()).await;

    // Stop: the source is closed; write or spool what the sinks hold.
    let _ = heartbeat.await;
    let fanout = Arc::try_unwrap(fanout).map_err(|_| anyhow::anyhow!("fan-out still shared at shutdown"))?;
    if !fanout.shutdown(Duration::from_secs(7)).await {
        tracing::error!("sinks did not finish within 7 s");
    }
    counts.flush(Duration::from_secs(1)).await;
    bus.emit(bus.event(EventKind::Activity, "service.stop", "stocks stopped"));
    bus.events().flush(Duration::from_secs(2)).await;
    let _ = server.await;
    Ok(())
}
