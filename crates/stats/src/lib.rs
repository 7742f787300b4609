//! cashtag-stats: the statistics of the study, implemented to match the reference Python
//! implementations — `scipy.stats.pearsonr` / `spearmanr` and statsmodels'
//! `grangercausalitytests` (ssr F-test) — to about 1e-9 relative, and fast enough to run
//! over years of one-minute data.
//!
//! Inputs are aligned series without missing values (callers drop incomplete rows).

pub mod special;

use serde::Serialize;

use special::{f_sf, inc_beta};

/// A correlation and its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Correlation {
    pub r: f64,
    pub p: f64,
    pub n: usize,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Pearson's r as scipy computes it: centred, scaled by the largest magnitude (so no
/// sum overflows or underflows), then the normalized dot product, clipped to [-1, 1].
/// Three passes, no allocation.
pub fn pearson_r(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "aligned series");
    let (mx, my) = (mean(x), mean(y));
    let xmax = x.iter().fold(0.0f64, |m, v| m.max((v - mx).abs()));
    let ymax = y.iter().fold(0.0f64, |m, v| m.max((v - my).abs()));
    if xmax == 0.0 || ymax == 0.0 || xmax.is_nan() || ymax.is_nan() {
        return f64::NAN;
    }
    let (ix, iy) = (1.0 / xmax, 1.0 / ymax);
    let (mut sxx, mut syy, mut sxy) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    let (cx, cy) = (x.chunks_exact(4), y.chunks_exact(4));
    let (rx, ry) = (cx.remainder(), cy.remainder());
    for (a, b) in cx.zip(cy) {
        for i in 0..4 {
            let (u, v) = ((a[i] - mx) * ix, (b[i] - my) * iy);
            sxx[i] += u * u;
            syy[i] += v * v;
            sxy[i] += u * v;
        }
    }
    for (a, b) in rx.iter().zip(ry) {
        let (u, v) = ((a - mx) * ix, (b - my) * iy);
        sxx[0] += u * u;
        syy[0] += v * v;
        sxy[0] += u * v;
    }
    let total = |s: [f64; 4]| (s[0] + s[1]) + (s[2] + s[3]);
    let r = total(sxy) / (total(sxx).sqrt() * total(syy).sqrt());
    r.clamp(-1.0, 1.0)
}

/// Two-sided p-value of a correlation under H0 (r has a Beta(n/2−1, n/2−1) law on [−1, 1]).
pub fn correlation_p(r: f64, n: usize) -> f64 {
    if r.is_nan() || n < 3 {
        return if n == 2 && !r.is_nan() { 1.0 } else { f64::NAN };
    }
    let a = n as f64 / 2.0 - 1.0;
    (2.0 * inc_beta(a, a, (1.0 - r.abs()) / 2.0)).min(1.0)
}

/// `scipy.stats.pearsonr`.
pub fn pearson(x: &[f64], y: &[f64]) -> Correlation {
    let r = pearson_r(x, y);
    Correlation { r, p: correlation_p(r, x.len()), n: x.len() }
}

/// Average ranks (1-based), ties sharing the mean of their positions (`rankdata`).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<(f64, usize)> = x.iter().copied().zip(0..).collect();
    sorted.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).expect("no NaN"));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for item in &sorted[i..=j] {
            r[item.1] = avg;
        }
        i = j + 1;
    }
    r
}

/// `scipy.stats.spearmanr` (p from Student's t with n − 2 degrees of freedom).
pub fn spearman(x: &[f64], y: &[f64]) -> Correlation {
    let n = x.len();
    let rs = pearson_r(&ranks(x), &ranks(y));
    let p = if rs.is_nan() || n < 3 {
        f64::NAN
    } else {
        let dof = (n - 2) as f64;
        let t = rs * (dof / ((rs + 1.0) * (1.0 - rs))).max(0.0).sqrt();
        if t.is_infinite() { 0.0 } else { 2.0 * special::t_sf(t.abs(), dof) }
    };
    Correlation { r: rs, p, n }
}

/// corr(x_t, y_{t+k}) for k = −max..=max: positive k means x leads y.
pub fn cross_correlation(x: &[f64], y: &[f64], max_lag: usize) -> Vec<(i64, Correlation)> {
    let n = x.len();
    let mut out = Vec::new();
    for k in -(max_lag as i64)..=(max_lag as i64) {
        let s = k.unsigned_abs() as usize;
        if s + 3 > n {
            continue;
        }
        let (xs, ys) = if k >= 0 { (&x[..n - s], &y[s..]) } else { (&x[s..], &y[..n - s]) };
        out.push((k, pearson(xs, ys)));
    }
    out
}

/// Dot product with four independent accumulators (vectorizes; the order of summation is
/// fixed, so results are reproducible).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `y -= f * x`.
fn axpy(y: &mut [f64], f: f64, x: &[f64]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a -= f * b;
    }
}

