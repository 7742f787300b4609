//! cashtag-stocks: live market data for the watchlist while the market is open, from the
//! configured provider (or the simulated market), into MongoDB and Kinesis.

use std::path::PathBuf;

use anyhow::Context;
use cashtag_core::{CountKind, Settings};
use cashtag_intake::IntakeConfig;
use cashtag_intake::service::{FetcherSpec, run_fetcher};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cashtag-stocks",
    version,
    about = "Fetches live market data for the watchlist while the market is open"
)]
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
        let record = record
            .or_else(|| (!settings.stocks.record_dir.is_empty()).then(|| settings.stocks.record_dir.clone().into()));
        let recorder = record
            .map(|d| cashtag_sources::Recorder::new(&d).with_context(|| format!("recording directory {}", d.display())))
            .transpose()?;
        let spec = FetcherSpec {
            service: "stocks",
            default_port: 9102,
            source: cashtag_sources::market::from_settings(&settings)?,
            config: IntakeConfig {
                bars_from_trades: settings.stocks.bars_from_trades,
                primary_kind: CountKind::Trades,
                ..Default::default()
            },
            recorder,
            transform: None,
        };
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_fetcher(&settings, spec))
            .map_err(anyhow::Error::msg)
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-stocks: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
