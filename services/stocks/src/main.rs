//! cashtag-stocks: live market data for the watchlist while the market is open, from the
//! configured provider (or the simulated market), into MongoDB and Kinesis; and market
//! history (`backfill` from Alpaca, `import` of OHLCV files) the same way.

mod history_cmd;

use std::path::PathBuf;

use cashtag_core::{CountKind, Settings};
use cashtag_intake::IntakeConfig;
use cashtag_intake::cli::RunArgs;
use cashtag_intake::service::{FetcherSpec, recorder, run_fetcher};
use cashtag_runtime::{Failure, Globals, Logging};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cashtag-stocks",
    version,
    about = "Fetches live market data for the watchlist while the market is open"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run: fetch while the manager says the market is open.
    Run(RunArgs),
    /// Fetch history from Alpaca (bars, optionally trades) and store it as live records;
    /// resumable: a rerun continues where the last one stopped.
    Backfill(history_cmd::BackfillArgs),
    /// Import price files (Yahoo Finance OHLCV CSV, Alpaca bar pages); a bad line is
    /// reported with its file and line and skipped.
    Import(history_cmd::ImportArgs),
    /// The records a sink refused for good (kept beside the journal): list them, or write
    /// them to their sink again once the cause is fixed.
    #[command(subcommand_value_name = "ACTION")]
    DeadLetters(cashtag_intake::cli::DeadLetterArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let quiet = cli.globals.quiet;
    match cli.command {
        Command::Run(RunArgs { record }) => {
            cashtag_runtime::main("cashtag-stocks", Logging::Service, cli.globals.config.as_deref(), |s| run(s, record))
        }
        Command::Backfill(a) => {
            cashtag_runtime::main("cashtag-stocks", Logging::Cli, cli.globals.config.as_deref(), |s| async move {
                history_cmd::backfill(&s, a, quiet).await
            })
        }
        Command::Import(a) => {
            cashtag_runtime::main("cashtag-stocks", Logging::Cli, cli.globals.config.as_deref(), |s| async move {
                history_cmd::import(&s, a, quiet).await
            })
        }
        Command::DeadLetters(a) => {
            cashtag_runtime::main("cashtag-stocks", Logging::Cli, cli.globals.config.as_deref(), |s| async move {
                cashtag_intake::dead_letters::run(&s, "stocks", a).await
            })
        }
    }
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
