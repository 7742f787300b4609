//! The study's outputs: `results.json` (every number), `report.md`, and `report.html` with
//! SVG plots — sentiment and price over time, correlation by lag, tickers × lags, and the
//! cumulative abnormal return around post-volume spikes with its 95% band.

use std::fmt::Write;
use std::path::Path;

use crate::AnalysisError;
use crate::series::TickerSeries;
use crate::study::StudyResult;
use crate::svg::{Line, heatmap, lines};

fn write_file(path: &Path, text: &str) -> Result<(), AnalysisError> {
    std::fs::write(path, text).map_err(|source| AnalysisError::Io { path: path.display().to_string(), source })
}

fn f(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| if v != 0.0 && v.abs() < 1e-3 { format!("{v:.2e}") } else { format!("{v:.4}") })
}

/// The plain-language answer. "Yes" needs two things: tickers whose Benjamini–Hochberg
/// adjusted q is below α, and the pooled test across the tickers tested below α too (a
/// gate: with no effect anywhere, BH lets a few tickers through in α or more of studies,
/// which the generated null archives of `tests/sparse.rs` show); tickers that pass BH alone
/// make the answer "Inconclusive".
pub fn verdict(r: &StudyResult) -> String {
    let n = r.tested;
    let sig = r.significant.len();
    let untested = r.tickers.len() - r.tested;
    let untested = if untested == 0 {
        String::new()
    } else {
        format!(
            " {untested} of the {} tickers were not tested: too few posts or observations (at least {:.0} and {} needed; listed below).",
            r.tickers.len(),
            r.config.min_posts,
            r.config.min_observations
        )
    };
    let mut pooled = r
        .pooled_level
        .map_or("not computable".into(), |c| format!("r = {:.4} with the next interval (p = {})", c.r, f(Some(c.p))));
    // The lag where the pooled correlation is strongest: where a lead shows.
    if let Some((lag, c)) = r.pooled_cross_correlation.iter().max_by(|a, b| a.1.r.abs().total_cmp(&b.1.r.abs())) {
        let _ = write!(pooled, ", strongest at lag {lag}: r = {:.4} (p = {})", c.r, f(Some(c.p)));
    }
    if n == 0 {
        format!(
            "Not computable: no ticker has enough data for the test (at least {:.0} posts and {} observations).{untested}",
            r.config.min_posts, r.config.min_observations
        )
    } else if sig == 0 {
        format!(
            "No: for none of the {n} tickers tested does sentiment improve the forecast of returns: no Benjamini–Hochberg \
             adjusted q is below α = {} (Granger, {} lags); {:.0}% of tickers are nominally significant (unadjusted p), against {:.0}% \
             expected by chance.{untested} Pooled: {pooled}.",
            r.config.alpha,
            r.config.granger_lags,
            100.0 * r.rejection_rate,
            100.0 * r.config.alpha
        )
    } else if !r.pooled_level.is_some_and(|c| c.p < r.config.alpha) {
        format!(
            "Inconclusive: for {sig} of {n} tickers tested ({}) sentiment's past improves the forecast of returns with a \
             Benjamini–Hochberg adjusted q below α = {} (Granger, {} lags), but the pooled test across the tickers \
             tested does not confirm it at α — with no effect anywhere, a few tickers pass BH in α or more of studies, so \
             \"Yes\" needs both.{untested} Pooled: {pooled}.",
            r.significant.join(", "),
            r.config.alpha,
            r.config.granger_lags
        )
    } else {
        format!(
            "Yes, for {sig} of {n} tickers tested ({}): sentiment's past improves the forecast of returns with a \
             Benjamini–Hochberg adjusted q below α = {} (Granger, {} lags), and the pooled test across the tickers \
             tested agrees.{untested} Pooled: {pooled}.",
            r.significant.join(", "),
            r.config.alpha,
            r.config.granger_lags
        )
    }
}

