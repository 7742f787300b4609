//! `backfill` and `import`: market history through the live parsers into the stores.

use std::path::PathBuf;
use std::time::Duration;

use cashtag_core::{Settings, Timeframe};
use cashtag_history::alpaca::AlpacaHistory;
use cashtag_history::backfill::{self, RunOptions};
use cashtag_history::import::{self, PriceFormat};
use cashtag_history::session::{self, Session};
use cashtag_runtime::Failure;
use chrono::NaiveDate;

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// First New York date.
    #[arg(long)]
    from: NaiveDate,
    /// Last New York date (inclusive).
    #[arg(long)]
    to: NaiveDate,
    /// Tickers (comma-separated); default: the watchlist.
    #[arg(long, value_delimiter = ',')]
    tickers: Vec<String>,
    /// Bar timeframe: 1Min or 1Day.
    #[arg(long, default_value = "1Day")]
    timeframe: Timeframe,
    /// Also fetch every trade (`/v2/stocks/trades`): large.
    #[arg(long)]
    trades: bool,
    /// Price adjustment of bars: raw, split, dividend or all.
    #[arg(long, default_value = "all")]
    adjustment: String,
    /// Feed: iex or sip (default: stocks.alpaca.feed).
    #[arg(long)]
    feed: Option<String>,
    /// Items per page (Alpaca allows up to 10,000).
    #[arg(long, default_value_t = 10_000)]
    limit: u32,
    /// Forget the checkpoints and fetch every range from its start.
    #[arg(long)]
    restart: bool,
    /// Tries of a request that fails (network, server error) before the run stops; a
    /// rerun resumes from the checkpoint.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// auto, ohlcv-csv (Yahoo Finance) or alpaca-bars (recorded /v2/stocks/bars pages).
    #[arg(long, default_value = "auto")]
    format: PriceFormat,
    /// 1d or 1m; default: what the CSV header says (Date or Datetime).
    #[arg(long)]
    timeframe: Option<Timeframe>,
    /// Parse, check and score only; store nothing (to try an archive first).
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Files or directories (walked recursively; gzip is read as such).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub async fn backfill(settings: &Settings, a: BackfillArgs, quiet: bool) -> Result<(), Failure> {
    if !["raw", "split", "dividend", "all"].contains(&a.adjustment.as_str()) {
        return Err(Failure::usage(format!("--adjustment {:?}: raw, split, dividend or all", a.adjustment)));
    }
    if a.limit == 0 || a.limit > 10_000 {
        return Err(Failure::usage("--limit must be 1 to 10000"));
    }
    let (from, to) = session::range(a.from, a.to)?;
    let wl = settings.watchlist.load()?;
    let tickers: Vec<String> = session::tickers(&a.tickers, &wl)?.iter().map(|t| t.to_string()).collect();
    let al = &settings.stocks.alpaca;
    let pager = AlpacaHistory {
        rest_url: al.rest_url.clone(),
        key_id: al.key_id.clone(),
        secret_key: al.secret_key.clone(),
        feed: a.feed.unwrap_or_else(|| al.feed.as_str().to_string()),
        adjustment: a.adjustment,
        limit: a.limit,
        trades: false,
        timeframe: a.timeframe,
        http: cashtag_sources::http::client(Duration::from_secs(30)),
    };
    let mut s = Session::open(settings, "stocks", quiet, false).await?;
    let mut report = import::Report::default();
    let mut kinds = vec![pager.clone()];
    if a.trades {
        kinds.push(AlpacaHistory { trades: true, ..pager });
    }
    for p in kinds {
        let tasks = p.tasks(&tickers, from, to);
        let what = format!(
            "alpaca {} of {} tickers {}..{} into {}",
            if p.trades { "trades".to_string() } else { format!("{} bars", p.timeframe.as_str()) },
            tickers.len(),
            a.from,
            a.to,
            s.store.targets()
        );
        let opts = RunOptions { what, filter: None, restart: a.restart, max_errors: a.retries.max(1) };
        match backfill::run(&p, &tasks, &mut s.store, &s.bus, opts, &s.progress).await {
            Ok(r) => {
                report.total.add(&r.total);
                report.files.extend(r.files);
            }
            Err(e) => {
                s.abandon().await;
                return Err(e.into());
            }
        }
    }
    s.finish(&report, a.json).await;
    Ok(())
}

pub async fn import(settings: &Settings, a: ImportArgs, quiet: bool) -> Result<(), Failure> {
    let mut s = Session::open(settings, "stocks", quiet, a.dry_run).await?;
    let what = s.start_import(a.paths.len());
    let result = import::prices(&mut s.store, &s.bus, a.format, a.timeframe, &a.paths, &s.progress).await;
    Ok(s.end_import(&what, result, a.json).await?)
}
