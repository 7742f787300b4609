//! The binary's command-line surface: help, `score`, and `run` (not built yet).

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-twitter");

#[test]
fn help_works() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: cashtag-twitter") && text.contains("score"));
}

#[test]
fn run_says_not_built_yet_and_fails() {
    let out = Command::new(BIN).arg("run").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not built yet"));
}

fn score(input: &str, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let mut child = Command::new(BIN)
        .arg("score")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let rows = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.success(), rows, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn score_reads_lines_and_json_lines() {
    let (ok, rows, _) = score(
        "VADER is smart, handsome, and funny.\n{\"text\": \"$TSLA to the moon 🚀\"}\n{\"text\": \"LOVE is dumping\", \"tickers\": [\"LOVE\"]}\n",
        &[],
    );
    assert!(ok);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["text"], "VADER is smart, handsome, and funny.");
    assert_eq!(rows[0]["vader"]["compound"], 0.8316);
    assert_eq!(rows[0]["vader"]["pos"], 0.746);
    assert_eq!(rows[1]["finance"]["label"], "bullish");
    assert!(rows[1]["finance"]["score"].as_f64().unwrap() > 0.5);
    // LOVE is a ticker on this line: only "dumping" counts.
    assert_eq!(rows[2]["finance"]["label"], "bearish");
}

#[test]
fn bad_json_lines_are_reported_and_skipped() {
    let (ok, rows, err) = score("{\"txt\": 1}\n{not json\nfine text\n", &["--tickers", "AAPL"]);
    assert!(!ok, "exit status says lines were skipped");
    assert_eq!(rows.len(), 1);
    assert!(err.contains("line 1") && err.contains("\"text\""), "{err}");
    assert!(err.contains("line 2") && err.contains("not valid JSON"), "{err}");
}
