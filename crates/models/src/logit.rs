//! Regularized logistic regression by iteratively reweighted least squares (Newton's
//! method), on standardized features.
//!
//! Why our own and not `linfa-logistic`: the models have a handful of features, so each
//! Newton step is one small (k+1)×(k+1) solve and the fit converges in a few steps to the
//! exact optimum (no learning rate or tolerance that changes the coefficients); it pulls
//! in no linear-algebra stack; and the objective is stated exactly, which the
//! scikit-learn parity script relies on: minimize Σ logloss + (λ/2)·‖w‖² (intercept not
//! penalized) — scikit-learn's `LogisticRegression(C = 1/λ)` on the same standardized
//! features.

use serde::{Deserialize, Serialize};

/// Per-feature mean and scale (population standard deviation, as scikit-learn's
/// `StandardScaler`; a constant feature gets scale 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Scaler {
    pub fn fit(x: &[Vec<f64>]) -> Scaler {
        let k = x.first().map_or(0, Vec::len);
        let n = x.len().max(1) as f64;
        let mean: Vec<f64> = (0..k).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let scale = (0..k)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if v > 0.0 && v.is_finite() { v.sqrt() } else { 1.0 }
            })
            .collect();
        Scaler { mean, scale }
    }

    pub fn transform(&self, row: &[f64]) -> Vec<f64> {
        row.iter().zip(&self.mean).zip(&self.scale).map(|((v, m), s)| (v - m) / s).collect()
    }
}

/// A fitted model on standardized features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logit {
    pub scaler: Scaler,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    pub l2: f64,
    pub iterations: usize,
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl Logit {
    /// P(up) for a raw (unstandardized) feature row.
    pub fn prob(&self, row: &[f64]) -> f64 {
        let z: f64 =
            self.scaler.transform(row).iter().zip(&self.coefficients).map(|(x, w)| x * w).sum::<f64>() + self.intercept;
        sigmoid(z)
    }

    /// Fits on rows `x` and labels `y` with penalty `l2` (> 0).
    pub fn fit(x: &[Vec<f64>], y: &[bool], l2: f64) -> Logit {
        assert_eq!(x.len(), y.len());
        let scaler = Scaler::fit(x);
        let z: Vec<Vec<f64>> = x.iter().map(|r| scaler.transform(r)).collect();
        let k = scaler.mean.len();
        // Parameters: [intercept, w_1 … w_k].
        let mut beta = vec![0.0; k + 1];
        let mut iterations = 0;
        for it in 0..100 {
            iterations = it + 1;
            let mut grad = vec![0.0; k + 1];
            let mut hess = vec![vec![0.0; k + 1]; k + 1];
            for (row, &label) in z.iter().zip(y) {
                let eta = beta[0] + row.iter().zip(&beta[1..]).map(|(a, b)| a * b).sum::<f64>();
                let p = sigmoid(eta);
                let w = (p * (1.0 - p)).max(1e-12);
                let r = p - if label { 1.0 } else { 0.0 };
                let xs: Vec<f64> = std::iter::once(1.0).chain(row.iter().copied()).collect();
                for ((g, hi), xi) in grad.iter_mut().zip(hess.iter_mut()).zip(&xs) {
                    *g += r * xi;
                    for (h, xj) in hi.iter_mut().zip(&xs) {
                        *h += w * xi * xj;
                    }
                }
            }
            for (i, g) in grad.iter_mut().enumerate().skip(1) {
                *g += l2 * beta[i];
                hess[i][i] += l2;
            }
            let step = solve(hess, grad);
            let mut largest: f64 = 0.0;
            for (b, s) in beta.iter_mut().zip(&step) {
                *b -= s;
                largest = largest.max(s.abs());
            }
            if largest < 1e-12 {
                break;
            }
        }
        Logit { scaler, coefficients: beta[1..].to_vec(), intercept: beta[0], l2, iterations }
    }
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting (a is small and,
/// with the penalty, positive definite).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).expect("rows");
        a.swap(c, p);
        b.swap(c, p);
        let d = a[c][c];
        if d.abs() < 1e-300 {
            continue;
        }
        for r in c + 1..n {
            let f = a[r][c] / d;
            if f != 0.0 {
                let pivot = a[c].clone();
                for (x, p) in a[r][c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * p;
                }
                b[r] -= f * b[c];
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = if a[r][r].abs() < 1e-300 { 0.0 } else { (b[r] - s) / a[r][r] };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_coefficients_and_is_an_optimum() {
        // y ~ Bernoulli(sigmoid(0.3 + 1.2·x1 − 0.7·x2)), deterministic pseudo-random data.
        let mut s = 12345u64;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x = vec![];
        let mut y = vec![];
        for _ in 0..20_000 {
            let a = u() * 2.0 - 1.0;
            let b = u() * 2.0 - 1.0;
            let p = sigmoid(0.3 + 1.2 * a - 0.7 * b);
            x.push(vec![a, b]);
            y.push(u() < p);
        }
        let m = Logit::fit(&x, &y, 1e-6);
        // Coefficients on standardized features: divide by the scale to compare.
        let w1 = m.coefficients[0] / m.scaler.scale[0];
        let w2 = m.coefficients[1] / m.scaler.scale[1];
        assert!((w1 - 1.2).abs() < 0.08 && (w2 + 0.7).abs() < 0.08, "{w1} {w2}");
        assert!(m.iterations < 15, "Newton converges in a few steps: {}", m.iterations);
        // The gradient of the penalized objective is zero at the fit.
        let z: Vec<Vec<f64>> = x.iter().map(|r| m.scaler.transform(r)).collect();
        let mut g = [0.0; 3];
        for (r, &l) in z.iter().zip(&y) {
            let p = sigmoid(m.intercept + r[0] * m.coefficients[0] + r[1] * m.coefficients[1]);
            let e = p - f64::from(u8::from(l));
            g[0] += e;
            g[1] += e * r[0];
            g[2] += e * r[1];
        }
        g[1] += 1e-6 * m.coefficients[0];
        g[2] += 1e-6 * m.coefficients[1];
        assert!(g.iter().all(|v| v.abs() < 1e-8), "{g:?}");
        // A constant column does not break the fit.
        let xc: Vec<Vec<f64>> = x.iter().map(|r| vec![r[0], 5.0]).collect();
        let mc = Logit::fit(&xc, &y, 1.0);
        assert_eq!(mc.scaler.scale[1], 1.0);
        assert!(mc.coefficients[1].abs() < 1e-9);
    }
}
