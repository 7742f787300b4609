//! cashtag-history: months of data on day one.
//!
//! A new installation would otherwise wait months of live collection before the study or
//! a model means anything. Two ways in, both through the live parsers and stored exactly
//! as live records (the same natural keys, so nothing is ever stored twice):
//! - [`backfill`]: the providers' history APIs — Alpaca bars and trades, X recent and
//!   full-archive search, StockTwits symbol streams paged back — page by page, honouring
//!   rate limits, with a checkpoint per task so a rerun continues where it stopped;
//! - [`import`]: archives on disk — tweet JSON lines (X v1.1, v2, StockTwits), OHLCV CSV
//!   (Yahoo Finance), Alpaca bar pages — files or directory trees, gzip or not; a bad line
//!   is reported with its file and line number and skipped.
//!
//! Both score posts as the live service does ([`cashtag_intake::posts::PostFilter`]) and
//! write through [`store::Store`]: the MongoDB and Kinesis sinks behind the operator's
//! flags, retried while a store is briefly down.

pub mod alpaca;
pub mod archive;
pub mod backfill;
pub mod import;
pub mod prices;
pub mod session;
pub mod stocktwits;
pub mod store;
pub mod x;

/// Why history work stopped.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Bad arguments or configuration (exit code 2).
    #[error("{0}")]
    Input(String),
    /// The provider refused the credentials or the plan lacks the endpoint.
    #[error("{provider}: {message}")]
    Refused { provider: &'static str, message: String },
    /// The provider or the network failed; a rerun resumes from the checkpoint.
    #[error("{provider}: {message}")]
    Provider { provider: &'static str, message: String },
    /// A store stayed unreachable; what was stored stays, a rerun continues.
    #[error("{0}")]
    Store(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl cashtag_core::exit::ExitStatus for HistoryError {
    /// 2 bad input, 3 refused by the provider, 4 provider or network, 5 a store.
    fn exit_code(&self) -> u8 {
        match self {
            HistoryError::Input(_) => 2,
            HistoryError::Refused { .. } => 3,
            HistoryError::Provider { .. } | HistoryError::Io { .. } => 4,
            HistoryError::Store(_) => 5,
        }
    }
}

/// What a backfill or an import did, per file or task and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Lines, or provider items, read.
    pub read: u64,
    /// Records newly stored.
    pub stored: u64,
    /// Records the store already had (an earlier run, or the live collection).
    pub duplicates: u64,
    /// Items that are fine but not kept: no watched ticker, a repost, another language.
    pub skipped: u64,
    /// `skipped` by reason ("repost", "other language", "not on the watchlist", …).
    pub skipped_by: std::collections::BTreeMap<String, u64>,
    /// Copies of a stored post under another ticker (the same tweet in two tickers'
    /// folders): not stored again, their tickers added to the stored post's.
    pub merged: u64,
    /// Lines or items that did not parse, or that a store refused for good.
    pub rejected: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.read += o.read;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.skipped += o.skipped;
        for (why, n) in &o.skipped_by {
            *self.skipped_by.entry(why.clone()).or_default() += n;
        }
        self.merged += o.merged;
        self.rejected += o.rejected;
    }

    /// One item skipped, and why.
    pub fn skip(&mut self, why: &str) {
        self.skipped += 1;
        *self.skipped_by.entry(why.to_string()).or_default() += 1;
    }

    /// "3 repost, 2 other language", or "" when nothing was skipped.
    pub fn skipped_reasons(&self) -> String {
        self.skipped_by.iter().map(|(why, n)| format!("{n} {why}")).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} read, {} stored, {} duplicates", self.read, self.stored, self.duplicates)?;
        if self.merged > 0 {
            write!(f, ", {} merged into a stored post's tickers", self.merged)?;
        }
        write!(f, ", {} skipped", self.skipped)?;
        if !self.skipped_by.is_empty() {
            write!(f, " ({})", self.skipped_reasons())?;
        }
        write!(f, ", {} rejected", self.rejected)
    }
}