/// Householder QR of the columns, applied to `b` as well, in place. Returns, after each
/// column, how many independent columns there are so far; a column that is (numerically)
/// a combination of the earlier ones is skipped. Afterwards `b[rank..]` holds the
/// residual's coordinates, and `b[k]` for k below the rank its part explained by
/// column k given the earlier ones.
fn householder(columns: &mut [Vec<f64>], b: &mut [f64]) -> Vec<usize> {
    let n = b.len();
    let mut ranks = Vec::with_capacity(columns.len());
    let mut r = 0;
    for j in 0..columns.len() {
        let (done, rest) = columns.split_at_mut(j + 1);
        let v = &mut done[j];
        let original = dot(v, v).sqrt();
        let norm = dot(&v[r..], &v[r..]).sqrt();
        if r >= n || norm <= 1e-12 * original || norm == 0.0 {
            ranks.push(r);
            continue;
        }
        let alpha = if v[r] > 0.0 { -norm } else { norm };
        v[r] -= alpha;
        let vnorm2 = dot(&v[r..], &v[r..]);
        let v = &v[r..];
        for col in rest.iter_mut() {
            let f = 2.0 * dot(v, &col[r..]) / vnorm2;
            axpy(&mut col[r..], f, v);
        }
        let f = 2.0 * dot(v, &b[r..]) / vnorm2;
        axpy(&mut b[r..], f, v);
        r += 1;
        ranks.push(r);
    }
    ranks
}

/// Sum of squared residuals of y regressed on the columns (least squares by Householder QR).
pub fn ols_ssr(columns: &[Vec<f64>], y: &[f64]) -> f64 {
    let mut a = columns.to_vec();
    let mut b = y.to_vec();
    let rank = householder(&mut a, &mut b).last().copied().unwrap_or(0);
    let rest = &b[rank..];
    dot(rest, rest)
}

/// One lag of a Granger test (statsmodels' `ssr_ftest`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrangerLag {
    pub lag: usize,
    pub f: f64,
    pub p: f64,
    pub df_num: usize,
    pub df_denom: usize,
    /// Observations used: the rows t with y_t and every lag of y and x present (n − lag
    /// for complete series).
    pub nobs: usize,
}

/// Does `x` Granger-cause `y`? For each lag L in 1..=max_lag: y_t on a constant and
/// y_{t−1..t−L} (restricted) versus also x_{t−1..t−L} (unrestricted), over the
/// observations that have all lags; F = ((SSR_r − SSR_u)/L) / (SSR_u/(nobs − 2L − 1)).
/// A missing value (NaN) is never filled: every row that would use it is left out, so
/// gaps (a day without posts, the days before a listing) cost observations instead of
/// counting as zeros. Lags the series is too short for are left out.
pub fn granger(y: &[f64], x: &[f64], max_lag: usize) -> Vec<GrangerLag> {
    assert_eq!(x.len(), y.len(), "aligned series");
    let n = y.len();
    let mut out = Vec::new();
    for lag in 1..=max_lag {
        if n <= lag {
            break;
        }
        let rows: Vec<usize> = (lag..n)
            .filter(|&t| y[t].is_finite() && (1..=lag).all(|l| y[t - l].is_finite() && x[t - l].is_finite()))
            .collect();
        let nobs = rows.len();
        let k_u = 2 * lag + 1;
        if nobs <= k_u {
            break;
        }
        // One QR of [1, y lags, x lags]: its first 1 + L columns are the restricted
        // model's QR, so SSR_r − SSR_u is the squared part of y the x lags explain —
        // computed directly, not as a difference of two nearly equal sums.
        let mut target: Vec<f64> = rows.iter().map(|&t| y[t]).collect();
        let mut design: Vec<Vec<f64>> = Vec::with_capacity(k_u);
        design.push(vec![1.0; nobs]);
        for l in 1..=lag {
            design.push(rows.iter().map(|&t| y[t - l]).collect());
        }
        for l in 1..=lag {
            design.push(rows.iter().map(|&t| x[t - l]).collect());
        }
        let ranks = householder(&mut design, &mut target);
        let (rank_r, rank_u) = (ranks[lag], ranks[2 * lag]);
        let ssr_u = dot(&target[rank_u..], &target[rank_u..]);
        let explained = dot(&target[rank_r..rank_u], &target[rank_r..rank_u]);
        let df_denom = nobs - k_u;
        let f = explained / ssr_u / lag as f64 * df_denom as f64;
        out.push(GrangerLag { lag, f, p: f_sf(f, lag as f64, df_denom as f64), df_num: lag, df_denom, nobs });
    }
    out
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&a, &b| p[a].partial_cmp(&p[b]).unwrap_or(std::cmp::Ordering::Equal));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in idx.iter().enumerate().rev() {
        let v = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(v);
        q[i] = running;
    }
    q
}

