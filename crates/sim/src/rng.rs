//! Counter-based randomness: every random number is a pure function of its coordinates
//! (seed, ticker, minute, purpose, index), so any process can recompute any of them, in any
//! order, without history — which is what makes the simulation deterministic across
//! processes.

/// SplitMix64's finalizer: a bijective 64-bit mixer with good avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a string, to turn tickers into numbers.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A point in the random field.
#[derive(Debug, Clone, Copy)]
pub struct Key(u64);

impl Key {
    pub fn new(seed: u64) -> Self {
        Key(mix(seed))
    }

    /// Extends the key with one more coordinate.
    pub fn with(self, x: u64) -> Self {
        Key(mix(self.0 ^ mix(x)))
    }

    pub fn with_str(self, s: &str) -> Self {
        self.with(fnv(s))
    }

    pub fn with_i64(self, x: i64) -> Self {
        self.with(x as u64)
    }

    /// Uniform in [0, 1).
    pub fn uniform(self) -> f64 {
        (mix(self.0) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller on two derived uniforms).
    pub fn normal(self) -> f64 {
        let u1 = self.with(1).uniform().max(1e-300);
        let u2 = self.with(2).uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Poisson with mean `lambda` (inversion; fine for the small rates used here).
    pub fn poisson(self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 60.0 {
            // Normal approximation for large rates.
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let u = self.uniform();
        let mut p = (-lambda).exp();
        let mut cdf = p;
        let mut k = 0u32;
        while u > cdf && k < 1000 {
            k += 1;
            p *= lambda / k as f64;
            cdf += p;
        }
        k
    }

    /// One of `n` choices.
    pub fn pick(self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_look_right() {
        let k = Key::new(7);
        let n = 20_000;
        let us: Vec<f64> = (0..n).map(|i| k.with(i).uniform()).collect();
        let mean = us.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let zs: Vec<f64> = (0..n).map(|i| k.with(i).normal()).collect();
        let m = zs.iter().sum::<f64>() / n as f64;
        let v = zs.iter().map(|z| (z - m).powi(2)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "{m} {v}");
        let ps: Vec<u32> = (0..n).map(|i| k.with(i).poisson(3.0)).collect();
        let pm = ps.iter().sum::<u32>() as f64 / n as f64;
        assert!((pm - 3.0).abs() < 0.05, "{pm}");
        assert_eq!(Key::new(1).with_str("AAPL").uniform(), Key::new(1).with_str("AAPL").uniform());
    }
}
