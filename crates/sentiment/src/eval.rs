//! Measures of a scorer against labeled posts: accuracy, macro-F1 and ROC-AUC, and the
//! majority-class baseline. Used by the finance accuracy test and `examples/evaluate`.

use cashtag_core::SentimentLabel;

/// One labeled post and a scorer's continuous score and label for it.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub truth: SentimentLabel,
    pub score: f64,
    pub label: SentimentLabel,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub n: usize,
    /// Share of posts whose label equals the truth (a neutral label is wrong).
    pub accuracy: f64,
    /// Mean F1 of the bullish and bearish classes.
    pub macro_f1: f64,
    /// Probability that a random bullish post scores above a random bearish one.
    pub roc_auc: f64,
}

/// Metrics of scored posts whose truth is bullish or bearish.
pub fn metrics(rows: &[Scored]) -> Metrics {
    let n = rows.len();
    let correct = rows.iter().filter(|r| r.label == r.truth).count();
    let f1 = |class: SentimentLabel| {
        let tp = rows.iter().filter(|r| r.label == class && r.truth == class).count() as f64;
        let fp = rows.iter().filter(|r| r.label == class && r.truth != class).count() as f64;
        let fneg = rows.iter().filter(|r| r.label != class && r.truth == class).count() as f64;
        if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fneg) }
    };
    let pos: Vec<f64> = rows.iter().filter(|r| r.truth == SentimentLabel::Bullish).map(|r| r.score).collect();
    let neg: Vec<f64> = rows.iter().filter(|r| r.truth == SentimentLabel::Bearish).map(|r| r.score).collect();
    let mut wins = 0.0;
    for p in &pos {
        for q in &neg {
            wins += if p > q {
                1.0
            } else if p == q {
                0.5
            } else {
                0.0
            };
        }
    }
    let auc = if pos.is_empty() || neg.is_empty() { 0.5 } else { wins / (pos.len() * neg.len()) as f64 };
    Metrics {
        n,
        accuracy: if n == 0 { 0.0 } else { correct as f64 / n as f64 },
        macro_f1: (f1(SentimentLabel::Bullish) + f1(SentimentLabel::Bearish)) / 2.0,
        roc_auc: auc,
    }
}

/// The baseline that always answers the most frequent class (score constant).
pub fn majority_baseline(truths: &[SentimentLabel]) -> Metrics {
    let bull = truths.iter().filter(|t| **t == SentimentLabel::Bullish).count();
    let majority = if bull * 2 >= truths.len() { SentimentLabel::Bullish } else { SentimentLabel::Bearish };
    let rows: Vec<Scored> = truths.iter().map(|t| Scored { truth: *t, score: 0.0, label: majority }).collect();
    metrics(&rows)
}

/// Parses the `label<TAB>text` evaluation file (first line is a header).
pub fn parse_tsv(text: &str) -> Vec<(SentimentLabel, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (label, body) = l.split_once('\t')?;
            let label = match label {
                "bullish" => SentimentLabel::Bullish,
                "bearish" => SentimentLabel::Bearish,
                _ => return None,
            };
            Some((label, body.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use SentimentLabel::*;

    #[test]
    fn metrics_by_hand() {
        let rows = [
            Scored { truth: Bullish, score: 0.9, label: Bullish },
            Scored { truth: Bullish, score: 0.0, label: Neutral },
            Scored { truth: Bearish, score: -0.5, label: Bearish },
            Scored { truth: Bearish, score: 0.2, label: Bullish },
        ];
        let m = metrics(&rows);
        assert_eq!(m.accuracy, 0.5);
        // bullish: tp 1, fp 1, fn 1 → 0.5; bearish: tp 1, fp 0, fn 1 → 2/3.
        assert!((m.macro_f1 - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // pairs: (0.9>-0.5) (0.9>0.2) (0.0>-0.5) (0.0<0.2) → 3/4.
        assert_eq!(m.roc_auc, 0.75);
        let b = majority_baseline(&[Bullish, Bullish, Bearish]);
        assert!((b.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(b.roc_auc, 0.5);
    }
}