pub fn markdown(r: &StudyResult, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {title}\n\n**{}**\n", verdict(r));
    for w in &r.warnings {
        let _ = writeln!(s, "**Warning:** {w}\n");
    }
    let _ = writeln!(s, "Market proxy for abnormal returns: {}. Positive lag = sentiment first.\n", r.market_proxy);
    for n in &r.notes {
        let _ = writeln!(s, "{n}\n");
    }
    let _ = writeln!(
        s,
        "| ticker | intervals | posts | observations | r(level, next) | p | Spearman | r(change, next) | Granger p (L={}) | BH q | best lag | r at best | q at best | significant |",
        r.config.granger_lags
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for t in r.tickers.iter().filter(|t| t.excluded.is_none()) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.ticker,
            t.intervals,
            t.posts,
            t.observations,
            f(t.level.map(|c| c.r)),
            f(t.level.map(|c| c.p)),
            f(t.level_spearman.map(|c| c.r)),
            f(t.change.map(|c| c.r)),
            f(t.primary_p),
            f(t.primary_q),
            t.best_lag.as_ref().map_or("–".into(), |b| b.lag.to_string()),
            f(t.best_lag.as_ref().map(|b| b.r)),
            f(t.best_lag.as_ref().map(|b| b.q)),
            if t.significant { "yes" } else { "no" }
        );
    }
    let excluded: Vec<_> = r.tickers.iter().filter_map(|t| t.excluded.as_ref().map(|why| (&t.ticker, why))).collect();
    if !excluded.is_empty() {
        let _ = writeln!(s, "\n## Not tested\n\n| ticker | why |\n|---|---|");
        for (ticker, why) in excluded {
            let _ = writeln!(s, "| {ticker} | {why} |");
        }
    }
    let _ = writeln!(s, "\n## Pooled cross-correlation (within-ticker)\n\n| lag | r | p | n |\n|---|---|---|---|");
    for (k, c) in &r.pooled_cross_correlation {
        let _ = writeln!(s, "| {k} | {:.4} | {} | {} |", c.r, f(Some(c.p)), c.n);
    }
    let es = &r.event_study;
    let _ = writeln!(
        s,
        "\n## Event study\n\n{} post-volume spikes (posts > mean + {}·sd of the previous {} intervals). Cumulative abnormal return:\n",
        es.events, r.config.spike_z, r.config.spike_lookback
    );
    let _ = writeln!(s, "| offset | CAR | ±95% |\n|---|---|---|");
    for ((o, c), h) in es.offsets.iter().zip(&es.car).zip(&es.ci) {
        let _ = writeln!(s, "| {o} | {} | {} |", f(Some(*c)), f(Some(*h)));
    }
    s
}

/// At most `max` points: the means of equal runs of consecutive values (NaN skipped).
fn downsample(values: &[f64], max: usize) -> Vec<(f64, f64)> {
    let run = values.len().div_ceil(max.max(1)).max(1);
    values
        .chunks(run)
        .enumerate()
        .map(|(i, c)| {
            let finite: Vec<f64> = c.iter().copied().filter(|v| v.is_finite()).collect();
            let mean = if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 };
            ((i * run) as f64, mean)
        })
        .collect()
}

/// Tickers to chart: the tested ones with the most evidence (lowest primary p) first,
/// then the others by posts — at most `n`.
pub fn charted(r: &StudyResult, n: usize) -> Vec<&str> {
    let mut order: Vec<&crate::study::TickerResult> = r.tickers.iter().collect();
    order.sort_by(|a, b| match (a.primary_p, b.primary_p) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.posts.total_cmp(&a.posts),
    });
    order.into_iter().take(n).map(|t| t.ticker.as_str()).collect()
}

/// Six labels along a time axis: dates with the year for daily or multi-month series (no
/// clock time on a day), New York clock times within a few days.
fn time_labels(starts: &[chrono::DateTime<chrono::Utc>]) -> (Vec<(f64, String)>, &'static str) {
    let (Some(first), Some(last)) = (starts.first(), starts.last()) else { return (vec![], "") };
    let daily = starts.len() > 1 && starts[1] - starts[0] >= chrono::TimeDelta::hours(20);
    let long = *last - *first > chrono::TimeDelta::days(60);
    let (format, note) = if daily || long { ("%Y-%m-%d", "") } else { ("%m-%d %H:%M", ", New York time") };
    let labels = starts
        .iter()
        .enumerate()
        .step_by((starts.len() / 6).max(1))
        .map(|(i, t)| (i as f64, t.with_timezone(&cashtag_calendar::TZ).format(format).to_string()))
        .collect();
    (labels, note)
}

