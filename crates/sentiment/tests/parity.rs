//! VADER parity with the reference vaderSentiment 3.3.2 (fixture from parity/generate.py),
//! and the finance score held fixed (`parity/finance-1.jsonl`: the scores of
//! `cashtag-finance-1` on the parity texts, the labeled StockTwits posts and simulated stock
//! posts, recorded before the scoring path was optimised), so a faster scorer cannot drift.

use cashtag_sentiment::{Scorer, Vader};

#[derive(serde::Deserialize)]
struct Row {
    text: String,
    neg: f64,
    neu: f64,
    pos: f64,
    compound: f64,
}

#[test]
fn matches_vader_sentiment_3_3_2_exactly() {
    let vader = Vader::new();
    let rows: Vec<Row> =
        include_str!("../parity/vader-3.3.2.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.len() >= 2_000, "fixture has {} rows", rows.len());
    let mut diffs = Vec::new();
    for r in &rows {
        let s = vader.polarity_scores(&r.text);
        if (s.neg, s.neu, s.pos, s.compound) != (r.neg, r.neu, r.pos, r.compound) {
            diffs.push(format!(
                "{:?}\n  reference neg {} neu {} pos {} compound {}\n  cashtag   neg {} neu {} pos {} compound {}",
                r.text, r.neg, r.neu, r.pos, r.compound, s.neg, s.neu, s.pos, s.compound
            ));
        }
    }
    let exact = rows.len() - diffs.len();
    println!("VADER parity: {exact} of {} rows identical", rows.len());
    for d in &diffs {
        println!("{d}");
    }
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}

#[derive(serde::Deserialize)]
struct FinanceRow {
    text: String,
    tickers: Vec<String>,
    finance: FinanceExpected,
}

#[derive(serde::Deserialize)]
struct FinanceExpected {
    score: f64,
    label: String,
}

#[test]
fn finance_scores_are_unchanged() {
    let scorer = Scorer::new();
    let rows: Vec<FinanceRow> =
        include_str!("../parity/finance-1.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.len() >= 10_000, "fixture has {} rows", rows.len());
    let diffs: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let tickers: Vec<&str> = r.tickers.iter().map(String::as_str).collect();
            let s = scorer.finance(&r.text, &tickers);
            (s.score != r.finance.score || s.label.as_str() != r.finance.label).then(|| {
                format!(
                    "{:?} {:?}: recorded {} {}, now {} {}",
                    r.text,
                    r.tickers,
                    r.finance.score,
                    r.finance.label,
                    s.score,
                    s.label.as_str()
                )
            })
        })
        .collect();
    println!("finance: {} of {} rows unchanged", rows.len() - diffs.len(), rows.len());
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}
