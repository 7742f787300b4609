//! Interval series for the study: per ticker, per interval of the regular session, the
//! sentiment (a chosen measure), the post volume, and the price's log-return — never
//! across the overnight gap unless asked.
//!
//! A day (`1d`) is different: its sentiment is that of the posts since the previous
//! session's close, up to (not including) this session's close — what is known when the
//! day's closing price is — and its return is close to close. Where daily bars were
//! rolled up (`price_1d`), the close is the adjusted close ([`load_daily`]).

use std::collections::BTreeMap;

use bson::{Document, doc};
use cashtag_calendar::Session;
use cashtag_core::collections;
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use mongodb::Database;
use serde::Serialize;

use crate::AnalysisError;

/// One ticker-minute of the roll-ups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinuteRow {
    pub posts: f64,
    /// Distinct authors of the minute's posts.
    pub authors: f64,
    pub finance_sum: f64,
    pub vader_sum: f64,
    pub bullish: f64,
    pub bearish: f64,
    pub close: Option<f64>,
}

/// What "sentiment" means in the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Mean finance score of the interval's posts (missing without posts).
    FinanceMean,
    /// Mean VADER compound (missing without posts).
    VaderMean,
    /// (bullish − bearish) / posts (missing without posts).
    NetBullish,
    /// Number of posts.
    Posts,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::FinanceMean => "finance_mean",
            Measure::VaderMean => "vader_mean",
            Measure::NetBullish => "net_bullish",
            Measure::Posts => "posts",
        }
    }
}

impl std::str::FromStr for Measure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "finance_mean" | "finance" => Ok(Measure::FinanceMean),
            "vader_mean" | "vader" => Ok(Measure::VaderMean),
            "net_bullish" => Ok(Measure::NetBullish),
            "posts" => Ok(Measure::Posts),
            _ => Err(format!("unknown measure {s:?}: finance_mean, vader_mean, net_bullish or posts")),
        }
    }
}

/// Parses `5m`, `20m`, `1h`, `1d` (a day = one whole session).
pub fn parse_interval(s: &str) -> Result<TimeDelta, crate::AnalysisError> {
    let bad = || crate::AnalysisError::Input(format!("interval {s:?} is not like 5m, 20m, 1h or 1d"));
    let d = cashtag_core::span::parse(s).map_err(|_| bad())?;
    if d <= TimeDelta::zero() {
        return Err(crate::AnalysisError::Input(format!("interval {s:?} must be positive")));
    }
    // Whole minutes within a session, or exactly one session day.
    let minutes = d < TimeDelta::days(1) && d.num_seconds() % 60 == 0;
    if minutes || d == TimeDelta::days(1) { Ok(d) } else { Err(bad()) }
}

impl TickerSeries {
    /// An empty series of `ticker`, to push intervals onto.
    pub fn new(ticker: &str) -> Self {
        TickerSeries {
            ticker: ticker.to_string(),
            starts: vec![],
            session: vec![],
            sentiment: vec![],
            posts: vec![],
            close: vec![],
            ret: vec![],
        }
    }
}

/// A ticker's interval series; all vectors have one entry per interval.
#[derive(Debug, Clone, Serialize)]
pub struct TickerSeries {
    pub ticker: String,
    pub starts: Vec<DateTime<Utc>>,
    /// Index of the session each interval belongs to.
    pub session: Vec<usize>,
    pub sentiment: Vec<f64>,
    pub posts: Vec<f64>,
    /// Closing price of the interval (carried forward within a session; NaN before the
    /// session's first trade).
    pub close: Vec<f64>,
    /// ln(close_t / close_{t−1}); NaN at a session's first interval (unless overnight
    /// returns are allowed) and where a price is missing.
    pub ret: Vec<f64>,
}

