//! `cashtag-twitter score`: scores texts from stdin, one JSON object per line on stdout.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal, Write};

use cashtag_sentiment::Scorer;
use serde::{Deserialize, Serialize};

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

/// A JSON input line: the text, and symbols not to read as words. Borrowed from the line
/// where no escape forces a copy.
#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default, borrow)]
    tickers: Vec<Cow<'a, str>>,
}

/// One input line: plain text, or a JSON object with a `text` field (and optionally `tickers`).
fn parse_line(line: &str) -> Result<JsonLine<'_>, String> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return Ok(JsonLine { text: Cow::Borrowed(line), tickers: Vec::new() });
    }
    serde_json::from_str(trimmed).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            format!("a JSON line needs a string field \"text\" (and \"tickers\", if given, a list of strings): {e}")
        }
        _ => format!("not valid JSON: {e}"),
    })
}

/// Scores stdin to stdout a line at a time, reusing one line buffer: the input is never
/// held whole, and a line costs no allocation beyond its tickers (and escaped strings).
pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let scorer = Scorer::new();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut skipped = 0usize;
    let mut buf = Vec::with_capacity(1024);
    let mut n = 0usize;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let parsed = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})")).and_then(parse_line);
        let line = match parsed {
            Ok(v) => v,
            Err(e) => {
                eprintln!("line {n}: {e}; skipped");
                skipped += 1;
                continue;
            }
        };
        let refs: Vec<&str> =
            line.tickers.iter().map(|t| &**t).chain(args.tickers.iter().map(String::as_str)).collect();
        let vader = scorer.vader(&line.text);
        let finance = scorer.finance(&line.text, &refs);
        let o = Output {
            text: &line.text,
            vader,
            finance: FinanceOut { score: finance.score, label: finance.label.as_str() },
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
