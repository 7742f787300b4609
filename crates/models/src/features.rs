//! Point-in-time features and labels.
//!
//! A decision at instant `t` may use only data with an event time before `t`: the minute
//! rows whose minute starts before `t` (a minute row starting at `m` holds events in
//! `[m, m + 1 min)`, and ticks fall on whole minutes). The label is the sign of the log
//! return from the price as of `t` to the price as of `t + horizon`, inside the regular
//! session — a horizon that would cross the close is not a sample, except for `1d`,
//! whose decisions are taken at a session's close and resolved at the next close; a `1d`
//! decision's feature window runs from the previous session's close to its own, the same
//! day as the 1d study's (a Monday's holds the weekend's posts).
//! `features_at` reads its rows only through `range(..t)`; a test moves every row after
//! `t` and shows the features do not change.

use std::collections::BTreeMap;

use cashtag_analysis_core::series::MinuteRow;
use cashtag_calendar::Session;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// One minute row per minute start, for one ticker.
pub type MinuteRows = BTreeMap<DateTime<Utc>, MinuteRow>;

/// How far ahead a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Horizon {
    /// Minutes ahead, inside one session.
    Minutes(i64),
    /// From one session's close to the next session's close.
    Day,
}

impl Horizon {
    pub fn parse(s: &str) -> Result<Horizon, ModelError> {
        let bad = || ModelError::Input(format!("horizon {s:?} is not like 20m, 1h or 1d"));
        // The text may come from a model file: parsed without slicing it by byte index.
        let span = cashtag_core::span::parse(s).map_err(|_| bad())?;
        if span == TimeDelta::days(1) {
            return Ok(Horizon::Day);
        }
        let minutes = span.num_minutes();
        if span.num_seconds() % 60 == 0 && (1..=390).contains(&minutes) {
            Ok(Horizon::Minutes(minutes))
        } else {
            Err(bad())
        }
    }

    /// The horizon's length (a calendar day for `1d`; used for embargoes).
    pub fn length(self) -> TimeDelta {
        match self {
            Horizon::Minutes(m) => TimeDelta::minutes(m),
            Horizon::Day => TimeDelta::days(1),
        }
    }
}

impl std::fmt::Display for Horizon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Horizon::Minutes(m) if m % 60 == 0 => write!(f, "{}h", m / 60),
            Horizon::Minutes(m) => write!(f, "{m}m"),
            Horizon::Day => write!(f, "1d"),
        }
    }
}

impl TryFrom<String> for Horizon {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, ModelError> {
        Horizon::parse(&s)
    }
}

impl From<Horizon> for String {
    fn from(h: Horizon) -> String {
        h.to_string()
    }
}

/// A feature: its name and what it is, in words (both go into the model file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureDef {
    pub name: &'static str,
    pub definition: &'static str,
    /// Part of the price-only baseline.
    pub price_only: bool,
}

/// Every feature cashtag computes; `L` is the model's lookback.
pub const FEATURES: &[FeatureDef] = &[
    FeatureDef {
        name: "sent_level",
        definition: "mean finance score of the ticker's posts in [t-L, t); 0 without posts",
        price_only: false,
    },
    FeatureDef {
        name: "sent_change",
        definition: "sent_level minus the mean finance score of the posts in [t-2L, t-L)",
        price_only: false,
    },
    FeatureDef { name: "post_volume", definition: "ln(1 + posts in [t-L, t))", price_only: false },
    FeatureDef {
        name: "authors",
        definition: "ln(1 + the distinct authors of each minute of [t-L, t), summed over the minutes)",
        price_only: false,
    },
    FeatureDef {
        name: "bullish_share",
        definition: "(bullish - bearish posts) / posts in [t-L, t); 0 without posts",
        price_only: false,
    },
    FeatureDef {
        name: "ret_recent",
        definition: "ln(p(t) / p(t-L)), p(x) = the close of the last minute that starts before x",
        price_only: true,
    },
    FeatureDef {
        name: "ret_market",
        definition: "the market proxy's ln(p(t) / p(t-L)); 0 without a proxy",
        price_only: true,
    },
];

