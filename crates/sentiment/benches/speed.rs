//! Speed: posts per second, single-threaded, of cashtag's VADER and finance score, and of
//! the Python reference vaderSentiment 3.3.2 on the same texts in the same run.
//!
//! `cargo bench -p cashtag-sentiment --bench speed` (scripts/bench-sentiment installs the
//! reference into the project venv first). The Python interpreter is `$CASHTAG_BENCH_PYTHON`,
//! else `.venv/bin/python`.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cashtag_sentiment::Scorer;

fn texts() -> Vec<String> {
    include_str!("../parity/vader-3.3.2.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect()
}

fn rate(passes: usize, texts: &[String], mut f: impl FnMut(&str)) -> f64 {
    let start = Instant::now();
    for _ in 0..passes {
        for t in texts {
            f(t);
        }
    }
    (passes * texts.len()) as f64 / start.elapsed().as_secs_f64()
}

fn python() -> PathBuf {
    std::env::var_os("CASHTAG_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python")))
}

fn main() {
    let texts = texts();
    // What every process that scores pays once: building both lexicons (best of five).
    let build_ms = (0..5)
        .map(|_| {
            let start = Instant::now();
            black_box(Scorer::new());
            start.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::INFINITY, f64::min);
    let scorer = Scorer::new();
    // Warm up, then measure.
    rate(1, &texts, |t| {
        black_box(scorer.vader(t));
    });
    let vader = rate(10, &texts, |t| {
        black_box(scorer.vader(t));
    });
    let finance = rate(10, &texts, |t| {
        black_box(scorer.finance(t, &[]));
    });
    println!("texts: {} (the parity fixture: tweets, review snippets, stock posts)", texts.len());
    println!("cashtag VADER       {vader:>12.0} posts/s");
    println!("cashtag finance     {finance:>12.0} posts/s");
    println!("building the lexicons (Scorer::new): {build_ms:.2} ms");

    let file = std::env::temp_dir().join(format!("cashtag-bench-texts-{}.jsonl", std::process::id()));
    std::fs::write(&file, include_str!("../parity/vader-3.3.2.jsonl")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/vader_reference.py");
    let out = Command::new(python()).arg(script).arg(&file).arg("2").output();
    let _ = std::fs::remove_file(&file);
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let py: f64 = text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("reference output");
            println!("Python vaderSentiment {py:>10.0} posts/s");
            println!("ratio VADER   cashtag / Python = {:.1}x", vader / py);
            println!("ratio finance cashtag / Python VADER = {:.1}x", finance / py);
        }
        Ok(o) => println!("reference not run: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
        Err(e) => println!("reference not run ({}: {e}); run scripts/bench-sentiment", python().display()),
    }
}
