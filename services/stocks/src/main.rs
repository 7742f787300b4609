//! cashtag-stocks: live market data for the watchlist while the market is open, from the
//! configured provider (or the simulated market), into MongoDB and Kinesis.

use std::path::PathBuf;

use cashtag_core::{CountKind, Settings};
use cashtag_intake::IntakeConfig;
use cashtag_intake::service::{FetcherSpec, recorder, run_fetcher};
use cashtag_runtime::{Failure, Logging};
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
    let Command::Run { record } = cli.command;
    cashtag_runtime::main("cashtag-stocks", Logging::Service, cli.config.as_deref(), |settings| run(settings, record))
}

async fn run(settings: Settings, record: Option<PathBuf>) -> Result<(), Failure> {
    let spec = FetcherSpec {
        service: "stocks",
        default_port: 9102,
        sources: cashtag_sources::registry::market_source(&settings).into(),
        config: IntakeConfig {
            bars_from_trades: settings.stocks.bars_from_trades,
            primary_kind: CountKind::Trades,
            ..Default::default()
        },
        recorder: recorder(record, &settings.stocks.record_dir)?,
        transform: None,
    };
    run_fetcher(&settings, spec).await
}
