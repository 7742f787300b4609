//! The study: does sentiment lead price moves?
//!
//! Per ticker: Pearson and Spearman correlation of the sentiment level (and of its change,
//! and of post volume) with the next interval's return; the cross-correlation of
//! sentiment with returns at lags −K..K (positive lag = sentiment first); Granger
//! causality F-tests in both directions for lags 1..L; an event study of cumulative
//! abnormal returns around post-volume spikes. Across tickers: Benjamini–Hochberg
//! corrections (of the primary test, and of every ticker × lag correlation) and a pooled
//! within-ticker result.
//!
//! The primary test of a ticker is the Granger test with L lags ("sentiment's past
//! improves the forecast of returns"); one p-value per ticker, corrected across tickers.

use cashtag_stats::{
    Correlation, EventStudy, GrangerLag, benjamini_hochberg, event_study, granger, pearson, spearman, volume_spikes,
};
use serde::Serialize;

use crate::series::TickerSeries;

#[derive(Debug, Clone, Serialize)]
pub struct StudyConfig {
    /// Cross-correlation lags −K..K.
    pub max_lag: usize,
    /// Granger lags 1..L.
    pub granger_lags: usize,
    pub alpha: f64,
    /// A spike: posts above the trailing mean by this many standard deviations ...
    pub spike_z: f64,
    /// ... over this many intervals.
    pub spike_lookback: usize,
    /// CAR window: ± this many intervals.
    pub event_window: usize,
    /// Market proxy ticker for abnormal returns; when absent from the data, the
    /// cross-section mean of the other tickers (and a warning says so).
    pub market: Option<String>,
    /// A ticker is tested only with this many observations of its primary test (rows
    /// with a return and every lag present) ...
    pub min_observations: usize,
    /// ... and this many posts in the period; the others are listed as not tested.
    pub min_posts: f64,
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            max_lag: 6,
            granger_lags: 4,
            alpha: 0.05,
            spike_z: 3.0,
            spike_lookback: 20,
            event_window: 6,
            market: Some("SPY".into()),
            min_observations: 30,
            min_posts: 30.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LagCorrelation {
    pub lag: i64,
    pub r: f64,
    pub p: f64,
    pub n: usize,
    /// Benjamini–Hochberg across every ticker × lag.
    pub q: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TickerResult {
    pub ticker: String,
    /// Intervals with a return (before a listing, or without a price, there is none).
    pub intervals: usize,
    pub posts: f64,
    /// Rows of the primary test: a return with every lag of returns and sentiment present.
    pub observations: usize,
    /// Why the ticker was not tested (too few posts or observations); `None` = tested.
    pub excluded: Option<String>,
    /// Sentiment level vs the next interval's return.
    pub level: Option<Correlation>,
    pub level_spearman: Option<Correlation>,
    /// Change of sentiment vs the next interval's return.
    pub change: Option<Correlation>,
    /// Post volume vs the next interval's absolute return.
    pub volume: Option<Correlation>,
    pub cross_correlation: Vec<LagCorrelation>,
    pub granger_sentiment_to_returns: Vec<GrangerLag>,
    pub granger_returns_to_sentiment: Vec<GrangerLag>,
    /// p of the primary test (Granger, L lags) and its BH q-value across tickers.
    pub primary_p: Option<f64>,
    pub primary_q: Option<f64>,
    /// The positive lag with the strongest correlation, and whether it survives BH.
    pub best_lag: Option<LagCorrelation>,
    pub significant: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudyResult {
    pub config: StudyConfig,
    pub tickers: Vec<TickerResult>,
    /// Within-ticker (demeaned) sentiment vs next return, all tickers pooled.
    pub pooled_level: Option<Correlation>,
    pub pooled_cross_correlation: Vec<(i64, Correlation)>,
    pub event_study: EventStudy,
    pub market_proxy: String,
    pub significant: Vec<String>,
    /// Tickers with a primary test (the others are `excluded`, with the reason).
    pub tested: usize,
    pub rejection_rate: f64,
    /// Fallbacks the reader must know of (a missing market proxy), first in the report.
    pub warnings: Vec<String>,
    /// How the series were cut (the daily sentiment cut-off), stated in the report.
    pub notes: Vec<String>,
}

/// Pairs (a_t, b_{t+k}) with both present.
fn lagged_pairs(a: &[f64], b: &[f64], k: i64) -> (Vec<f64>, Vec<f64>) {
    let n = a.len() as i64;
    let mut xs = Vec::with_capacity(a.len());
    let mut ys = Vec::with_capacity(a.len());
    for t in 0..n {
        let u = t + k;
        if u < 0 || u >= n {
            continue;
        }
        let (x, y) = (a[t as usize], b[u as usize]);
        if x.is_finite() && y.is_finite() {
            xs.push(x);
            ys.push(y);
        }
    }
    (xs, ys)
}

fn corr(xs: &[f64], ys: &[f64]) -> Option<Correlation> {
    (xs.len() >= 3).then(|| pearson(xs, ys)).filter(|c| c.r.is_finite())
}

fn demean(v: &[f64]) -> Vec<f64> {
    let (sum, count) = v.iter().filter(|x| x.is_finite()).fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
    let m = sum / count.max(1) as f64;
    v.iter().map(|x| x - m).collect()
}

/// What one ticker contributes: its result, and the inputs of the cross-ticker results.
struct TickerWork {
    result: TickerResult,
    pooled: PooledInputs,
}

/// One ticker's abnormal returns and spikes (for the event study) and its demeaned
/// series (for the pooled correlations).
struct PooledInputs {
    abnormal: Vec<f64>,
    spikes: Vec<usize>,
    sentiment_dm: Vec<f64>,
    ret_dm: Vec<f64>,
    next_dm: Vec<f64>,
}

fn analyze(s: &TickerSeries, market_ret: &dyn Fn(usize, &TickerSeries) -> f64, config: &StudyConfig) -> TickerWork {
    let n = s.ret.len();
    let next: Vec<f64> = (0..n).map(|t| s.ret.get(t + 1).copied().unwrap_or(f64::NAN)).collect();
    let (lx, ly) = lagged_pairs(&s.sentiment, &next, 0);
    let level = corr(&lx, &ly);
    let level_spearman = (lx.len() >= 3).then(|| spearman(&lx, &ly)).filter(|c| c.r.is_finite());
    let dsent: Vec<f64> = (0..n).map(|t| if t == 0 { f64::NAN } else { s.sentiment[t] - s.sentiment[t - 1] }).collect();
    let (cx, cy) = lagged_pairs(&dsent, &next, 0);
    let change = corr(&cx, &cy);
    let absnext: Vec<f64> = next.iter().map(|v| v.abs()).collect();
    let (vx, vy) = lagged_pairs(&s.posts, &absnext, 0);
    let volume = corr(&vx, &vy);
    let cross_correlation = (-(config.max_lag as i64)..=config.max_lag as i64)
        .filter_map(|k| {
            let (a, b) = lagged_pairs(&s.sentiment, &s.ret, k);
            corr(&a, &b).map(|c| LagCorrelation { lag: k, r: c.r, p: c.p, n: c.n, q: f64::NAN })
        })
        .collect();
    // Missing stays missing: Granger leaves out the rows a gap touches.
    let g_sr = granger(&s.ret, &s.sentiment, config.granger_lags);
    let g_rs = granger(&s.sentiment, &s.ret, config.granger_lags);
    // The primary test is the one with L lags; a ticker without enough rows for it is
    // not tested (no quiet fallback to fewer lags).
    let primary = g_sr.iter().find(|g| g.lag == config.granger_lags);
    let observations = primary.map_or(0, |g| g.nobs);
    let posts: f64 = s.posts.iter().filter(|p| p.is_finite()).sum();
    let excluded = if posts < config.min_posts {
        Some(format!("{posts:.0} posts (at least {:.0} needed)", config.min_posts))
    } else if observations < config.min_observations {
        Some(format!("{observations} observations (at least {} needed)", config.min_observations))
    } else {
        None
    };
    let primary_p = primary.map(|g| g.p).filter(|p| p.is_finite() && excluded.is_none());
    // Missing stays missing: an interval without a return (or without the market's) has
    // no abnormal return, and an event whose window needs it is left out.
    let abnormal: Vec<f64> = (0..n).map(|t| s.ret[t] - market_ret(t, s)).collect();
    TickerWork {
        result: TickerResult {
            ticker: s.ticker.clone(),
            intervals: s.ret.iter().filter(|v| v.is_finite()).count(),
            posts,
            observations,
            excluded,
            level,
            level_spearman,
            change,
            volume,
            cross_correlation,
            granger_sentiment_to_returns: g_sr,
            granger_returns_to_sentiment: g_rs,
            primary_p,
            primary_q: None,
            best_lag: None,
            significant: false,
        },
        pooled: PooledInputs {
            abnormal,
            spikes: volume_spikes(&s.posts, config.spike_lookback, config.spike_z),
            sentiment_dm: demean(&s.sentiment),
            ret_dm: demean(&s.ret),
            next_dm: demean(&next),
        },
    }
}

/// The study on every core.
pub fn run(series: &[TickerSeries], config: &StudyConfig) -> StudyResult {
    run_with_threads(series, config, std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The study, the tickers spread over `threads` threads (the result does not depend on it).
pub fn run_with_threads(series: &[TickerSeries], config: &StudyConfig, threads: usize) -> StudyResult {
    // A proxy without a single return is no proxy.
    let market = config
        .market
        .as_ref()
        .and_then(|m| series.iter().find(|s| &s.ticker == m))
        .filter(|m| m.ret.iter().any(|v| v.is_finite()));
    let studied: Vec<&TickerSeries> = series.iter().filter(|s| market.is_none_or(|m| m.ticker != s.ticker)).collect();
    // Per interval: the sum and count of the studied tickers' returns.
    let longest = studied.iter().map(|s| s.ret.len()).max().unwrap_or(0);
    let mut cross_section = vec![(0.0f64, 0usize); longest];
    for s in &studied {
        for (t, v) in s.ret.iter().enumerate().filter(|(_, v)| v.is_finite()) {
            cross_section[t].0 += v;
            cross_section[t].1 += 1;
        }
    }
    // Abnormal returns: against the market proxy, or the mean of the other tickers.
    let market_ret = |t: usize, s: &TickerSeries| -> f64 {
        match market {
            Some(m) => m.ret.get(t).copied().unwrap_or(0.0),
            None => {
                let (sum, count) = cross_section[t];
                let own = s.ret.get(t).copied().filter(|v| v.is_finite());
                let (sum, count) = own.map_or((sum, count), |v| (sum - v, count - 1));
                if count == 0 { 0.0 } else { sum / count as f64 }
            }
        }
    };
    let threads = threads.clamp(1, studied.len().max(1));
    let chunk = studied.len().div_ceil(threads).max(1);
    let work: Vec<TickerWork> = std::thread::scope(|scope| {
        let handles: Vec<_> = studied
            .chunks(chunk)
            .map(|part| {
                let market_ret = &market_ret;
                scope.spawn(move || part.iter().map(|s| analyze(s, market_ret, config)).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a study thread panicked")).collect()
    });
    let (mut results, rest): (Vec<TickerResult>, Vec<PooledInputs>) =
        work.into_iter().map(|w| (w.result, w.pooled)).unzip();
    // Benjamini–Hochberg: the primary test across tickers, and every ticker × lag.
    let prim: Vec<(usize, f64)> = results.iter().enumerate().filter_map(|(i, r)| r.primary_p.map(|p| (i, p))).collect();
    let q = benjamini_hochberg(&prim.iter().map(|x| x.1).collect::<Vec<_>>());
    for ((i, _), q) in prim.iter().zip(q) {
        results[*i].primary_q = Some(q);
        results[*i].significant = q < config.alpha;
    }
    let lag_index: Vec<(usize, usize)> =
        results.iter().enumerate().flat_map(|(i, r)| (0..r.cross_correlation.len()).map(move |j| (i, j))).collect();
    let lag_q =
        benjamini_hochberg(&lag_index.iter().map(|(i, j)| results[*i].cross_correlation[*j].p).collect::<Vec<_>>());
    for ((i, j), q) in lag_index.into_iter().zip(lag_q) {
        results[i].cross_correlation[j].q = q;
    }
    for r in results.iter_mut() {
        r.best_lag = r
            .cross_correlation
            .iter()
            .filter(|c| c.lag > 0)
            .max_by(|a, b| a.r.abs().partial_cmp(&b.r.abs()).unwrap_or(std::cmp::Ordering::Equal))
            .cloned();
    }
    // Pooled within-ticker results, of the tested tickers (one with two posts would add
    // noise and no evidence).
    let tested_inputs: Vec<&PooledInputs> =
        rest.iter().zip(&results).filter(|(_, r)| r.excluded.is_none()).map(|(p, _)| p).collect();
    let mut px = Vec::new();
    let mut py = Vec::new();
    for p in &tested_inputs {
        let (a, b) = lagged_pairs(&p.sentiment_dm, &p.next_dm, 0);
        px.extend(a);
        py.extend(b);
    }
    let pooled_level = corr(&px, &py);
    let pooled_cross_correlation = (-(config.max_lag as i64)..=config.max_lag as i64)
        .filter_map(|k| {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for p in &tested_inputs {
                let (x, y) = lagged_pairs(&p.sentiment_dm, &p.ret_dm, k);
                a.extend(x);
                b.extend(y);
            }
            corr(&a, &b).map(|c| (k, c))
        })
        .collect();
    // Event study across all tickers' spikes; an event too close to either end of its
    // ticker's series to have a whole window is left out.
    let w = config.event_window;
    let mut paths_abnormal: Vec<f64> = Vec::new();
    let mut events: Vec<usize> = Vec::new();
    for p in &rest {
        let offset = paths_abnormal.len();
        events.extend(p.spikes.iter().filter(|&&e| e >= w && e + w < p.abnormal.len()).map(|e| e + offset));
        paths_abnormal.extend(p.abnormal.iter().copied());
    }
    let es = event_study(&paths_abnormal, &events, w);
    let significant: Vec<String> = results.iter().filter(|r| r.significant).map(|r| r.ticker.clone()).collect();
    let tested = results.iter().filter(|r| r.primary_p.is_some()).count();
    let mut warnings = Vec::new();
    if let Some(m) = config.market.as_ref().filter(|_| market.is_none()) {
        warnings.push(format!(
            "The market proxy {m} has no data in this period: abnormal returns are against the cross-section mean \
             of the other tickers instead."
        ));
    }
    let rejection_rate =
        results.iter().filter(|r| r.primary_p.is_some_and(|p| p < config.alpha)).count() as f64 / tested.max(1) as f64;
    StudyResult {
        config: config.clone(),
        tickers: results,
        pooled_level,
        pooled_cross_correlation,
        event_study: es,
        market_proxy: market.map_or("cross-section mean".into(), |m| m.ticker.clone()),
        significant,
        tested,
        rejection_rate,
        warnings,
        notes: vec![],
    }
}
