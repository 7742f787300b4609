//! `cashtag-twitter score`: scores texts from stdin, one JSON object per line on stdout.

use std::io::{BufRead, IsTerminal, Write};

use cashtag_sentiment::Scorer;
use serde::Serialize;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Tickers not to read as words (comma-separated), in addition to any `tickers` field
    /// of a JSON input line. Cashtags ($AAPL) are never read as words.
    #[arg(long, value_delimiter = ',')]
    tickers: Vec<String>,
}

#[derive(Serialize)]
struct Output<'a> {
    text: &'a str,
    vader: cashtag_sentiment::vader::VaderScores,
    finance: FinanceOut,
}

#[derive(Serialize)]
struct FinanceOut {
    score: f64,
    label: &'static str,
}

/// One input line: plain text, or a JSON object with a `text` field (and optionally `tickers`).
fn parse_line(line: &str) -> Result<(String, Vec<String>), String> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return Ok((line.to_string(), Vec::new()));
    }
    let v: serde_json::Value = serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}"))?;
    let text = v.get("text").and_then(|t| t.as_str()).ok_or("a JSON line needs a string field \"text\"")?.to_string();
    let tickers = v
        .get("tickers")
        .and_then(|t| t.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok((text, tickers))
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let scorer = Scorer::new();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut skipped = 0usize;
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        let (text, mut tickers) = match parse_line(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("line {}: {e}; skipped", n + 1);
                skipped += 1;
                continue;
            }
        };
        tickers.extend(args.tickers.iter().cloned());
        let refs: Vec<&str> = tickers.iter().map(String::as_str).collect();
        let s = scorer.score_post(&text, &refs, None);
        let o = Output {
            text: &text,
            vader: s.vader,
            finance: FinanceOut { score: s.finance.score, label: s.finance.label.as_str() },
        };
        serde_json::to_writer(&mut out, &o)?;
        out.write_all(b"\n")?;
        if interactive {
            out.flush()?;
        }
    }
    out.flush()?;
    if skipped > 0 {
        anyhow::bail!("{skipped} line(s) skipped");
    }
    Ok(())
}
