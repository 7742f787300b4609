//! `cashtag-twitter score`: scores texts from stdin, one JSON object per line on stdout.
//!
//! A file or a pipe is scored on every core: the input is cut into blocks of whole lines,
//! worker threads score the blocks, and the output is written in input order, so the
//! result is the same as one thread's (`--threads 1`). A terminal is scored a line at a
//! time, each answer flushed as soon as it is ready.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::{Arc, Mutex, mpsc};

use cashtag_sentiment::Scorer;
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Tickers not to read as words (comma-separated), in addition to any `tickers` field
    /// of a JSON input line. Cashtags ($AAPL) are never read as words.
    #[arg(long, value_delimiter = ',')]
    tickers: Vec<String>,
    /// Threads that score (default: one per core). Output order is input order whatever
    /// the number.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
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

/// Scores one input line (without its line break) into `out` as one JSON line; the
/// reason when the line is skipped.
fn score_line(scorer: &Scorer, extra_tickers: &[String], bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let line = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})")).and_then(parse_line)?;
    let refs: Vec<&str> = line.tickers.iter().map(|t| &**t).chain(extra_tickers.iter().map(String::as_str)).collect();
    let vader = scorer.vader(&line.text);
    let finance = scorer.finance(&line.text, &refs);
    let o =
        Output { text: &line.text, vader, finance: FinanceOut { score: finance.score, label: finance.label.as_str() } };
    serde_json::to_writer(&mut *out, &o).expect("writing JSON to memory does not fail");
    out.push(b'\n');
    Ok(())
}

/// Scores stdin to stdout.
pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let threads = args.threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let stdin = std::io::stdin();
    let skipped = if stdin.is_terminal() {
        score_interactively(args, stdin.lock())?
    } else {
        score_blocks(args, stdin, threads)?
    };
    if skipped > 0 {
        anyhow::bail!("{skipped} line(s) skipped");
    }
    Ok(())
}

/// A line at a time, each answer flushed: for someone typing.
fn score_interactively(args: &ScoreArgs, mut input: impl BufRead) -> anyhow::Result<usize> {
    let scorer = Scorer::new();
    let mut out = std::io::stdout().lock();
    let (mut buf, mut line_out) = (Vec::new(), Vec::new());
    let (mut n, mut skipped) = (0, 0);
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(skipped);
        }
        n += 1;
        line_out.clear();
        match score_line(&scorer, &args.tickers, buf.strip_suffix(b"\n").unwrap_or(&buf), &mut line_out) {
            Ok(()) => {
                out.write_all(&line_out)?;
                out.flush()?;
            }
            Err(e) => {
                eprintln!("line {n}: {e}; skipped");
                skipped += 1;
            }
        }
    }
}

/// Bytes read from the input at a time; a block holds the whole lines among them.
const BLOCK_BYTES: usize = 1 << 16;

/// Whole lines of the input, numbered in reading order.
struct Block {
    seq: u64,
    data: Vec<u8>,
}

/// A scored block: its output, its line count, and the lines it skipped (their number
/// within the block, and why).
struct Scored {
    seq: u64,
    out: Vec<u8>,
    lines: usize,
    skipped: Vec<(usize, String)>,
}

fn score_block(scorer: &Scorer, extra_tickers: &[String], block: Block) -> Scored {
    let mut scored =
        Scored { seq: block.seq, out: Vec::with_capacity(block.data.len() * 2), lines: 0, skipped: Vec::new() };
    let data = block.data.strip_suffix(b"\n").unwrap_or(&block.data);
    for line in data.split(|b| *b == b'\n') {
        scored.lines += 1;
        if let Err(e) = score_line(scorer, extra_tickers, line, &mut scored.out) {
            scored.skipped.push((scored.lines, e));
        }
    }
    scored
}

