//! cashtag-analysis: the research half of cashtag.
//!
//! - [`rollup`]: per-ticker one-minute bars of sentiment and price, recomputed
//!   idempotently from the raw collections;
//! - [`series`]: interval series over regular sessions (5m, 20m, 1h, 1d …), never across
//!   the overnight gap unless asked;
//! - [`study`]: "does sentiment lead price moves?" — correlations, cross-correlation by
//!   lag, Granger causality both ways, an event study around post-volume spikes,
//!   Benjamini–Hochberg across tickers and a pooled panel result;
//! - [`report`]: `results.json`, `report.md` and `report.html` with SVG plots;
//! - [`export`]: collections to CSV or Parquet for notebooks;
//! - [`csv`]: the same statistics for any two columns of a CSV file.

pub mod csv;
pub mod export;
pub mod follow;
pub mod report;
pub mod rollup;
pub mod series;
pub mod study;
pub mod svg;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    NoData(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl cashtag_core::exit::ExitStatus for AnalysisError {
    /// 3 bad input, 4 no data for the request, 5 MongoDB, 1 other.
    fn exit_code(&self) -> u8 {
        match self {
            AnalysisError::Mongo(_) => 5,
            AnalysisError::Input(_) => 3,
            AnalysisError::NoData(_) => 4,
            AnalysisError::Io { .. } | AnalysisError::Parquet(_) => 1,
        }
    }
}

/// What to study: which tickers, which sessions, at what grain.
#[derive(Debug, Clone)]
pub struct StudyRequest {
    pub tickers: Vec<String>,
    /// New York session dates, inclusive.
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub interval: chrono::TimeDelta,
    pub measure: series::Measure,
    /// Let the first return of a session span the overnight gap.
    pub overnight: bool,
    pub config: study::StudyConfig,
}

/// Loads the roll-ups of the request's sessions, builds the series and runs the study.
/// The market proxy (when configured and present) is loaded too, for abnormal returns.
pub async fn study_from_db(
    db: &mongodb::Database,
    calendar: &cashtag_calendar::Calendar,
    req: &StudyRequest,
) -> Result<(study::StudyResult, Vec<series::TickerSeries>), AnalysisError> {
    let sessions = calendar.sessions(req.from, req.to);
    let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else {
        return Err(AnalysisError::Input(format!("no NYSE sessions between {} and {}", req.from, req.to)));
    };
    let mut tickers = req.tickers.clone();
    if let Some(m) = &req.config.market
        && !tickers.contains(m)
    {
        tickers.push(m.clone());
    }
    let daily = req.interval >= chrono::TimeDelta::days(1);
    let rows = if daily {
        series::load_daily(db, &tickers, &sessions).await?
    } else {
        series::load(db, &tickers, first.open, last.close).await?
    };
    if rows.values().all(|r| r.is_empty()) {
        return Err(AnalysisError::NoData(format!(
            "no roll-ups for {} between {} and {}; run `cashtag-analysis aggregate --from {} --to {}` first",
            req.tickers.join(","),
            req.from,
            req.to,
            req.from,
            req.to
        )));
    }
    let series: Vec<series::TickerSeries> = tickers
        .iter()
        .filter(|t| rows.get(*t).is_some_and(|r| !r.is_empty()) || req.tickers.contains(t))
        .map(|t| series::build(t, &rows[t], &sessions, req.interval, req.measure, req.overnight))
        .collect();
    let mut result = study::run(&series, &req.config);
    if daily {
        result.notes.push(series::DAILY_CUTOFF.to_string());
    }
    Ok((result, series))
}
