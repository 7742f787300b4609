//! Scores of probabilistic direction forecasts, and of the P&L of trading on them.
//!
//! Each is the textbook definition (as scikit-learn computes it where it has one):
//! accuracy, ROC-AUC (Mann–Whitney, ties counted half), Brier score, log loss (p clipped
//! to [1e-15, 1 − 1e-15]), Matthews correlation, the mean over tickers of the Spearman
//! correlation between p(up) and the realized return (rank IC), a one-sided binomial test
//! of a hit rate, and the Sharpe ratio with its probabilistic and deflated versions
//! (Bailey & López de Prado, 2012 and 2014).

use std::collections::BTreeMap;

use cashtag_stats::special::{inc_beta, norm_cdf};
use serde::{Deserialize, Serialize};

/// One forecast and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<'a> {
    pub ticker: &'a str,
    pub p: f64,
    pub ret: f64,
}

impl Scored<'_> {
    fn up(&self) -> bool {
        self.ret > 0.0
    }
}

/// The forecast scores of one set of forecasts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub n: usize,
    pub hits: usize,
    pub accuracy: f64,
    pub roc_auc: f64,
    pub brier: f64,
    pub log_loss: f64,
    pub mcc: f64,
    /// Mean over tickers (with ≥ 3 forecasts) of Spearman(p, realized return).
    pub rank_ic: f64,
}

