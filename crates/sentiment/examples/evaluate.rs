//! Finance accuracy: VADER compound vs the finance score vs the majority class on labeled
//! stock posts. Usage: cargo run --release -p cashtag-sentiment --example evaluate [FILE.tsv]
//! (default: eval/stocktwits-sample.tsv). Even rows tuned the lexicon; odd rows are held out.

use cashtag_core::SentimentLabel;
use cashtag_sentiment::Scorer;
use cashtag_sentiment::eval::{Metrics, Scored, majority_baseline, metrics, parse_tsv};

fn vader_label(c: f64) -> SentimentLabel {
    if c >= 0.05 {
        SentimentLabel::Bullish
    } else if c <= -0.05 {
        SentimentLabel::Bearish
    } else {
        SentimentLabel::Neutral
    }
}

fn row(name: &str, m: Metrics) {
    println!("{name:<22} {:>5} {:>9.3} {:>9.3} {:>9.3}", m.n, m.accuracy, m.macro_f1, m.roc_auc);
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/eval/stocktwits-sample.tsv").into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let posts = parse_tsv(&text);
    let scorer = Scorer::new();
    let verbose = std::env::var_os("VERBOSE").is_some();
    for (split, keep) in [("tuning (even rows)", 0usize), ("held out (odd rows)", 1), ("all", 2)] {
        let chosen: Vec<&(SentimentLabel, String)> =
            posts.iter().enumerate().filter(|(i, _)| keep == 2 || i % 2 == keep).map(|(_, p)| p).collect();
        let vader: Vec<Scored> = chosen
            .iter()
            .map(|(t, s)| {
                let c = scorer.vader(s).compound;
                Scored { truth: *t, score: c, label: vader_label(c) }
            })
            .collect();
        let fin: Vec<Scored> = chosen
            .iter()
            .map(|(t, s)| {
                let f = scorer.finance(s, &[]);
                Scored { truth: *t, score: f.score, label: f.label }
            })
            .collect();
        println!("\n{split}: {path}");
        println!("{:<22} {:>5} {:>9} {:>9} {:>9}", "scorer", "n", "accuracy", "macro-F1", "ROC-AUC");
        row("majority class", majority_baseline(&chosen.iter().map(|p| p.0).collect::<Vec<_>>()));
        row("VADER compound", metrics(&vader));
        row("finance score", metrics(&fin));
        if verbose && keep == 0 {
            for ((t, s), f) in chosen.iter().zip(&fin) {
                if f.label != *t {
                    println!("  MISS {:?} {:+.3} {s}", t, f.score);
                }
            }
        }
    }
}
