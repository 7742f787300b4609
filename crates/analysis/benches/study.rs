//! Speed of the study: 30 tickers (and SPY) × one year of one-minute intervals, about
//! three million rows, through `study::run`, against pandas + scipy + statsmodels doing
//! the same statistics on the same data in the same run (benches/study_reference.py).
//!
//! `cargo bench -p cashtag-analysis-core --bench study` (scripts/bench-analysis installs
//! the reference packages into the project venv first). The Python interpreter is
//! `$CASHTAG_BENCH_PYTHON`, else `.venv/bin/python`. Both sides' times exclude loading;
//! the two agree on every ticker's primary p-value, which the bench checks.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cashtag_analysis_core::series::TickerSeries;
use cashtag_analysis_core::study::{StudyConfig, run_with_threads};
use cashtag_sim::rng::Key;
use chrono::{DateTime, TimeDelta, Utc};

const SESSIONS: usize = 252;
const MINUTES: usize = 390;
const TICKERS: usize = 30;

/// A ticker's year: a latent AR(1) news signal, posts that express it with noise, and
/// returns pushed by the signal five minutes earlier (for every third ticker; the rest
/// are null).
fn series(name: &str, index: usize) -> TickerSeries {
    let key = Key::new(2026).with_str(name);
    let n = SESSIONS * MINUTES;
    let planted = index.is_multiple_of(3);
    let t0: DateTime<Utc> = "2025-01-02T14:30:00Z".parse().unwrap();
    let mut signal = vec![0.0; n];
    let mut s = TickerSeries::new(name);
    let mut price = 100.0f64;
    for t in 0..n {
        let k = key.with(t as u64);
        signal[t] = if t % MINUTES == 0 { 0.0 } else { 0.9 * signal[t - 1] } + 0.45 * k.with(1).normal();
        let posts = k.with(2).poisson(0.6 * (1.0 + signal[t].abs()));
        let sentiment = if posts == 0 {
            0.0
        } else {
            (0..posts).map(|i| (signal[t].tanh() + 0.6 * k.with(10 + i as u64).normal()).clamp(-1.0, 1.0)).sum::<f64>()
                / posts as f64
        };
        let push = if planted && t >= 5 && t % MINUTES >= 5 { 0.25 * signal[t - 5] } else { 0.0 };
        let ret = 0.0008 * (push + k.with(3).normal());
        price *= ret.exp();
        s.starts.push(t0 + TimeDelta::days((t / MINUTES) as i64) + TimeDelta::minutes((t % MINUTES) as i64));
        s.session.push(t / MINUTES);
        s.sentiment.push(sentiment);
        s.posts.push(posts as f64);
        s.close.push(price);
        s.ret.push(if t % MINUTES == 0 { f64::NAN } else { ret });
    }
    s
}

fn python() -> PathBuf {
    std::env::var_os("CASHTAG_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python")))
}

fn main() {
    let t = Instant::now();
    let mut all: Vec<TickerSeries> = (0..TICKERS).map(|i| series(&format!("T{i:02}"), i)).collect();
    all.push(series("SPY", 1));
    let rows: usize = all.iter().map(|s| s.ret.len()).sum();
    println!(
        "data: {} tickers + SPY × {SESSIONS} sessions × {MINUTES} minutes = {rows} rows (generated in {:.1} s)",
        TICKERS,
        t.elapsed().as_secs_f64()
    );
    let config = StudyConfig { max_lag: 6, granger_lags: 4, ..Default::default() };

    // Warm up once, then the best of three — on one thread, and on every core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let time = |threads: usize| {
        let _ = run_with_threads(&all, &config, threads);
        let mut best = f64::INFINITY;
        let mut result = None;
        for _ in 0..3 {
            let t = Instant::now();
            let r = run_with_threads(&all, &config, threads);
            best = best.min(t.elapsed().as_secs_f64());
            result = Some(r);
        }
        (best, result.unwrap())
    };
    let (single, result) = time(1);
    println!(
        "cashtag study::run, 1 thread     {single:>8.2} s  ({} significant of {TICKERS}; {} events)",
        result.significant.len(),
        result.event_study.events
    );
    let (best, parallel) = time(cores);
    println!("cashtag study::run, {cores} threads    {best:>8.2} s");
    assert_eq!(
        serde_json::to_string(&parallel).unwrap(),
        serde_json::to_string(&result).unwrap(),
        "threads change nothing"
    );

    let file = std::env::temp_dir().join(format!("cashtag-bench-study-{}.csv", std::process::id()));
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "ticker,session,sentiment,posts,ret").unwrap();
        for s in &all {
            for i in 0..s.ret.len() {
                let ret = if s.ret[i].is_finite() { s.ret[i].to_string() } else { String::new() };
                writeln!(w, "{},{},{},{},{ret}", s.ticker, s.session[i], s.sentiment[i], s.posts[i]).unwrap();
            }
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/study_reference.py");
    let args = [
        config.max_lag.to_string(),
        config.granger_lags.to_string(),
        config.spike_z.to_string(),
        config.spike_lookback.to_string(),
        config.event_window.to_string(),
    ];
    let out = Command::new(python()).arg(script).arg(&file).args(&args).output();
    let _ = std::fs::remove_file(&file);
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!("reference not run: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            return;
        }
        Err(e) => {
            println!("reference not run ({}: {e}); run scripts/bench-analysis", python().display());
            return;
        }
    };
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reference output");
    let py_stats = py["stats_s"].as_f64().unwrap();
    println!(
        "pandas + scipy + statsmodels     {py_stats:>8.2} s  (loading the CSV: {:.2} s more)",
        py["load_s"].as_f64().unwrap()
    );
    println!("ratio  Python / cashtag = {:.1}x on one thread, {:.1}x on {cores}", py_stats / single, py_stats / best);

    // Same data, same statistics: the numbers agree.
    let rel = |a: f64, b: f64| if a == b { 0.0 } else { (a - b).abs() / a.abs().max(b.abs()) };
    let mut worst: f64 = 0.0;
    for t in &result.tickers {
        let p = &py["tickers"][&t.ticker];
        worst = worst.max(rel(t.primary_p.unwrap(), p["primary_p"].as_f64().unwrap()));
        worst = worst.max(rel(t.primary_q.unwrap(), p["primary_q"].as_f64().unwrap()));
        worst = worst.max(rel(t.level.unwrap().r, p["level_r"].as_f64().unwrap()));
        worst = worst.max(rel(t.level_spearman.unwrap().r, p["spearman_r"].as_f64().unwrap()));
        worst = worst.max(rel(t.change.unwrap().r, p["change_r"].as_f64().unwrap()));
        worst = worst.max(rel(t.volume.unwrap().r, p["volume_r"].as_f64().unwrap()));
        for (g, pv) in t.granger_returns_to_sentiment.iter().zip(p["granger_rs_p"].as_array().unwrap()) {
            worst = worst.max(rel(g.p, pv.as_f64().unwrap()));
        }
        for c in &t.cross_correlation {
            worst = worst.max(rel(c.r, p["xc"][c.lag.to_string()][0].as_f64().unwrap()));
        }
    }
    worst = worst.max(rel(result.pooled_level.unwrap().r, py["pooled_r"].as_f64().unwrap()));
    assert_eq!(result.event_study.events as u64, py["events"].as_u64().unwrap(), "event counts");
    for (a, b) in result.event_study.car.iter().zip(py["car"].as_array().unwrap()) {
        worst = worst.max(rel(*a, b.as_f64().unwrap()));
    }
    println!("largest relative difference between the two: {worst:.1e}");
    assert!(worst < 1e-6, "the implementations disagree");
}
