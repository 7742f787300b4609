//! The product's scoring path against the original system's, whole processes, same input,
//! same run: `cashtag-twitter score` (parse JSON lines, VADER and the finance score,
//! write JSON lines) against a Python script that reads the same lines and runs
//! vaderSentiment 3.3.2 only (`benches/score_reference.py`).
//!
//! `scripts/bench-sentiment` runs it (it installs the reference into the project venv);
//! directly: `cargo bench -p cashtag-twitter --bench score`. The input is 20,000 simulated
//! stock posts (`CASHTAG_BENCH_POSTS` changes the count). cashtag runs as users run it (a
//! scoring thread per core) and with `--threads 1`, the reference as it is (one thread:
//! Python's). Each command runs seven times and the best run counts (a run of 20,000
//! posts takes cashtag a few tens of milliseconds, where this machine's noise is large).
//! The bench also checks that both give the same VADER scores, and that the two cashtag
//! runs write the same.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use cashtag_sim::{Sim, SimParams};

/// Simulated stock posts over the watchlist, as `{"text", "tickers"}` JSON lines.
fn posts(count: usize) -> Vec<u8> {
    let sim = Sim::new(SimParams::default());
    let tickers: Vec<String> = ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GME"].iter().map(|t| t.to_string()).collect();
    let start = cashtag_sim::minute_index("2026-11-30T14:30:00Z".parse().expect("valid time"));
    let mut out = Vec::new();
    let mut n = 0;
    'minutes: for m in start.. {
        for t in &tickers {
            for p in sim.posts(t, m, &tickers) {
                serde_json::to_writer(&mut out, &serde_json::json!({"text": p.text, "tickers": p.tickers})).unwrap();
                out.push(b'\n');
                n += 1;
                if n == count {
                    break 'minutes;
                }
            }
        }
    }
    out
}

/// Runs `cmd` with `input` on stdin [`RUNS`] times; the best wall time and the last output.
fn best_of(mut cmd: impl FnMut() -> Command, input: &Path) -> (f64, Vec<u8>) {
    let mut best = f64::INFINITY;
    let mut last = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = cmd()
            .stdin(std::fs::File::open(input).expect("input"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd().get_program()));
        assert!(out.status.success(), "{:?} failed: {}", cmd().get_program(), out.status);
        best = best.min(start.elapsed().as_secs_f64());
        last = out.stdout;
    }
    (best, last)
}

/// How many times each command runs.
const RUNS: usize = 7;

fn vader_of(lines: &[u8]) -> Vec<[f64; 4]> {
    lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("a JSON output line");
            let s = &v["vader"];
            ["neg", "neu", "pos", "compound"].map(|k| s[k].as_f64().expect("a score"))
        })
        .collect()
}

fn python() -> PathBuf {
    std::env::var_os("CASHTAG_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python")))
}

fn main() {
    let count: usize = std::env::var("CASHTAG_BENCH_POSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let input = std::env::temp_dir().join(format!("cashtag-bench-posts-{}.jsonl", std::process::id()));
    std::fs::File::create(&input).and_then(|mut f| f.write_all(&posts(count))).expect("write the input");
    println!("input: {count} simulated stock posts, JSON lines ({})", input.display());

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cashtag = |threads: Option<usize>| {
        best_of(
            || {
                let mut c = Command::new(env!("CARGO_BIN_EXE_cashtag-twitter"));
                c.arg("score");
                if let Some(n) = threads {
                    c.arg(format!("--threads={n}"));
                }
                c
            },
            &input,
        )
    };
    let (rust_secs, rust_out) = cashtag(None);
    let rust_rate = count as f64 / rust_secs;
    println!("cashtag-twitter score (VADER + finance), {cores} threads  {rust_rate:>10.0} posts/s  ({rust_secs:.3} s)");
    let (one_secs, one_out) = cashtag(Some(1));
    let one_rate = count as f64 / one_secs;
    println!("cashtag-twitter score --threads 1 (VADER + finance)  {one_rate:>10.0} posts/s  ({one_secs:.3} s)");
    assert!(one_out == rust_out, "one thread and {cores} threads wrote different output");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/score_reference.py");
    let probe = Command::new(python()).args(["-c", "import vaderSentiment"]).output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        let _ = std::fs::remove_file(&input);
        eprintln!("the reference is not installed at {}; run scripts/bench-sentiment", python().display());
        std::process::exit(1);
    }
    let (py_secs, py_out) = best_of(
        || {
            let mut c = Command::new(python());
            c.arg(script);
            c
        },
        &input,
    );
    if std::env::var_os("CASHTAG_BENCH_KEEP_INPUT").is_none() {
        let _ = std::fs::remove_file(&input);
    }
    let py_rate = count as f64 / py_secs;
    println!("Python vaderSentiment (VADER only), one thread        {py_rate:>10.0} posts/s  ({py_secs:.3} s)");

    let (ours, theirs) = (vader_of(&rust_out), vader_of(&py_out));
    assert_eq!(ours.len(), count, "cashtag scored every post");
    let same = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    println!("VADER scores identical: {same} of {count}");
    println!(
        "ratio cashtag / Python = {:.1}x ({cores} threads), {:.1}x (one thread)",
        rust_rate / py_rate,
        one_rate / py_rate
    );
    assert_eq!(same, count, "the product path's VADER differs from the reference");
}
