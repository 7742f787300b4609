//! Walk-forward evaluation: train only on the past, forecast the next block.
//!
//! Blocks are runs of whole sessions. A block's training set is every sample whose label
//! was known one horizon before the block starts (`target ≤ block start − horizon`):
//! samples whose label interval overlaps the block are purged, and one horizon more is
//! embargoed. In the same blocks, three baselines forecast too — the training majority
//! class, "same as the last move" (always the last move's direction — the rule the track
//! record scores — with the rule's training hit rate as its confidence) and a price-only model (the same regression on the price features) —
//! so the model is compared with them on exactly the same forecasts.

use serde::{Deserialize, Serialize};

use crate::features::{FeatureDef, Horizon, Sample, project};
use crate::logit::Logit;
use crate::metrics::{Scored, Scores, binomial_p, score};

/// The out-of-sample forecasts of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Index into the samples.
    pub sample: usize,
    pub model: f64,
    pub majority: f64,
    pub last_move: f64,
    pub price_only: f64,
}

/// The baselines' names, in report order.
pub const BASELINES: [&str; 3] = ["majority", "last_move", "price_only"];

impl Forecast {
    pub fn baseline(&self, name: &str) -> f64 {
        match name {
            "majority" => self.majority,
            "last_move" => self.last_move,
            _ => self.price_only,
        }
    }
}

/// How to fit.
#[derive(Debug, Clone)]
pub struct FitSpec {
    pub features: Vec<FeatureDef>,
    pub l2: f64,
    pub horizon: Horizon,
    /// A market proxy with prices: without one the price-only baseline has no `ret_market`.
    pub market: bool,
}

impl FitSpec {
    /// The price-only baseline's features.
    pub fn price_features(&self) -> Vec<FeatureDef> {
        crate::features::FEATURES
            .iter()
            .copied()
            .filter(|f| f.price_only && (self.market || f.name != "ret_market"))
            .collect()
    }
}

/// The last-move baseline's P(up): the direction of the last move (`ret_recent > 0` is
/// up), never turned around, so that its hits are the rule's hits wherever it is scored;
/// its confidence is the rule's training hit rate when that is above one half, else
/// (barely above) a coin's.
pub fn last_move_forecast(last_up: bool, rule_hits: f64) -> f64 {
    let q = rule_hits.clamp(0.5 + 1e-6, 1.0 - 1e-6);
    if last_up { q } else { 1.0 - q }
}

/// Fits the model's regression on `samples`.
pub fn fit(samples: &[&Sample], defs: &[FeatureDef], l2: f64) -> Logit {
    let x: Vec<Vec<f64>> = samples.iter().map(|s| project(&s.features, defs)).collect();
    let y: Vec<bool> = samples.iter().map(|s| s.up()).collect();
    Logit::fit(&x, &y, l2)
}

fn last_move_up(s: &Sample) -> bool {
    s.features[crate::features::FEATURES.iter().position(|f| f.name == "ret_recent").expect("ret_recent")] > 0.0
}

/// One walk-forward block: forecast samples of sessions `test` (a range of session indexes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub sessions: (usize, usize),
    pub train: usize,
    pub test: usize,
}

/// Runs the walk-forward over `blocks` (half-open session ranges); blocks with fewer than
/// `min_train` training samples are skipped.
pub fn walk_forward(
    samples: &[Sample],
    blocks: &[(usize, usize)],
    spec: &FitSpec,
    min_train: usize,
) -> (Vec<Forecast>, Vec<Block>) {
    let price_defs = spec.price_features();
    let mut out = Vec::new();
    let mut done = Vec::new();
    for &(a, b) in blocks {
        let test: Vec<usize> = (0..samples.len()).filter(|&i| (a..b).contains(&samples[i].session)).collect();
        let Some(start) = test.iter().map(|&i| samples[i].t).min() else { continue };
        let cutoff = start - spec.horizon.length();
        let train: Vec<&Sample> = samples.iter().filter(|s| s.target <= cutoff).collect();
        if train.len() < min_train || train.iter().all(|s| s.up()) || !train.iter().any(|s| s.up()) {
            continue;
        }
        let model = fit(&train, &spec.features, spec.l2);
        let price = fit(&train, &price_defs, spec.l2);
        let up_rate = train.iter().filter(|s| s.up()).count() as f64 / train.len() as f64;
        let rule_hits = train.iter().filter(|s| last_move_up(s) == s.up()).count() as f64 / train.len() as f64;
        for &i in &test {
            let s = &samples[i];
            out.push(Forecast {
                sample: i,
                model: model.prob(&project(&s.features, &spec.features)),
                majority: up_rate,
                last_move: last_move_forecast(last_move_up(s), rule_hits),
                price_only: price.prob(&project(&s.features, &price_defs)),
            });
        }
        done.push(Block { sessions: (a, b), train: train.len(), test: test.len() });
    }
    (out, done)
}

