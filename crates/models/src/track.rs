//! The track record of forecasts that have been resolved — live ones from `predictions`
//! (`evaluate`) or walk-forward ones over history (`backtest`) — and its report.
//!
//! Hit rate against two baselines (the majority direction of the period, which is
//! hindsight and so a conservative bar, and "same as the last move"), each with a
//! one-sided binomial p-value; Brier, AUC, calibration, rank IC; the P&L of the rule
//! (long above 0.5 + m, short below 0.5 − m) after costs against buy-and-hold of the same
//! tickers over the same intervals; and the Sharpe ratio of the per-tick portfolio with
//! its probabilistic and deflated versions given the number of model variants tried.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use bson::Document;
use cashtag_analysis_core::svg::{Line, lines};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::metrics::{CalibrationBin, Scored, Scores, SharpeStats, binomial_p, calibration, score, sharpe};
use crate::predictor::{net_pnl, position};

/// One resolved forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ticker: String,
    pub made_at: DateTime<Utc>,
    pub p: f64,
    pub ret: f64,
    /// The return before the decision (for the "last move" baseline).
    pub last_move: f64,
    pub position: i32,
    pub pnl: f64,
}

/// Outcomes from stored predictions (those with an outcome that is not "unresolved");
/// returns them and the number left unresolved.
pub fn outcomes_from_predictions(docs: &[Document]) -> (Vec<Outcome>, usize) {
    let mut out = Vec::new();
    let mut unresolved = 0;
    for d in docs {
        let Ok(o) = d.get_document("outcome") else { continue };
        if o.contains_key("unresolved") {
            unresolved += 1;
            continue;
        }
        let (Ok(t), Ok(m), Ok(p), Ok(ret), Ok(pnl)) = (
            d.get_str("ticker"),
            d.get_datetime("made_at"),
            d.get_f64("p_up"),
            o.get_f64("log_return"),
            o.get_f64("pnl"),
        ) else {
            continue;
        };
        out.push(Outcome {
            ticker: t.to_string(),
            made_at: m.to_chrono(),
            p,
            ret,
            last_move: d.get_f64("last_move").unwrap_or(0.0),
            position: d.get_i32("position").unwrap_or(0),
            pnl,
        });
    }
    (out, unresolved)
}