/// The definitions of `names`, or an error naming the unknown one.
pub fn select(names: &[String]) -> Result<Vec<FeatureDef>, ModelError> {
    if names.is_empty() {
        return Ok(FEATURES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            FEATURES.iter().find(|f| f.name == n).copied().ok_or_else(|| {
                ModelError::Input(format!(
                    "unknown feature {n:?}; known: {}",
                    FEATURES.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect()
}

/// The close as of `t`: the close of the last minute starting before `t`, and that minute.
pub fn price_as_of(rows: &MinuteRows, t: DateTime<Utc>) -> Option<(DateTime<Utc>, f64)> {
    rows.range(..t).rev().find_map(|(m, r)| r.close.map(|c| (*m, c)))
}

#[derive(Default)]
struct Window {
    posts: f64,
    authors: f64,
    finance: f64,
    bullish: f64,
    bearish: f64,
}

fn window(rows: &MinuteRows, from: DateTime<Utc>, to: DateTime<Utc>) -> Window {
    let mut w = Window::default();
    for r in rows.range(from..to).map(|(_, r)| r) {
        w.posts += r.posts;
        w.authors += r.authors;
        w.finance += r.finance_sum;
        w.bullish += r.bullish;
        w.bearish += r.bearish;
    }
    w
}

fn mean_or_zero(sum: f64, n: f64) -> f64 {
    if n > 0.0 { sum / n } else { 0.0 }
}

/// Every feature of [`FEATURES`] at `t` (in that order), or `None` when the ticker has no
/// price before `t - L`. Every read is of a range that ends at or before `t`.
pub fn features_at(
    rows: &MinuteRows,
    market: Option<&MinuteRows>,
    t: DateTime<Utc>,
    lookback: TimeDelta,
) -> Option<Vec<f64>> {
    let now = window(rows, t - lookback, t);
    let before = window(rows, t - lookback - lookback, t - lookback);
    let (_, p_t) = price_as_of(rows, t)?;
    let (_, p_l) = price_as_of(rows, t - lookback)?;
    let market_ret =
        market.and_then(|m| Some((price_as_of(m, t)?.1 / price_as_of(m, t - lookback)?.1).ln())).unwrap_or(0.0);
    let level = mean_or_zero(now.finance, now.posts);
    Some(vec![
        level,
        if before.posts > 0.0 { level - before.finance / before.posts } else { 0.0 },
        now.posts.ln_1p(),
        now.authors.ln_1p(),
        mean_or_zero(now.bullish - now.bearish, now.posts),
        (p_t / p_l).ln(),
        market_ret,
    ])
}

/// One decision: when, about what, its features and (for history) what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub ticker: String,
    pub t: DateTime<Utc>,
    pub target: DateTime<Utc>,
    /// Index of the session of `t` among the ones the samples were built from.
    pub session: usize,
    /// All of [`FEATURES`], in order.
    pub features: Vec<f64>,
    /// The price as of `t`.
    pub price: f64,
    /// ln(p(target) / p(t)).
    pub ret: f64,
    /// The market proxy's return over the same interval (0 without one).
    pub market_ret: f64,
}

impl Sample {
    pub fn up(&self) -> bool {
        self.ret > 0.0
    }
}

/// The decision instants of a session — training's samples and the predictor's ticks:
/// every `every` from the open (the open itself
/// excluded: nothing of the session is known yet), while `t + horizon` is within the
/// session; for `1d`, the close.
pub fn decision_times(session: &Session, every: TimeDelta, horizon: Horizon) -> Vec<DateTime<Utc>> {
    match horizon {
        Horizon::Day => vec![session.close],
        Horizon::Minutes(h) => {
            let mut out = Vec::new();
            let mut t = session.open + every;
            while t + TimeDelta::minutes(h) <= session.close {
                out.push(t);
                t += every;
            }
            out
        }
    }
}

/// What a sample needs besides the rows.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    pub horizon: Horizon,
    pub every: TimeDelta,
    /// The feature window L of intraday horizons. A `1d` decision's window runs from the
    /// previous session's close to its own (the 1d study's day), whatever this says.
    pub lookback: TimeDelta,
    /// The close of the session before the first one (the first `1d` window's start);
    /// without it the first session gives no `1d` sample.
    pub previous_close: Option<DateTime<Utc>>,
}

/// The longest window a `1d` decision uses (a long weekend's close to close), for loading
/// rows: its `sent_change` reads one more window before it.
pub const DAY_LOOKBACK_MAX: TimeDelta = TimeDelta::days(5);

/// Samples whose move is within ±`band` (a log return) are left out: "thresholded labels",
/// a move must exceed the band to count as up or down. Returns the samples kept and the
/// number left out.
pub fn thresholded(samples: Vec<Sample>, band: f64) -> (Vec<Sample>, usize) {
    if band <= 0.0 {
        return (samples, 0);
    }
    let before = samples.len();
    let kept: Vec<Sample> = samples.into_iter().filter(|s| s.ret.abs() > band).collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// The samples of one ticker over `sessions`: every decision time with features and a
/// price move that is known (a trade between `t` and the target, and a price before `t`).
pub fn samples(
    ticker: &str,
    rows: &MinuteRows,
    market: Option<&MinuteRows>,
    sessions: &[Session],
    spec: &SampleSpec,
) -> Vec<Sample> {
    let mut out = Vec::new();
    for (si, s) in sessions.iter().enumerate() {
        for t in decision_times(s, spec.every, spec.horizon) {
            let (target, lookback) = match spec.horizon {
                Horizon::Minutes(h) => (t + TimeDelta::minutes(h), spec.lookback),
                Horizon::Day => {
                    let previous = if si == 0 { spec.previous_close } else { Some(sessions[si - 1].close) };
                    match (sessions.get(si + 1), previous) {
                        (Some(next), Some(previous)) => (next.close, t - previous),
                        _ => continue,
                    }
                }
            };
            let Some(features) = features_at(rows, market, t, lookback) else { continue };
            let Some((m_t, p_t)) = price_as_of(rows, t) else { continue };
            if spec.horizon == Horizon::Day && m_t < s.open {
                continue; // no price of the day itself (a day without data): no decision at its close
            }
            let Some((m_target, p_target)) = price_as_of(rows, target) else { continue };
            if m_target < t {
                continue; // no trade between the decision and the target: no move is known
            }
            let market_ret =
                market.and_then(|m| Some((price_as_of(m, target)?.1 / price_as_of(m, t)?.1).ln())).unwrap_or(0.0);
            out.push(Sample {
                ticker: ticker.to_string(),
                t,
                target,
                session: si,
                features,
                price: p_t,
                ret: (p_target / p_t).ln(),
                market_ret,
            });
        }
    }
    out
}

/// The columns `names` of a sample's full feature vector.
pub fn project(features: &[f64], defs: &[FeatureDef]) -> Vec<f64> {
    defs.iter().map(|d| features[FEATURES.iter().position(|f| f.name == d.name).expect("a known feature")]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(open: DateTime<Utc>, minutes: i64) -> MinuteRows {
        (0..minutes)
            .map(|m| {
                let r = MinuteRow {
                    posts: (m % 3) as f64,
                    authors: (m % 2) as f64,
                    finance_sum: ((m as f64) * 0.37).sin(),
                    bullish: (m % 3 == 1) as u8 as f64,
                    bearish: (m % 5 == 2) as u8 as f64,
                    close: Some(100.0 + ((m as f64) * 0.11).cos()),
                    ..Default::default()
                };
                (open + TimeDelta::minutes(m), r)
            })
            .collect()
    }

    #[test]
    fn features_do_not_see_the_future() {
        let cal = cashtag_calendar::Calendar::nyse();
        let s = cal.sessions("2026-11-24".parse().unwrap(), "2026-11-24".parse().unwrap())[0].clone();
        let base = rows(s.open - TimeDelta::minutes(120), 510);
        let market = rows(s.open - TimeDelta::minutes(120), 510);
        for t in decision_times(&s, TimeDelta::minutes(20), Horizon::Minutes(20)) {
            let before = features_at(&base, Some(&market), t, TimeDelta::minutes(20)).unwrap();
            // Change everything at or after t — prices, posts, sentiment — for both.
            let shift = |r: &MinuteRows| -> MinuteRows {
                r.iter()
                    .map(|(m, row)| {
                        let mut row = row.clone();
                        if *m >= t {
                            row.close = row.close.map(|c| c * 1.5 + 7.0);
                            row.posts += 11.0;
                            row.finance_sum = -row.finance_sum - 3.0;
                            row.bullish += 4.0;
                            row.authors += 2.0;
                        }
                        (*m, row)
                    })
                    .collect()
            };
            let after = features_at(&shift(&base), Some(&shift(&market)), t, TimeDelta::minutes(20)).unwrap();
            assert_eq!(before, after, "features at {t} changed when only the future changed");
            // And the past does matter: changing the minute just before t changes them.
            let mut touched = base.clone();
            touched.get_mut(&(t - TimeDelta::minutes(1))).unwrap().close = Some(1.0);
            assert_ne!(features_at(&touched, Some(&market), t, TimeDelta::minutes(20)).unwrap(), before);
        }
    }

    #[test]
    fn samples_stay_inside_the_session() {
        let cal = cashtag_calendar::Calendar::nyse();
        // The day after Thanksgiving closes at 13:00.
        let s = cal.sessions("2026-11-27".parse().unwrap(), "2026-11-27".parse().unwrap());
        let spec = SampleSpec {
            horizon: Horizon::Minutes(20),
            every: TimeDelta::minutes(20),
            lookback: TimeDelta::minutes(20),
            previous_close: None,
        };
        let r = rows(s[0].open - TimeDelta::minutes(60), 60 + 210);
        let out = samples("AAPL", &r, None, &s, &spec);
        assert_eq!(out.len(), 9, "ticks 9:50 … 12:30 (12:50's target is past the 13:00 early close)");
        assert!(out.iter().all(|x| x.target <= s[0].close && x.t > s[0].open));
        assert_eq!(Horizon::parse("1h").unwrap(), Horizon::Minutes(60));
        assert_eq!(Horizon::parse("1h").unwrap().to_string(), "1h");
        assert!(Horizon::parse("2d").is_err() && Horizon::parse("0m").is_err());
        // From a hostile model file: refused, never a panic on a character boundary.
        for s in ["20分", "分", "1ℎ", "", "999999999999999999999w"] {
            assert!(Horizon::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn a_day_runs_close_to_close_as_the_study_s_day() {
        let cal = cashtag_calendar::Calendar::nyse();
        // Thursday 2026-11-19, Friday 20, Monday 23, Tuesday 24.
        let s = cal.sessions("2026-11-20".parse().unwrap(), "2026-11-24".parse().unwrap());
        let thursday_close = cal.session("2026-11-19".parse().unwrap()).unwrap().close;
        let mut r = MinuteRows::new();
        let row = |posts: f64, close: f64| MinuteRow {
            posts,
            authors: posts,
            finance_sum: posts * 0.5,
            close: Some(close),
            ..Default::default()
        };
        r.insert(thursday_close - TimeDelta::minutes(1), row(0.0, 100.0));
        r.insert(s[0].close - TimeDelta::minutes(1), row(2.0, 101.0));
        // Posts on Saturday: Monday's day, not Friday's.
        r.insert(s[0].close + TimeDelta::hours(20), MinuteRow { posts: 5.0, authors: 5.0, ..Default::default() });
        r.insert(s[1].close - TimeDelta::minutes(1), row(1.0, 99.0));
        r.insert(s[2].close - TimeDelta::minutes(1), row(0.0, 98.0));
        let spec = SampleSpec {
            horizon: Horizon::Day,
            every: TimeDelta::minutes(20),
            lookback: DAY_LOOKBACK_MAX,
            previous_close: Some(thursday_close),
        };
        let out = samples("AAPL", &r, None, &s, &spec);
        assert_eq!(out.len(), 2, "Friday and Monday (Tuesday has no next close here)");
        let (fri, mon) = (&out[0], &out[1]);
        assert_eq!(fri.features[2], 2f64.ln_1p(), "Friday: the posts since Thursday's close");
        assert!((fri.features[5] - (101.0f64 / 100.0).ln()).abs() < 1e-12, "Friday's close-to-close return");
        assert_eq!(mon.features[2], 6f64.ln_1p(), "Monday: Saturday's posts and Monday's");
        assert!((mon.features[5] - (99.0f64 / 101.0).ln()).abs() < 1e-12, "Monday: from Friday's close");
        assert!((mon.ret - (98.0f64 / 99.0).ln()).abs() < 1e-12, "the label: Monday's close to Tuesday's");
        // Without the close before the first session, the first gives no sample.
        let none = samples("AAPL", &r, None, &s, &SampleSpec { previous_close: None, ..spec });
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].t, mon.t);
    }

    #[test]
    fn thresholded_labels_leave_small_moves_out() {
        let s = |ret: f64| Sample {
            ticker: "A".into(),
            t: DateTime::<Utc>::MIN_UTC,
            target: DateTime::<Utc>::MIN_UTC,
            session: 0,
            features: vec![0.0; FEATURES.len()],
            price: 1.0,
            ret,
            market_ret: 0.0,
        };
        let (kept, dropped) = thresholded(vec![s(0.002), s(-0.0005), s(0.0), s(-0.003), s(0.001)], 0.001);
        assert_eq!(dropped, 3, "|ret| ≤ the band: neither up nor down");
        assert_eq!(kept.iter().map(|x| x.ret).collect::<Vec<_>>(), vec![0.002, -0.003]);
        assert_eq!(thresholded(kept, 0.0).1, 0);
    }
}
