//! `backfill` and `import`: posts from the providers' history and from archives, scored
//! and stored as live posts.

use std::time::Duration;

use cashtag_core::Settings;
use cashtag_history::HistoryError;
use cashtag_history::backfill::{self, RunOptions};
use cashtag_history::import::{self, TweetFormat, TweetImport};
use cashtag_history::session::{self, Session};
use cashtag_history::stocktwits::StocktwitsHistory;
use cashtag_history::x::{Endpoint, XSearch};
use cashtag_intake::cli::{BackfillRange, ImportFiles};
use cashtag_intake::posts::PostFilter;
use cashtag_runtime::Failure;

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    range: BackfillRange,
    /// Sources, comma-separated: x, stocktwits.
    #[arg(long, value_delimiter = ',', default_value = "x")]
    sources: Vec<String>,
    /// X search endpoint: auto (full archive when the plan has it), recent or all.
    #[arg(long, default_value = "auto")]
    x_endpoint: String,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// auto (per line), x-v1, x-v2 or stocktwits.
    #[arg(long, default_value = "auto")]
    format: TweetFormat,
    /// The tickers to keep: a watchlist TOML file, or `default` (the built-in list);
    /// default: the configured watchlist.
    #[arg(long)]
    watchlist: Option<String>,
    /// Count the ticker a file's folder is named after (`AAPL/2024-01-02`) for its posts.
    #[arg(long)]
    ticker_from_path: bool,
    #[command(flatten)]
    files: ImportFiles,
}

fn filter(settings: &Settings) -> PostFilter {
    PostFilter::new(settings.twitter.languages.clone(), settings.twitter.include_reposts)
}

pub async fn backfill(settings: &Settings, a: BackfillArgs, quiet: bool) -> Result<(), Failure> {
    let r = &a.range;
    let (from, to) = session::range(r.from, r.to)?;
    for s in &a.sources {
        if !["x", "stocktwits"].contains(&s.as_str()) {
            return Err(Failure::usage(format!("--sources: {s:?} is not x or stocktwits")));
        }
    }
    let wl = settings.watchlist.load()?;
    let tickers = session::tickers(&r.tickers, &wl)?;
    let http = cashtag_sources::http::client(Duration::from_secs(30));
    let mut s = Session::open(settings, "twitter", quiet, false).await?;
    let mut filter = filter(settings);
    let mut report = import::Report::default();
    let result: Result<(), HistoryError> = async {
        for source in &a.sources {
            let r = if source == "x" {
                let cfg = cashtag_sources::social::x::XConfig::from(&settings.twitter);
                let mut x = XSearch::new(&cfg.api_url, cfg.bearer.clone(), http.clone());
                x.endpoint = match a.x_endpoint.as_str() {
                    "recent" => Endpoint::Recent,
                    "all" => Endpoint::All,
                    "auto" => x.detect().await?,
                    other => return Err(HistoryError::Input(format!("--x-endpoint {other:?}: auto, recent or all"))),
                };
                let now = s.bus.clock().now();
                let (f, t, clipped) = x.clip(from, to, now);
                let which = match x.endpoint {
                    Endpoint::All => "full-archive search (/2/tweets/search/all)",
                    Endpoint::Recent => "recent search (/2/tweets/search/recent, the last 7 days)",
                };
                eprintln!("x: using {which}");
                if clipped {
                    eprintln!(
                        "x: the range is cut to {} .. {}: that is what this endpoint serves",
                        cashtag_core::time::rfc3339(&f),
                        cashtag_core::time::rfc3339(&t)
                    );
                }
                if f >= t {
                    eprintln!("x: nothing of the range is within reach; skipped");
                    continue;
                }
                let tasks = x.tasks(&tickers, &cfg, (from, to), f, t)?;
                let what = format!("x {which} of {} tickers {}..{}", tickers.len(), r.from, r.to);
                let opts =
                    RunOptions { what, filter: Some(&mut filter), restart: r.restart, max_errors: r.retries.max(1) };
                backfill::run(&x, &tasks, &mut s.store, &s.bus, opts, &s.progress).await?
            } else {
                let st = &settings.twitter.stocktwits;
                let pager = StocktwitsHistory {
                    base_url: st.url.clone(),
                    every: Duration::from_secs_f64(3600.0 / st.requests_per_hour.max(1) as f64),
                    http: http.clone(),
                };
                let names: Vec<String> = tickers.iter().map(|t| t.to_string()).collect();
                let tasks = pager.tasks(&names, from, to);
                let what = format!("stocktwits symbol streams of {} tickers {}..{}", names.len(), r.from, r.to);
                let opts =
                    RunOptions { what, filter: Some(&mut filter), restart: r.restart, max_errors: r.retries.max(1) };
                backfill::run(&pager, &tasks, &mut s.store, &s.bus, opts, &s.progress).await?
            };
            report.total.add(&r.total);
            report.files.extend(r.files);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            s.finish(&report, r.json).await;
            Ok(())
        }
        Err(e) => {
            s.abandon().await;
            Err(e.into())
        }
    }
}

pub async fn import(settings: &Settings, a: ImportArgs, quiet: bool) -> Result<(), Failure> {
    let wl = session::watchlist(a.watchlist.as_deref(), &settings.watchlist)?;
    let opts = TweetImport {
        format: a.format,
        watched: wl.tickers().into_iter().collect(),
        ticker_from_path: a.ticker_from_path,
    };
    let f = &a.files;
    let mut s = Session::open(settings, "twitter", quiet, f.dry_run).await?;
    let what = s.start_import(f.paths.len());
    // Copies of a post (the same tweet in two tickers' folders) reach the store, which
    // merges their tickers.
    let mut filter = PostFilter::without_dedup(settings.twitter.languages.clone(), settings.twitter.include_reposts);
    let result = import::tweets(&mut s.store, &s.bus, &mut filter, &opts, &f.paths, &s.progress).await;
    Ok(s.end_import(&what, result, f.json).await?)
}