/// Builds the series of one ticker from its minute rows.
pub fn build(
    ticker: &str,
    rows: &BTreeMap<DateTime<Utc>, MinuteRow>,
    sessions: &[Session],
    interval: TimeDelta,
    measure: Measure,
    overnight: bool,
) -> TickerSeries {
    let mut s = TickerSeries::new(ticker);
    let mut prev_close = f64::NAN;
    let daily = interval >= TimeDelta::days(1);
    for (si, sess) in sessions.iter().enumerate() {
        let step = if daily { sess.close - sess.open } else { interval };
        let mut start = sess.open;
        let mut last_close = f64::NAN;
        let mut first = true;
        while start < sess.close {
            let end = (start + step).min(sess.close);
            let mut acc = MinuteRow::default();
            let posts_from = if daily { daily_cutoff(sessions, si) } else { start };
            for (_, r) in rows.range(posts_from..end) {
                acc.posts += r.posts;
                acc.authors += r.authors;
                acc.finance_sum += r.finance_sum;
                acc.vader_sum += r.vader_sum;
                acc.bullish += r.bullish;
                acc.bearish += r.bearish;
            }
            for (_, r) in rows.range(start..end) {
                if let Some(c) = r.close {
                    last_close = c;
                }
            }
            let value = match measure {
                Measure::Posts => acc.posts,
                // No posts: no sentiment — missing, never a neutral 0.
                _ if acc.posts == 0.0 => f64::NAN,
                Measure::FinanceMean => acc.finance_sum / acc.posts,
                Measure::VaderMean => acc.vader_sum / acc.posts,
                Measure::NetBullish => (acc.bullish - acc.bearish) / acc.posts,
            };
            let base = if first && !overnight && !daily { f64::NAN } else { prev_close };
            s.starts.push(start);
            s.session.push(si);
            s.sentiment.push(value);
            s.posts.push(acc.posts);
            s.close.push(last_close);
            s.ret.push((last_close / base).ln());
            prev_close = last_close;
            first = false;
            start = end;
        }
    }
    s
}

/// Where a session day's posts start: the previous session's close (24 hours before this
/// close for the first session of a study).
pub fn daily_cutoff(sessions: &[Session], i: usize) -> DateTime<Utc> {
    if i == 0 { sessions[0].close - TimeDelta::days(1) } else { sessions[i - 1].close }
}

/// How the daily series is cut, for reports.
pub const DAILY_CUTOFF: &str = "A day's sentiment is that of the posts from the previous session's close up to \
this session's close (the first day: the 24 hours before its close); its return is close to close, from \
adjusted closes where daily bars were imported or backfilled.";

/// Per ticker, its minute rows.
pub type Rows = BTreeMap<String, BTreeMap<DateTime<Utc>, MinuteRow>>;

/// Adds one `sentiment_1m` document to `out`.
pub fn add_sentiment_doc(out: &mut Rows, d: &Document) {
    let (Ok(t), Ok(m)) = (d.get_str("ticker"), d.get_datetime("minute")) else { return };
    let row = out.entry(t.to_string()).or_default().entry(m.to_chrono()).or_default();
    let num = |k: &str| {
        d.get_f64(k)
            .or_else(|_| d.get_i64(k).map(|v| v as f64))
            .or_else(|_| d.get_i32(k).map(|v| v as f64))
            .unwrap_or(0.0)
    };
    row.posts = num("posts");
    row.authors = num("authors");
    row.finance_sum = num("finance_sum");
    row.vader_sum = num("vader_sum");
    row.bullish = num("bullish");
    row.bearish = num("bearish");
}

/// Adds one `price_1m` document to `out`.
pub fn add_price_doc(out: &mut Rows, d: &Document) {
    let (Ok(t), Ok(m), Ok(close)) = (d.get_str("ticker"), d.get_datetime("minute"), d.get_f64("close")) else {
        return;
    };
    out.entry(t.to_string()).or_default().entry(m.to_chrono()).or_default().close = Some(close);
}

