//! The command line both fetchers share. `cashtag-stocks` and `cashtag-twitter` have the
//! same shape — `run` (the service), `backfill` (a provider's history), `import` (archives
//! on disk) — and these are the options they have in common, typed once: each fetcher
//! flattens them into its own commands and adds what only it has (the options of every
//! command are [`cashtag_runtime::Globals`]).

use std::path::PathBuf;

use chrono::NaiveDate;

/// `run`: fetch while the manager says the market is open.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Record every raw provider payload here, rotated daily (for `replay`).
    #[arg(long)]
    pub record: Option<PathBuf>,
}

/// What every `backfill` takes: the range, the tickers, and how to resume.
#[derive(Debug, clap::Args)]
pub struct BackfillRange {
    /// First New York date.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last New York date (inclusive).
    #[arg(long)]
    pub to: NaiveDate,
    /// Tickers (comma-separated); default: the watchlist.
    #[arg(long, value_delimiter = ',')]
    pub tickers: Vec<String>,
    /// Forget the checkpoints and fetch every range from its start.
    #[arg(long)]
    pub restart: bool,
    /// Tries of a request that fails (network, server error) before the run stops; a
    /// rerun resumes from the checkpoint.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What every `import` takes: what to read, and whether to store it.
#[derive(Debug, clap::Args)]
pub struct ImportFiles {
    /// Parse, check and score only; store nothing (to try an archive first).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Files or directories (walked recursively; gzip is read as such).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `dead-letters`: the records a sink refused for good, kept beside the journal.
#[derive(Debug, clap::Args)]
pub struct DeadLetterArgs {
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

/// A sink's name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkName {
    Mongo,
    Kinesis,
}

impl SinkName {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkName::Mongo => "mongo",
            SinkName::Kinesis => "kinesis",
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterAction {
    /// List them, oldest first: time, sink, key, reason.
    List {
        /// Only this sink's (default: both).
        #[arg(long)]
        sink: Option<SinkName>,
        /// One JSON object per line, the record included.
        #[arg(long)]
        json: bool,
    },
    /// Write a sink's dead letters to it again, once the cause is fixed; what it refuses
    /// again (or cannot take now) stays. Exit 1 when any stays.
    Redrive {
        #[arg(long)]
        sink: SinkName,
    },
}
