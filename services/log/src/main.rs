//! cashtag-log: Stores the suite's events, errors and per-minute counts.
//!
//! Not built yet: this binary only has its command-line surface; running it fails
//! clearly instead of pretending to work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cashtag-log", version, about = "Stores the suite's events, errors and per-minute counts (not built yet)")]
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
    eprintln!("cashtag-log: not built yet");
    std::process::ExitCode::FAILURE
}
