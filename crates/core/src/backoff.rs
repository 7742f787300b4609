//! Retry pauses, one type for the whole workspace: the sources' reconnects, the sinks'
//! write retries and the bus's outage loops all grow their pauses the same way.
//!
//! A [`Backoff`] grows exponentially (doubling by default) or linearly from its first
//! pause up to a cap, and draws each pause uniformly from `[d·(1 − jitter), d]` so that
//! many clients do not retry in step. [`Backoff::reset`] goes back to the first pause after
//! a success. Randomness comes from a small xorshift generator seeded per process, which is
//! all jitter needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    /// Multiply by this factor after each pause.
    Exponential(f64),
    /// Add this much after each pause.
    Linear(Duration),
}

/// Pauses between attempts: growing, capped, jittered.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    growth: Growth,
    /// Fraction of each pause that is random (0 = exact pauses).
    jitter: f64,
}

impl Backoff {
    /// Doubling pauses from `initial` up to `max`, with 25% jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, next: initial, growth: Growth::Exponential(2.0), jitter: 0.25 }
    }

    /// Pauses of `step`, `2·step`, `3·step` … up to `max`, with no jitter (X's documented
    /// policy for network errors).
    pub fn linear(step: Duration, max: Duration) -> Self {
        Backoff { initial: step, max, next: step, growth: Growth::Linear(step), jitter: 0.0 }
    }

    /// The same backoff with `fraction` (0..=1) of each pause drawn at random.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The pause the next [`Backoff::next_delay`] is based on (before jitter).
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The pause before the next attempt; grows the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = match self.growth {
            Growth::Exponential(f) => d.mul_f64(f),
            Growth::Linear(step) => d + step,
        }
        .min(self.max);
        jitter(d, self.jitter)
    }

    /// Back to the first pause (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps for the next pause; false if `cancel` fired meanwhile.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        sleep_or_cancel(self.next_delay(), cancel).await
    }
}

/// `d` shortened by a random part of at most `fraction` of it: uniform in `[d·(1 − fraction), d]`.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 {
        return d;
    }
    d.mul_f64(1.0 - fraction.min(1.0) * unit_random())
}

/// Sleeps for `d`; false if `cancel` fired meanwhile.
pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

/// A uniform number in [0, 1) from a process-wide xorshift64* generator.
fn unit_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        x = (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32) | 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_to_the_cap_within_its_jitter() {
        let mut b = Backoff::exponential(Duration::from_millis(100), Duration::from_millis(1000));
        let bases = [100, 200, 400, 800, 1000, 1000];
        for base in bases {
            let d = b.next_delay().as_millis() as u64;
            assert!(d <= base && d >= base * 3 / 4, "{d} not in [{}, {base}]", base * 3 / 4);
        }
        b.reset();
        assert_eq!(b.peek(), Duration::from_millis(100));
    }

    #[test]
    fn linear_adds_its_step_exactly() {
        let mut b = Backoff::linear(Duration::from_millis(250), Duration::from_secs(1));
        let got: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![250, 500, 750, 1000, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let d = Duration::from_secs(1);
        let draws: Vec<Duration> = (0..200).map(|_| jitter(d, 0.5)).collect();
        assert!(draws.iter().all(|x| *x >= d / 2 && *x <= d));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "jitter draws repeat: {}", distinct.len());
        assert_eq!(jitter(d, 0.0), d);
    }
}