/// Outcomes of walk-forward forecasts over history, traded with the same rule.
pub fn outcomes_from_forecasts(
    samples: &[crate::features::Sample],
    forecasts: &[crate::cv::Forecast],
    margin: f64,
    cost_bps: f64,
) -> Vec<Outcome> {
    let last = crate::features::FEATURES.iter().position(|f| f.name == "ret_recent").expect("known");
    forecasts
        .iter()
        .map(|f| {
            let s = &samples[f.sample];
            let pos = position(f.model, margin);
            Outcome {
                ticker: s.ticker.clone(),
                made_at: s.t,
                p: f.model,
                ret: s.ret,
                last_move: s.features[last],
                position: pos,
                pnl: net_pnl(pos, s.ret, cost_bps),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub name: String,
    pub hit_rate: f64,
    /// One-sided binomial p-value of the model's hits against this hit rate.
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub date: NaiveDate,
    pub n: usize,
    pub hit_rate: f64,
    pub pnl: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    pub n: usize,
    pub unresolved: usize,
    pub hit_rate: f64,
    pub baselines: Vec<Baseline>,
    pub scores: Scores,
    pub calibration: Vec<CalibrationBin>,
    pub trades: usize,
    pub cost_bps: f64,
    /// Sum over ticks of the mean net P&L (log return) of the tick's positions.
    pub pnl: f64,
    /// The same for holding every ticker long over every interval, without costs.
    pub buy_and_hold: f64,
    pub sharpe: SharpeStats,
    pub buy_and_hold_sharpe: SharpeStats,
    pub by_day: Vec<DayRow>,
    /// (tick, cumulative P&L, cumulative buy-and-hold).
    pub cumulative: Vec<(DateTime<Utc>, f64, f64)>,
}

/// The track record of `outcomes`; `ticks_per_year` annualizes the Sharpe ratio and
/// `trials` is the number of model variants tried.
pub fn track_record(
    outcomes: &[Outcome],
    unresolved: usize,
    cost_bps: f64,
    ticks_per_year: f64,
    trials: usize,
) -> TrackRecord {
    let scored: Vec<Scored> = outcomes.iter().map(|o| Scored { ticker: &o.ticker, p: o.p, ret: o.ret }).collect();
    let scores = score(&scored);
    let n = outcomes.len();
    let up = outcomes.iter().filter(|o| o.ret > 0.0).count();
    let majority = if n == 0 { 0.5 } else { up.max(n - up) as f64 / n as f64 };
    let last_hits = outcomes.iter().filter(|o| (o.last_move > 0.0) == (o.ret > 0.0)).count();
    let last = if n == 0 { 0.5 } else { last_hits as f64 / n as f64 };
    let baselines = [("majority (hindsight)", majority), ("last_move", last)]
        .into_iter()
        .map(|(name, rate)| Baseline { name: name.into(), hit_rate: rate, p_value: binomial_p(scores.hits, n, rate) })
        .collect();
    let mut ticks: BTreeMap<DateTime<Utc>, (f64, f64, usize)> = BTreeMap::new();
    for o in outcomes {
        let e = ticks.entry(o.made_at).or_default();
        e.0 += o.pnl;
        e.1 += o.ret;
        e.2 += 1;
    }
    let per_tick: Vec<(DateTime<Utc>, f64, f64)> =
        ticks.iter().map(|(t, (p, b, k))| (*t, p / *k as f64, b / *k as f64)).collect();
    let mut cumulative = Vec::with_capacity(per_tick.len());
    let (mut cp, mut cb) = (0.0, 0.0);
    for (t, p, b) in &per_tick {
        cp += p;
        cb += b;
        cumulative.push((*t, cp, cb));
    }
    let mut days: BTreeMap<NaiveDate, (usize, usize, f64)> = BTreeMap::new();
    for o in outcomes {
        let e = days.entry(cashtag_calendar::Calendar::local_date(o.made_at)).or_default();
        e.0 += 1;
        e.1 += usize::from((o.p > 0.5) == (o.ret > 0.0));
        e.2 += o.pnl;
    }
    TrackRecord {
        n,
        unresolved,
        hit_rate: scores.accuracy,
        baselines,
        calibration: calibration(&scored),
        trades: outcomes.iter().filter(|o| o.position != 0).count(),
        cost_bps,
        pnl: cp,
        buy_and_hold: cb,
        sharpe: sharpe(&per_tick.iter().map(|x| x.1).collect::<Vec<_>>(), ticks_per_year, trials),
        buy_and_hold_sharpe: sharpe(&per_tick.iter().map(|x| x.2).collect::<Vec<_>>(), ticks_per_year, 1),
        by_day: days
            .into_iter()
            .map(|(date, (n, h, p))| DayRow { date, n, hit_rate: h as f64 / n as f64, pnl: p })
            .collect(),
        cumulative,
        scores,
    }
}

/// The answer in words: the report's first line. "Yes" needs all of: a positive P&L
/// after costs, above buy-and-hold, a deflated Sharpe probability above 1 − α, and a hit
/// rate significantly above the majority direction's. How it compares with the last-move
/// rule is said either way.
pub fn verdict(r: &TrackRecord, alpha: f64) -> String {
    if r.n == 0 {
        return "No answer: no resolved forecasts in this period.".into();
    }
    let makes = r.pnl > 0.0 && r.pnl > r.buy_and_hold && r.sharpe.deflated > 1.0 - alpha;
    let majority = &r.baselines[0];
    let last = &r.baselines[1];
    let beats_majority = r.hit_rate > majority.hit_rate && majority.p_value < alpha;
    let head = match (makes, beats_majority) {
        (true, true) => "Yes",
        (true, false) => "Not convincingly",
        (false, _) => "No",
    };
    format!(
        "{head}: over {} forecasts ({} trades), the rule made {:+.2}% after costs of {} bp per side, against {:+.2}% for buy-and-hold \
         (Sharpe {:.2} a year; deflated Sharpe probability {:.3} given {} variant(s) tried); hit rate {:.1}% against {:.1}% for the \
         majority direction (p = {:.2e}) and {:.1}% for the last-move rule (p = {:.2e}{}).",
        r.n,
        r.trades,
        100.0 * r.pnl,
        r.cost_bps,
        100.0 * r.buy_and_hold,
        r.sharpe.annualized,
        r.sharpe.deflated,
        r.sharpe.trials,
        100.0 * r.hit_rate,
        100.0 * majority.hit_rate,
        majority.p_value,
        100.0 * last.hit_rate,
        last.p_value,
        if last.p_value < alpha { "" } else { ": not significantly better than momentum" }
    )
}

pub fn markdown(r: &TrackRecord, title: &str, alpha: f64, extra: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}\n\n# {title}\n", verdict(r, alpha));
    let _ = writeln!(o, "| measure | value |\n|---|---|");
    let s = &r.scores;
    for (k, v) in [
        ("forecasts", r.n.to_string()),
        ("unresolved", r.unresolved.to_string()),
        ("hit rate", format!("{:.4}", r.hit_rate)),
        ("ROC-AUC", format!("{:.4}", s.roc_auc)),
        ("Brier", format!("{:.4}", s.brier)),
        ("log loss", format!("{:.4}", s.log_loss)),
        ("MCC", format!("{:.4}", s.mcc)),
        ("rank IC (mean over tickers)", format!("{:.4}", s.rank_ic)),
        ("trades", r.trades.to_string()),
        ("P&L after costs", format!("{:+.4}%", 100.0 * r.pnl)),
        ("buy-and-hold", format!("{:+.4}%", 100.0 * r.buy_and_hold)),
        ("Sharpe (annualized)", format!("{:.3}", r.sharpe.annualized)),
        ("buy-and-hold Sharpe", format!("{:.3}", r.buy_and_hold_sharpe.annualized)),
        ("probabilistic Sharpe (vs 0)", format!("{:.4}", r.sharpe.probabilistic)),
        (&format!("deflated Sharpe ({} variants)", r.sharpe.trials), format!("{:.4}", r.sharpe.deflated)),
    ] {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let _ = writeln!(o, "\n## Baselines\n\n| baseline | hit rate | p (model's hits) |\n|---|---|---|");
    for b in &r.baselines {
        let _ = writeln!(o, "| {} | {:.4} | {:.3e} |", b.name, b.hit_rate, b.p_value);
    }
    let _ = writeln!(o, "\n## Calibration\n\n| p(up) bin | n | mean p | share up |\n|---|---|---|---|");
    for c in &r.calibration {
        let _ = writeln!(o, "| {:.1}–{:.1} | {} | {:.4} | {:.4} |", c.from, c.to, c.n, c.mean_p, c.up_rate);
    }
    let _ = writeln!(o, "\n## By day\n\n| day | forecasts | hit rate | P&L (sum) |\n|---|---|---|---|");
    for d in &r.by_day {
        let _ = writeln!(o, "| {} | {} | {:.4} | {:+.5} |", d.date, d.n, d.hit_rate, d.pnl);
    }
    o.push_str(extra);
    o
}

pub fn html(r: &TrackRecord, title: &str, alpha: f64, extra: &str) -> String {
    let mut body = String::new();
    let _ = write!(body, "<h1>{title}</h1><p><b>{}</b></p>", verdict(r, alpha));
    let cal = vec![
        Line {
            label: "observed".into(),
            points: r.calibration.iter().map(|c| (c.mean_p, c.up_rate)).collect(),
            band: None,
            right_axis: false,
        },
        Line { label: "perfect".into(), points: vec![(0.0, 0.0), (1.0, 1.0)], band: None, right_axis: false },
    ];
    let ticks: Vec<(f64, String)> = (0..=10).map(|i| (i as f64 / 10.0, format!("{:.1}", i as f64 / 10.0))).collect();
    body.push_str(&lines("calibration: share up by predicted p(up)", &cal, &ticks, false));
    let idx: Vec<(f64, String)> = r
        .cumulative
        .iter()
        .enumerate()
        .step_by((r.cumulative.len() / 6).max(1))
        .map(|(i, (t, _, _))| (i as f64, t.format("%m-%d %H:%M").to_string()))
        .collect();
    body.push_str(&lines(
        "cumulative P&L after costs vs buy-and-hold (log return, mean per tick)",
        &[
            Line {
                label: "rule".into(),
                points: r.cumulative.iter().enumerate().map(|(i, c)| (i as f64, c.1)).collect(),
                band: None,
                right_axis: false,
            },
            Line {
                label: "buy-and-hold".into(),
                points: r.cumulative.iter().enumerate().map(|(i, c)| (i as f64, c.2)).collect(),
                band: None,
                right_axis: false,
            },
        ],
        &idx,
        true,
    ));
    let days: Vec<(f64, String)> = r
        .by_day
        .iter()
        .enumerate()
        .step_by((r.by_day.len() / 6).max(1))
        .map(|(i, d)| (i as f64, d.date.to_string()))
        .collect();
    body.push_str(&lines(
        "hit rate by day",
        &[
            Line {
                label: "hit rate".into(),
                points: r.by_day.iter().enumerate().map(|(i, d)| (i as f64, d.hit_rate)).collect(),
                band: None,
                right_axis: false,
            },
            Line {
                label: "0.5".into(),
                points: vec![(0.0, 0.5), (r.by_day.len().saturating_sub(1) as f64, 0.5)],
                band: None,
                right_axis: false,
            },
        ],
        &days,
        false,
    ));
    let md = markdown(r, title, alpha, extra);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}} svg{{display:block;margin:1em 0}} pre{{white-space:pre-wrap;font-size:12px}}</style></head><body>{body}<h2>Tables</h2><pre>{}</pre></body></html>",
        md.replace('&', "&amp;").replace('<', "&lt;")
    )
}

/// Writes `results.json`, `report.md` and `report.html` into `dir`.
pub fn write(
    dir: &Path,
    r: &TrackRecord,
    results: &serde_json::Value,
    title: &str,
    alpha: f64,
    extra: &str,
) -> Result<(), ModelError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(results).expect("serializes")).map_err(io(&json))?;
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(r, title, alpha, extra)).map_err(io(&md))?;
    let h = dir.join("report.html");
    std::fs::write(&h, html(r, title, alpha, extra)).map_err(io(&h))?;
    Ok(())
}
