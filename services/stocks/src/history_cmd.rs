//! `backfill` and `import`: market history through the live parsers into the stores.

use std::time::Duration;

use cashtag_core::{Settings, Timeframe};
use cashtag_history::alpaca::AlpacaHistory;
use cashtag_history::backfill::{self, RunOptions};
use cashtag_history::import::{self, PriceFormat};
use cashtag_history::session::{self, Session};
use cashtag_intake::cli::{BackfillRange, ImportFiles};
use cashtag_runtime::Failure;

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    range: BackfillRange,
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
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// auto, ohlcv-csv (Yahoo Finance) or alpaca-bars (recorded /v2/stocks/bars pages).
    #[arg(long, default_value = "auto")]
    format: PriceFormat,
    /// 1d or 1m; default: what the CSV header says (Date or Datetime).
    #[arg(long)]
    timeframe: Option<Timeframe>,
    #[command(flatten)]
    files: ImportFiles,
}

pub async fn backfill(settings: &Settings, a: BackfillArgs, quiet: bool) -> Result<(), Failure> {
    if !["raw", "split", "dividend", "all"].contains(&a.adjustment.as_str()) {
        return Err(Failure::usage(format!("--adjustment {:?}: raw, split, dividend or all", a.adjustment)));
    }
    if a.limit == 0 || a.limit > 10_000 {
        return Err(Failure::usage("--limit must be 1 to 10000"));
    }
    let r = &a.range;
    let (from, to) = session::range(r.from, r.to)?;
    let wl = settings.watchlist.load()?;
    let tickers: Vec<String> = session::tickers(&r.tickers, &wl)?.iter().map(|t| t.to_string()).collect();
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
            r.from,
            r.to,
            s.store.targets()
        );
        let opts = RunOptions { what, filter: None, restart: r.restart, max_errors: r.retries.max(1) };
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
    s.finish(&report, r.json).await;
    Ok(())
}

pub async fn import(settings: &Settings, a: ImportArgs, quiet: bool) -> Result<(), Failure> {
    let f = &a.files;
    let mut s = Session::open(settings, "stocks", quiet, f.dry_run).await?;
    let what = s.start_import(f.paths.len());
    let result = import::prices(&mut s.store, &s.bus, a.format, a.timeframe, &f.paths, &s.progress).await;
    Ok(s.end_import(&what, result, f.json).await?)
}