pub fn html(r: &StudyResult, series: &[TickerSeries], title: &str) -> String {
    let mut body = String::new();
    let _ = write!(body, "<h1>{title}</h1><p><b>{}</b></p>", verdict(r));
    for w in &r.warnings {
        let _ = write!(body, "<p><b>Warning:</b> {w}</p>");
    }
    for n in &r.notes {
        let _ = write!(body, "<p>{n}</p>");
    }
    // Sentiment and price over time, for the tickers with the most evidence.
    let charted = charted(r, 6);
    let _ = write!(
        body,
        "<p>Charts for the {} tickers with the most evidence (the lowest Granger p of those tested, then the most posts): {}.</p>",
        charted.len(),
        charted.join(", ")
    );
    for s in charted.iter().filter_map(|t| series.iter().find(|s| s.ticker == *t)) {
        // A year of minutes is far more points than a chart has pixels.
        let sent = downsample(&s.sentiment, 1_500);
        let price = downsample(&s.close, 1_500);
        let (labels, clock) = time_labels(&s.starts);
        body.push_str(&lines(
            &format!(
                "{}: sentiment (left) and price (right){}{clock}",
                s.ticker,
                if s.sentiment.len() > 1_500 { ", averaged" } else { "" }
            ),
            &[
                Line { label: "sentiment".into(), points: sent, band: None, right_axis: false },
                Line { label: "price".into(), points: price, band: None, right_axis: true },
            ],
            &labels,
            true,
        ));
    }
    // Correlation by lag: pooled and per ticker.
    let mut ls = vec![Line {
        label: "pooled".into(),
        points: r.pooled_cross_correlation.iter().map(|(k, c)| (*k as f64, c.r)).collect(),
        band: None,
        right_axis: false,
    }];
    for t in charted.iter().take(5).filter_map(|c| r.tickers.iter().find(|t| t.ticker == *c)) {
        ls.push(Line {
            label: t.ticker.clone(),
            points: t.cross_correlation.iter().map(|c| (c.lag as f64, c.r)).collect(),
            band: None,
            right_axis: false,
        });
    }
    let lag_labels: Vec<(f64, String)> =
        r.pooled_cross_correlation.iter().map(|(k, _)| (*k as f64, k.to_string())).collect();
    body.push_str(&lines(
        "correlation of sentiment with returns by lag (positive = sentiment first)",
        &ls,
        &lag_labels,
        true,
    ));
    // Heatmap tickers × lags.
    let lags: Vec<i64> = r.pooled_cross_correlation.iter().map(|(k, _)| *k).collect();
    let rows: Vec<String> = r.tickers.iter().map(|t| t.ticker.clone()).collect();
    let values: Vec<Vec<f64>> = r
        .tickers
        .iter()
        .map(|t| {
            lags.iter().map(|k| t.cross_correlation.iter().find(|c| c.lag == *k).map_or(f64::NAN, |c| c.r)).collect()
        })
        .collect();
    body.push_str(&heatmap(
        "tickers × lags: correlation",
        &rows,
        &lags.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        &values,
    ));
    // CAR with band.
    let es = &r.event_study;
    body.push_str(&lines(
        &format!("cumulative abnormal return around {} post-volume spikes (95% band)", es.events),
        &[Line {
            label: "CAR".into(),
            points: es.offsets.iter().zip(&es.car).map(|(o, c)| (*o as f64, *c)).collect(),
            band: Some(es.ci.clone()),
            right_axis: false,
        }],
        &es.offsets.iter().map(|o| (*o as f64, o.to_string())).collect::<Vec<_>>(),
        true,
    ));
    let md = markdown(r, title);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}} svg{{display:block;margin:1em 0}} pre{{white-space:pre-wrap;font-size:12px}}</style></head><body>{body}<h2>Tables</h2><pre>{}</pre></body></html>",
        md.replace('&', "&amp;").replace('<', "&lt;")
    )
}

/// Writes results.json, report.md and report.html into `dir`.
pub fn write(dir: &Path, r: &StudyResult, series: &[TickerSeries], title: &str) -> Result<(), AnalysisError> {
    std::fs::create_dir_all(dir).map_err(|source| AnalysisError::Io { path: dir.display().to_string(), source })?;
    write_file(&dir.join("results.json"), &serde_json::to_string_pretty(r).expect("serializes"))?;
    write_file(&dir.join("report.md"), &markdown(r, title))?;
    write_file(&dir.join("report.html"), &html(r, series, title))?;
    Ok(())
}