/// Reads blocks of whole lines, scores them on `threads` threads, writes the results in
/// input order; returns the number of lines skipped. Memory stays bounded: a few blocks
/// per thread are in flight.
fn score_blocks(args: &ScoreArgs, mut input: impl Read + Send, threads: usize) -> anyhow::Result<usize> {
    let scorer = Scorer::new();
    let (block_tx, block_rx) = mpsc::sync_channel::<Block>(threads * 2);
    // Shared by the scoring threads only: when they have all stopped (the writer went
    // away), the reader's next send fails and it stops too.
    let block_rx = Arc::new(Mutex::new(block_rx));
    let (scored_tx, scored_rx) = mpsc::sync_channel::<Scored>(threads * 2);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let scored_tx = scored_tx.clone();
            let (block_rx, scorer) = (block_rx.clone(), &scorer);
            scope.spawn(move || {
                loop {
                    let next = block_rx.lock().expect("a scoring thread panicked").recv();
                    let Ok(block) = next else { return };
                    if scored_tx.send(score_block(scorer, &args.tickers, block)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((scored_tx, block_rx));
        let writer = scope.spawn(move || write_in_order(scored_rx));
        let read = read_blocks(&mut input, block_tx);
        let written = writer.join().expect("the writer does not panic");
        read?;
        written
    })
}

/// Cuts the input into blocks at line breaks and hands them on until the input ends (or
/// the writer stopped).
fn read_blocks(input: &mut impl Read, blocks: mpsc::SyncSender<Block>) -> anyhow::Result<()> {
    let mut seq = 0;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut data = std::mem::take(&mut carry);
        let start = data.len();
        data.resize(start + BLOCK_BYTES, 0);
        let n = loop {
            match input.read(&mut data[start..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        data.truncate(start + n);
        if n == 0 {
            if !data.is_empty() {
                // An error means the writer stopped; it reports why.
                let _ = blocks.send(Block { seq, data });
            }
            return Ok(());
        }
        // Whole lines go now; the unfinished last one waits for the next read.
        if let Some(end) = data.iter().rposition(|b| *b == b'\n') {
            carry = data.split_off(end + 1);
            if blocks.send(Block { seq, data }).is_err() {
                return Ok(());
            }
            seq += 1;
        } else {
            carry = data;
        }
    }
}

/// Writes scored blocks to stdout in input order and reports skipped lines with their
/// line numbers; returns how many were skipped.
fn write_in_order(scored: mpsc::Receiver<Scored>) -> anyhow::Result<usize> {
    let mut out = std::io::stdout().lock();
    let mut waiting: BTreeMap<u64, Scored> = BTreeMap::new();
    let (mut next, mut lines_before, mut skipped) = (0u64, 0usize, 0usize);
    for s in scored {
        waiting.insert(s.seq, s);
        while let Some(s) = waiting.remove(&next) {
            out.write_all(&s.out)?;
            for (line, e) in &s.skipped {
                eprintln!("line {}: {e}; skipped", lines_before + line);
            }
            skipped += s.skipped.len();
            lines_before += s.lines;
            next += 1;
        }
    }
    out.flush()?;
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks are cut at line breaks wherever the reads end, and every line (the last
    /// one without a break too) is scored once, in order.
    #[test]
    fn blocks_hold_whole_lines() {
        let mut text = String::new();
        for i in 0..(3 * BLOCK_BYTES / 40) {
            text.push_str(&format!("{{\"text\":\"line {i} is great $AAPL\",\"tickers\":[\"AAPL\"]}}\n"));
        }
        text.push_str("no break at the end");
        let (tx, rx) = mpsc::sync_channel(1000);
        read_blocks(&mut text.as_bytes(), tx).unwrap();
        let blocks: Vec<Block> = rx.into_iter().collect();
        assert!(blocks.len() >= 3, "{} blocks", blocks.len());
        assert!(blocks.iter().enumerate().all(|(i, b)| b.seq == i as u64));
        assert!(blocks[..blocks.len() - 1].iter().all(|b| b.data.ends_with(b"\n")));
        let joined: Vec<u8> = blocks.iter().flat_map(|b| b.data.clone()).collect();
        assert_eq!(joined, text.as_bytes());

        let scorer = Scorer::new();
        let scored: Vec<Scored> = blocks.into_iter().map(|b| score_block(&scorer, &[], b)).collect();
        let lines: usize = scored.iter().map(|s| s.lines).sum();
        assert_eq!(lines, text.lines().count());
        let mut serial = Vec::new();
        for line in text.lines() {
            score_line(&scorer, &[], line.as_bytes(), &mut serial).unwrap();
        }
        let parallel: Vec<u8> = scored.iter().flat_map(|s| s.out.clone()).collect();
        assert_eq!(parallel, serial);
    }
}