/// The model's and the baselines' scores over the same forecasts, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub blocks: Vec<Block>,
    pub model: Scores,
    pub baselines: Vec<(String, Scores)>,
    /// One-sided binomial p-value of the model's hits against the majority baseline's
    /// hit rate.
    pub binomial_p: f64,
    pub alpha: f64,
    pub beats_baselines: bool,
    /// Why it does not, one line per failed criterion (empty when it does).
    pub reasons: Vec<String>,
}

/// Scores forecasts. The model beats the baselines when its log loss and Brier score are
/// below each baseline's, its ROC-AUC above each baseline's, and the binomial test of its
/// hit rate against the majority baseline rejects at α. Accuracy is reported but does not
/// decide: at a fixed 0.5 threshold it is the noisiest of the scores (a few forecasts
/// either side of 0.5 move it), while the proper scores judge the probabilities the
/// trading rule acts on.
pub fn evaluate(samples: &[Sample], forecasts: &[Forecast], blocks: Vec<Block>, alpha: f64) -> Evaluation {
    let scored = |f: &dyn Fn(&Forecast) -> f64| -> Vec<Scored<'_>> {
        forecasts
            .iter()
            .map(|x| Scored { ticker: &samples[x.sample].ticker, p: f(x), ret: samples[x.sample].ret })
            .collect()
    };
    let model = score(&scored(&|x| x.model));
    let baselines: Vec<(String, Scores)> =
        BASELINES.iter().map(|b| (b.to_string(), score(&scored(&|x| x.baseline(b))))).collect();
    let majority = &baselines[0].1;
    let binomial_p = binomial_p(model.hits, model.n, majority.accuracy.max(0.5));
    let mut reasons = Vec::new();
    if model.n == 0 {
        reasons.push("no out-of-sample forecasts: too little history for the walk-forward".to_string());
    }
    for (name, b) in &baselines {
        if model.log_loss >= b.log_loss {
            reasons.push(format!("log loss {:.4} is not below {name}'s {:.4}", model.log_loss, b.log_loss));
        }
        if model.brier >= b.brier {
            reasons.push(format!("Brier score {:.4} is not below {name}'s {:.4}", model.brier, b.brier));
        }
        if model.roc_auc <= b.roc_auc {
            reasons.push(format!("ROC-AUC {:.4} is not above {name}'s {:.4}", model.roc_auc, b.roc_auc));
        }
    }
    if binomial_p >= alpha {
        reasons.push(format!(
            "hit rate {:.4} over {} forecasts is not significantly above the majority baseline's {:.4} (binomial p = {:.3e} ≥ α = {alpha})",
            model.accuracy, model.n, majority.accuracy, binomial_p
        ));
    }
    Evaluation { blocks, model, baselines, binomial_p, alpha, beats_baselines: reasons.is_empty(), reasons }
}

/// `k` walk-forward blocks over `sessions` sessions: the history is cut into k + 1 equal
/// runs of sessions and each of the last k is forecast from everything before it.
pub fn cv_blocks(sessions: usize, k: usize) -> Vec<(usize, usize)> {
    let parts = k + 1;
    let cut = |i: usize| i * sessions / parts;
    (1..parts).map(|i| (cut(i), cut(i + 1))).filter(|(a, b)| b > a).collect()
}