/// Mean and 95% confidence half-width of samples (normal approximation).
pub fn mean_ci(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let m = mean(x);
    if n == 1 {
        return (m, f64::NAN);
    }
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    (m, 1.959_963_984_540_054 * (var / n as f64).sqrt())
}

/// A cumulative abnormal return path around events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventStudy {
    pub events: usize,
    /// Offsets −w..=w.
    pub offsets: Vec<i64>,
    /// Mean cumulative abnormal return from −w to each offset.
    pub car: Vec<f64>,
    /// 95% half-width of each.
    pub ci: Vec<f64>,
}

/// Cumulative abnormal returns around `events` (indices into `abnormal`), over
/// [−window, +window]; events too close to the edges are left out, and so are events
/// whose window misses an abnormal return (NaN: missing is not zero).
pub fn event_study(abnormal: &[f64], events: &[usize], window: usize) -> EventStudy {
    let w = window as i64;
    let usable: Vec<usize> = events
        .iter()
        .copied()
        .filter(|&e| e >= window && e + window < abnormal.len())
        .filter(|&e| abnormal[e - window..=e + window].iter().all(|a| a.is_finite()))
        .collect();
    let paths: Vec<Vec<f64>> = usable
        .iter()
        .map(|&e| {
            let mut acc = 0.0;
            (-w..=w)
                .map(|k| {
                    acc += abnormal[(e as i64 + k) as usize];
                    acc
                })
                .collect()
        })
        .collect();
    let mut car = Vec::new();
    let mut ci = Vec::new();
    for j in 0..(2 * window + 1) {
        let col: Vec<f64> = paths.iter().map(|p| p[j]).collect();
        let (m, h) = mean_ci(&col);
        car.push(m);
        ci.push(h);
    }
    EventStudy { events: usable.len(), offsets: (-w..=w).collect(), car, ci }
}

/// Indices where `volume` exceeds its trailing mean over `lookback` by `z` standard deviations.
pub fn volume_spikes(volume: &[f64], lookback: usize, z: f64) -> Vec<usize> {
    let mut out = Vec::new();
    for i in lookback..volume.len() {
        let win = &volume[i - lookback..i];
        let (m, _) = mean_ci(win);
        let sd = (win.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (lookback.max(2) - 1) as f64).sqrt();
        if volume[i] > m + z * sd.max(1e-12) && volume[i] > 0.0 {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_whose_window_misses_a_return_is_left_out() {
        let mut abnormal: Vec<f64> = (0..40).map(|i| ((i * 7) % 5) as f64 * 0.001).collect();
        let all = event_study(&abnormal, &[10, 20, 30], 3);
        assert_eq!(all.events, 3);
        abnormal[21] = f64::NAN;
        let gap = event_study(&abnormal, &[10, 20, 30], 3);
        assert_eq!(gap.events, 2, "the event at 20 has no return at 21");
        let mut zero = abnormal.clone();
        zero[21] = 0.0;
        assert_eq!(event_study(&zero, &[10, 30], 3).car, gap.car, "the CAR of the other two, not a zero-filled third");
        assert!(gap.car.iter().all(|c| c.is_finite()));
    }

    #[test]
    fn granger_leaves_out_the_rows_a_gap_touches() {
        let noise = |seed: u64, i: usize| ((i as f64 * 12.9898 + seed as f64 * 78.233).sin() * 43758.5453).fract();
        let x: Vec<f64> = (0..200).map(|i| noise(1, i)).collect();
        let y: Vec<f64> = (0..200).map(|i| noise(2, i) + if i > 0 { 0.5 * x[i - 1] } else { 0.0 }).collect();
        let full = granger(&y, &x, 2);
        assert_eq!(full[1].nobs, 198);
        let mut gap = x.clone();
        gap[50] = f64::NAN;
        let with_gap = granger(&y, &gap, 2);
        assert_eq!(with_gap[1].nobs, 196, "rows 51 and 52 use x[50]");
        assert_eq!(with_gap[0].nobs, 198, "lag 1: only row 51");
        // The same as the test on exactly those rows: a gap is not a zero.
        let mut zero = x.clone();
        zero[50] = 0.0;
        assert_ne!(granger(&y, &zero, 2)[1].f, with_gap[1].f);
        let mut missing_y = y.clone();
        missing_y[10] = f64::NAN;
        assert_eq!(granger(&missing_y, &x, 2)[1].nobs, 195, "rows 10, 11 and 12");
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
    }

    #[test]
    fn bh_matches_the_textbook() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        assert_eq!(q, vec![0.02, 0.04, 0.04, 0.02]);
    }

    #[test]
    fn ols_ssr_of_an_exact_fit_is_zero() {
        let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 + 2.0 * v).collect();
        assert!(ols_ssr(&[vec![1.0; 10], x], &y) < 1e-20);
    }

    #[test]
    fn event_study_shapes() {
        let ab = vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let es = event_study(&ab, &[3, 0, 7], 2);
        assert_eq!(es.events, 1);
        assert_eq!(es.car, vec![0.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
