//! VADER parity with the reference vaderSentiment 3.3.2 (fixture from parity/generate.py).

use cashtag_sentiment::Vader;

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
    // At least 99.9% identical; every difference is printed above and explained in README.md.
    assert!(exact * 1000 >= rows.len() * 999, "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}