pub fn score(f: &[Scored<'_>]) -> Scores {
    let n = f.len();
    let hits = f.iter().filter(|s| (s.p > 0.5) == s.up()).count();
    let (mut tp, mut tn, mut fp, mut fn_) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for s in f {
        match (s.p > 0.5, s.up()) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    let denom = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
    let nn = n.max(1) as f64;
    Scores {
        n,
        hits,
        accuracy: hits as f64 / nn,
        roc_auc: roc_auc(f),
        brier: f.iter().map(|s| (s.p - f64::from(u8::from(s.up()))).powi(2)).sum::<f64>() / nn,
        log_loss: f
            .iter()
            .map(|s| {
                let p = s.p.clamp(1e-15, 1.0 - 1e-15);
                if s.up() { -p.ln() } else { -(1.0 - p).ln() }
            })
            .sum::<f64>()
            / nn,
        mcc: if denom > 0.0 { (tp * tn - fp * fn_) / denom } else { 0.0 },
        rank_ic: rank_ic(f),
    }
}

/// ROC-AUC; 0.5 when one class is absent.
pub fn roc_auc(f: &[Scored<'_>]) -> f64 {
    let p: Vec<f64> = f.iter().map(|s| s.p).collect();
    let ranks = cashtag_stats::ranks(&p);
    let pos = f.iter().filter(|s| s.up()).count() as f64;
    let neg = f.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = f.iter().zip(&ranks).filter(|(s, _)| s.up()).map(|(_, r)| r).sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

pub fn rank_ic(f: &[Scored<'_>]) -> f64 {
    let mut by: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for s in f {
        let e = by.entry(s.ticker).or_default();
        e.0.push(s.p);
        e.1.push(s.ret);
    }
    let ics: Vec<f64> = by
        .values()
        .filter(|(p, _)| p.len() >= 3)
        .map(|(p, r)| cashtag_stats::spearman(p, r).r)
        .filter(|r| r.is_finite())
        .collect();
    if ics.is_empty() { 0.0 } else { ics.iter().sum::<f64>() / ics.len() as f64 }
}

/// P(X ≥ hits) for X ~ Binomial(n, p0): the one-sided p-value of a hit rate against a
/// baseline's rate p0.
pub fn binomial_p(hits: usize, n: usize, p0: f64) -> f64 {
    if hits == 0 {
        return 1.0;
    }
    if hits > n {
        return 0.0;
    }
    if p0 <= 0.0 {
        return 0.0;
    }
    if p0 >= 1.0 {
        return 1.0;
    }
    inc_beta(hits as f64, (n - hits + 1) as f64, p0)
}

/// One bin of a calibration curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub n: usize,
    pub mean_p: f64,
    pub up_rate: f64,
}

/// Ten equal-width bins of p(up), the empty ones left out.
pub fn calibration(f: &[Scored<'_>]) -> Vec<CalibrationBin> {
    (0..10)
        .filter_map(|b| {
            let (lo, hi) = (b as f64 / 10.0, (b + 1) as f64 / 10.0);
            let inside: Vec<&Scored> = f.iter().filter(|s| s.p >= lo && (s.p < hi || (b == 9 && s.p <= hi))).collect();
            (!inside.is_empty()).then(|| CalibrationBin {
                from: lo,
                to: hi,
                n: inside.len(),
                mean_p: inside.iter().map(|s| s.p).sum::<f64>() / inside.len() as f64,
                up_rate: inside.iter().filter(|s| s.up()).count() as f64 / inside.len() as f64,
            })
        })
        .collect()
}

/// Sharpe ratio statistics of a series of per-period returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharpeStats {
    pub periods: usize,
    /// Mean / standard deviation per period.
    pub sharpe: f64,
    /// `sharpe` × √(periods per year).
    pub annualized: f64,
    /// P(true Sharpe > 0) given the estimate's skew and kurtosis.
    pub probabilistic: f64,
    /// P(true Sharpe > the best of `trials` unskilled ones).
    pub deflated: f64,
    pub trials: usize,
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, refined by one
/// Halley step: relative error below 1e-15).
pub fn norm_ppf(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let x = if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - 0.02425 {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let e = norm_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The Sharpe ratio of `returns`, annualized with `per_year` periods, with the
/// probabilistic Sharpe ratio against 0 and the deflated one given `trials` variants.
///
/// The deflated ratio's benchmark is the expected maximum of `trials` Sharpe estimates of
/// unskilled strategies: √V · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))), where V, the
/// variance across trials, is taken as the estimator's own variance
/// (1 − γ₃·SR + (γ₄ − 1)/4·SR²) / (n − 1) — we keep the number of variants, not their
/// Sharpe ratios.
pub fn sharpe(returns: &[f64], per_year: f64, trials: usize) -> SharpeStats {
    let n = returns.len();
    let trials = trials.max(1);
    let empty = SharpeStats { periods: n, sharpe: 0.0, annualized: 0.0, probabilistic: 0.5, deflated: 0.5, trials };
    if n < 3 {
        return empty;
    }
    let nf = n as f64;
    let mean = returns.iter().sum::<f64>() / nf;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    if var <= 0.0 {
        return empty;
    }
    let sd = var.sqrt();
    let sr = mean / sd;
    let m2 = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / nf;
    let skew = returns.iter().map(|r| (r - mean).powi(3)).sum::<f64>() / nf / m2.powf(1.5);
    let kurt = returns.iter().map(|r| (r - mean).powi(4)).sum::<f64>() / nf / (m2 * m2);
    let spread = (1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr).max(1e-12);
    let psr = |benchmark: f64| norm_cdf((sr - benchmark) * (nf - 1.0).sqrt() / spread.sqrt());
    let benchmark = if trials > 1 {
        const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
        let t = trials as f64;
        (spread / (nf - 1.0)).sqrt()
            * ((1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / t)
                + EULER_GAMMA * norm_ppf(1.0 - 1.0 / (t * std::f64::consts::E)))
    } else {
        0.0
    };
    SharpeStats {
        periods: n,
        sharpe: sr,
        annualized: sr * per_year.sqrt(),
        probabilistic: psr(0.0),
        deflated: psr(benchmark),
        trials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: f64, ret: f64) -> Scored<'static> {
        Scored { ticker: "A", p, ret }
    }

    #[test]
    fn scores_match_hand_computed_values() {
        let f = [s(0.9, 1.0), s(0.8, -1.0), s(0.3, -1.0), s(0.6, 1.0), s(0.2, 1.0)];
        let r = score(&f);
        assert_eq!(r.hits, 3);
        // Positives 0.9, 0.6, 0.2; negatives 0.8, 0.3: pairs won 2 + 1 + 0 = 3 of 6.
        assert!((r.roc_auc - 0.5).abs() < 1e-12);
        let brier = (0.01 + 0.64 + 0.09 + 0.16 + 0.64) / 5.0;
        assert!((r.brier - brier).abs() < 1e-12);
        let ll = -((0.9f64).ln() + (0.2f64).ln() + (0.7f64).ln() + (0.6f64).ln() + (0.2f64).ln()) / 5.0;
        assert!((r.log_loss - ll).abs() < 1e-12);
        // tp 2, fp 1, tn 1, fn 1: (2·1 − 1·1)/√(3·3·2·2) = 1/6.
        assert!((r.mcc - 1.0 / 6.0).abs() < 1e-12);
        assert!(
            (r.rank_ic - cashtag_stats::spearman(&[0.9, 0.8, 0.3, 0.6, 0.2], &[1.0, -1.0, -1.0, 1.0, 1.0]).r).abs()
                < 1e-12
        );
    }

    #[test]
    fn binomial_and_normal_tails() {
        // P(X ≥ 60 | 100, 0.5) = 0.028443966820490...
        assert!((binomial_p(60, 100, 0.5) - 0.028_443_966_820_490_4).abs() < 1e-12);
        assert_eq!(binomial_p(0, 10, 0.5), 1.0);
        for p in [1e-10, 0.001, 0.02, 0.3, 0.5, 0.77, 0.99, 1.0 - 1e-9] {
            assert!((norm_cdf(norm_ppf(p)) - p).abs() < 1e-14 * p.max(1e-3) * 1e3, "{p}");
        }
        assert!((norm_ppf(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
    }

    #[test]
    fn sharpe_and_its_deflation() {
        let r: Vec<f64> = (0..500).map(|i| 0.001 + 0.01 * ((i as f64) * 1.7).sin()).collect();
        let one = sharpe(&r, 252.0, 1);
        let many = sharpe(&r, 252.0, 100);
        assert!(one.sharpe > 0.0 && one.probabilistic > 0.9);
        assert!(many.deflated < one.probabilistic, "trying 100 variants deflates the evidence");
        assert!((one.annualized - one.sharpe * 252f64.sqrt()).abs() < 1e-12);
    }
}
