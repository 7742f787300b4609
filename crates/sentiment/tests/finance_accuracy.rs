//! The finance score must beat VADER clearly on real, author-labeled stock posts
//! (eval/stocktwits-sample.tsv; held-out odd rows, see eval/PROVENANCE.md).

use cashtag_core::SentimentLabel;
use cashtag_sentiment::Scorer;
use cashtag_sentiment::eval::{Scored, majority_baseline, metrics, parse_tsv};

#[test]
fn finance_beats_vader_and_the_majority_class_on_held_out_posts() {
    let posts = parse_tsv(include_str!("../eval/stocktwits-sample.tsv"));
    assert!(posts.len() >= 400);
    let held_out: Vec<&(SentimentLabel, String)> = posts.iter().skip(1).step_by(2).collect();
    let scorer = Scorer::new();
    let vader: Vec<Scored> = held_out
        .iter()
        .map(|(t, s)| {
            let c = scorer.vader(s).compound;
            let label = if c >= 0.05 {
                SentimentLabel::Bullish
            } else if c <= -0.05 {
                SentimentLabel::Bearish
            } else {
                SentimentLabel::Neutral
            };
            Scored { truth: *t, score: c, label }
        })
        .collect();
    let finance: Vec<Scored> = held_out
        .iter()
        .map(|(t, s)| {
            let f = scorer.finance(s, &[]);
            Scored { truth: *t, score: f.score, label: f.label }
        })
        .collect();
    let (v, f) = (metrics(&vader), metrics(&finance));
    let base = majority_baseline(&held_out.iter().map(|p| p.0).collect::<Vec<_>>());
    println!("majority {base:?}\nvader    {v:?}\nfinance  {f:?}");
    assert!(f.accuracy >= v.accuracy + 0.15, "accuracy: finance {} vs VADER {}", f.accuracy, v.accuracy);
    assert!(f.macro_f1 >= v.macro_f1 + 0.15, "macro-F1: finance {} vs VADER {}", f.macro_f1, v.macro_f1);
    assert!(f.roc_auc >= v.roc_auc + 0.15, "ROC-AUC: finance {} vs VADER {}", f.roc_auc, v.roc_auc);
    assert!(f.accuracy > base.accuracy && f.macro_f1 > base.macro_f1 && f.roc_auc > base.roc_auc + 0.2);
}
