//! cashtag-stocks: Fetches live market data for the watchlist while the market is open.
//!
//! Not built yet: this binary only has its command-line surface; running it fails
//! clearly instead of pretending to work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cashtag-stocks", version, about = "Fetches live market data for the watchlist while the market is open (not built yet)")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (not built yet).
    Run,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = (cli.config, cli.command);
    eprintln!("cashtag-stocks: not built yet");
    std::process::ExitCode::FAILURE
}