/// Loads the minute roll-ups of `tickers` in `[from, to)`.
pub async fn load(
    db: &Database,
    tickers: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Rows, AnalysisError> {
    let mut out: Rows = tickers.iter().map(|t| (t.clone(), BTreeMap::new())).collect();
    let range = doc! {"ticker": {"$in": tickers}, "minute": {"$gte": bson::DateTime::from_chrono(from), "$lt": bson::DateTime::from_chrono(to)}};
    let mut c = db.collection::<Document>(collections::SENTIMENT_1M).find(range.clone()).await?;
    while let Some(d) = c.try_next().await? {
        add_sentiment_doc(&mut out, &d);
    }
    let mut c = db.collection::<Document>(collections::PRICE_1M).find(range).await?;
    while let Some(d) = c.try_next().await? {
        add_price_doc(&mut out, &d);
    }
    Ok(out)
}

/// The rows for daily work over `sessions`: the minute roll-ups from the first day's
/// post cut-off to the last close, with each session's adjusted close from `price_1d`
/// (where there is one) as the close of the session's last minute.
pub async fn load_daily(db: &Database, tickers: &[String], sessions: &[Session]) -> Result<Rows, AnalysisError> {
    let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else { return Ok(Rows::new()) };
    let mut out = load(db, tickers, daily_cutoff(sessions, 0).min(first.open), last.close).await?;
    add_daily(db, tickers, first.open, last.close, &mut out).await?;
    Ok(out)
}

/// Adds the adjusted closes of `price_1d` for the sessions that close in `[from, to]`.
pub async fn add_daily(
    db: &Database,
    tickers: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &mut Rows,
) -> Result<(), AnalysisError> {
    let range = doc! {"ticker": {"$in": tickers}, "close_at": {"$gte": bson::DateTime::from_chrono(from), "$lte": bson::DateTime::from_chrono(to)}};
    let mut c = db.collection::<Document>(collections::PRICE_1D).find(range).await?;
    while let Some(d) = c.try_next().await? {
        add_daily_doc(out, &d);
    }
    Ok(())
}

/// Adds one `price_1d` document to `out`: its adjusted close at the session's last minute.
pub fn add_daily_doc(out: &mut Rows, d: &Document) {
    let (Ok(t), Ok(at)) = (d.get_str("ticker"), d.get_datetime("close_at")) else { return };
    let Some(close) = d.get_f64("adj_close").or_else(|_| d.get_f64("close")).ok().filter(|c| c.is_finite() && *c > 0.0)
    else {
        return;
    };
    let minute = at.to_chrono() - TimeDelta::minutes(1);
    out.entry(t.to_string()).or_default().entry(minute).or_default().close = Some(close);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_inside_sessions() {
        let cal = cashtag_calendar::Calendar::nyse();
        let sessions = cal.sessions("2026-11-24".parse().unwrap(), "2026-11-25".parse().unwrap());
        let mut rows = BTreeMap::new();
        let open = sessions[0].open;
        for m in 0..390 {
            rows.insert(
                open + TimeDelta::minutes(m),
                MinuteRow { posts: 1.0, finance_sum: 0.5, close: Some(100.0 + m as f64), ..Default::default() },
            );
        }
        let s = build("AAPL", &rows, &sessions, TimeDelta::minutes(5), Measure::FinanceMean, false);
        assert_eq!(s.starts.len(), 2 * 78);
        assert!(s.ret[0].is_nan() && s.ret[78].is_nan(), "no return across the open or overnight");
        assert!((s.ret[1] - (109.0f64 / 104.0).ln()).abs() < 1e-12);
        assert_eq!(s.sentiment[0], 0.5);
        assert!(s.sentiment[80].is_nan(), "no posts on the second day: missing, not 0");
        let d = build("AAPL", &rows, &sessions, TimeDelta::days(1), Measure::Posts, true);
        assert_eq!(d.posts, vec![390.0, 0.0]);
        assert!(d.ret[1].is_nan(), "the second day has no trades, so no price");
        assert_eq!(parse_interval("20m").unwrap(), TimeDelta::minutes(20));
        assert!(parse_interval("2d").is_err());
    }
}
