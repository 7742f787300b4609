//! cashtag-sim: a deterministic simulated market and the posts that talk about it.
//!
//! Every ticker has a **latent news signal** per minute, a pure function of (seed, ticker,
//! minute): news events arrive at random minutes with random size and fade with a
//! half-life, plus a slower "mood". Prices follow a geometric Brownian motion with
//! occasional jumps whose per-minute return is pushed by the signal of `lead_minutes`
//! earlier, scaled by `strength`. Posts express the signal of their own minute through
//! their sentiment (with noise), and come in bursts when the signal is strong.
//!
//! So sentiment leads price by a known lag with a known strength — or, with strength 0,
//! not at all: a test bed on which the analysis must find the planted effect, and must
//! not find one where there is none. Any process given the same parameters computes the
//! same signal, prices, trades and posts, in any order.

pub mod archive;
pub mod posts;
pub mod records;
pub mod rng;

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use rng::Key;

/// Parameters of the simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimParams {
    pub seed: u64,
    /// Prices react to the signal this many minutes after posts express it.
    pub lead_minutes: i64,
    /// Price reaction to one unit of signal, in units of the per-minute volatility; 0 = none.
    pub strength: f64,
    /// Standard deviation of the noise on each post's polarity.
    pub noise: f64,
    /// Mean trades per ticker per minute (more during news).
    pub trades_per_minute: f64,
    /// Mean posts per ticker per minute (more during news).
    pub posts_per_minute: f64,
    /// Expected news events per ticker per trading day.
    pub news_per_day: f64,
    pub news_half_life_minutes: f64,
    /// Weight of the slow mood (rarer news lasting about an hour) in the signal.
    #[serde(default = "default_mood")]
    pub mood: f64,
    /// Annualized volatility of prices.
    pub volatility: f64,
}

impl From<&cashtag_core::config::SimSettings> for SimParams {
    /// The parameters the suite's settings give (stocks and twitter must agree on them).
    fn from(s: &cashtag_core::config::SimSettings) -> Self {
        SimParams {
            seed: s.seed,
            lead_minutes: s.lead_minutes,
            strength: s.strength,
            noise: s.noise,
            trades_per_minute: s.trades_per_minute,
            posts_per_minute: s.posts_per_minute,
            // What only the simulator knows (no setting).
            news_per_day: 6.0,
            news_half_life_minutes: 10.0,
            mood: default_mood(),
            volatility: 0.30,
        }
    }
}

impl Default for SimParams {
    /// What the default settings say.
    fn default() -> Self {
        SimParams::from(&cashtag_core::config::SimSettings::default())
    }
}

fn default_mood() -> f64 {
    0.4
}

/// One simulated trade.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTrade {
    pub ts: DateTime<Utc>,
    pub price: f64,
    pub size: f64,
    pub bid: f64,
    pub ask: f64,
    /// Index of the trade within its minute.
    pub index: u32,
}

/// Minutes since the Unix epoch.
pub fn minute_index(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

pub fn minute_start(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(m * 60, 0).expect("valid minute")
}

const MINUTES_PER_YEAR: f64 = 252.0 * 390.0;
/// Days since 2020-01-01 are the price anchor's random walk.
const ANCHOR_DAY0: i64 = 18_262;

/// The simulation. Cheap to share; caches intraday price paths.
pub struct Sim {
    params: SimParams,
    key: Key,
    /// (ticker, New York day) → cumulative log-returns from 04:00 New York, per minute.
    paths: Mutex<HashMap<(String, i64), Vec<f64>>>,
}

impl Sim {
    pub fn new(params: SimParams) -> Self {
        let key = Key::new(params.seed);
        Sim { params, key, paths: Mutex::new(HashMap::new()) }
    }

    pub fn params(&self) -> &SimParams {
        &self.params
    }

    fn sigma_minute(&self) -> f64 {
        self.params.volatility / MINUTES_PER_YEAR.sqrt()
    }

    /// A news event's size at minute `m` (0 when none).
    fn news(&self, ticker: &str, m: i64, stream: u64, per_minute: f64) -> f64 {
        let k = self.key.with_str(ticker).with(stream).with_i64(m);
        if k.with(10).uniform() < per_minute { k.with(11).normal() * 1.5 } else { 0.0 }
    }

    /// The latent news signal of a ticker at minute `m`.
    pub fn signal(&self, ticker: &str, m: i64) -> f64 {
        let hl = self.params.news_half_life_minutes.max(1.0);
        let fast = self.params.news_per_day / 390.0;
        let mut s = 0.0;
        let window = (hl * 5.0).ceil() as i64;
        for k in 0..=window {
            s += self.news(ticker, m - k, 1, fast) * 0.5f64.powf(k as f64 / hl);
        }
        // A slow mood: rarer, smaller, lasting about an hour.
        if self.params.mood != 0.0 {
            let slow_hl = 60.0;
            for k in 0..=(slow_hl as i64 * 3) {
                s += self.params.mood * self.news(ticker, m - k, 2, 1.0 / 390.0) * 0.5f64.powf(k as f64 / slow_hl);
            }
        }
        s
    }

    /// The log-return of minute `m`.
    pub fn minute_return(&self, ticker: &str, m: i64) -> f64 {
        let sig = self.sigma_minute();
        let k = self.key.with_str(ticker).with(3).with_i64(m);
        let push = self.params.strength * self.signal(ticker, m - self.params.lead_minutes);
        let jump = if k.with(20).uniform() < 0.002 { k.with(21).normal() * 8.0 * sig } else { 0.0 };
        sig * (push + k.with(22).normal()) + jump
    }

    /// The ticker's base price (deterministic, between 20 and 600).
    fn base_price(&self, ticker: &str) -> f64 {
        20.0 * 30f64.powf(self.key.with_str(ticker).with(4).uniform())
    }

    /// The price at 04:00 New York on day `day` (days since the epoch, New York date).
    fn day_anchor(&self, ticker: &str, day: i64) -> f64 {
        let daily = self.params.volatility / 252f64.sqrt();
        let mut w = 0.0;
        for d in ANCHOR_DAY0..=day.max(ANCHOR_DAY0) {
            w += self.key.with_str(ticker).with(5).with_i64(d).normal();
        }
        self.base_price(ticker) * (daily * w).exp()
    }

    /// New York day index and the minute of 04:00 New York that day.
    fn day_of(m: i64) -> (i64, i64) {
        let t = minute_start(m).with_timezone(&chrono_tz_ny());
        let date = t.date_naive();
        let start = chrono_tz_ny()
            .from_local_datetime(&date.and_time(NaiveTime::from_hms_opt(4, 0, 0).unwrap()))
            .earliest()
            .expect("04:00 exists")
            .with_timezone(&Utc);
        (
            date.signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days(),
            minute_index(start),
        )
    }

    /// The price at the end of minute `m`.
    pub fn price(&self, ticker: &str, m: i64) -> f64 {
        let (day, start) = Self::day_of(m);
        let anchor = self.day_anchor(ticker, day);
        if m < start {
            return anchor;
        }
        let idx = (m - start) as usize;
        let mut paths = self.paths.lock().unwrap();
        let path = paths.entry((ticker.to_string(), day)).or_default();
        while path.len() <= idx {
            let prev = path.last().copied().unwrap_or(0.0);
            let mm = start + path.len() as i64;
            path.push(prev + self.minute_return(ticker, mm));
        }
        (anchor * path[idx].exp() * 100.0).round() / 100.0
    }

    /// The trades of a ticker in minute `m`, in time order.
    pub fn trades(&self, ticker: &str, m: i64) -> Vec<SimTrade> {
        let k = self.key.with_str(ticker).with(6).with_i64(m);
        let s = self.signal(ticker, m).abs();
        let n = k.with(1).poisson(self.params.trades_per_minute * (1.0 + s));
        let p0 = self.price(ticker, m - 1);
        let p1 = self.price(ticker, m);
        let mut offsets: Vec<(f64, u32)> = (0..n).map(|i| (k.with(100 + i as u64).uniform(), i)).collect();
        offsets.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let start = minute_start(m);
        offsets
            .into_iter()
            .enumerate()
            .map(|(order, (frac, i))| {
                let ki = k.with(10_000 + i as u64);
                let mid = p0 + (p1 - p0) * frac;
                let price = ((mid * (1.0 + 0.0002 * ki.with(1).normal())) * 100.0).round() / 100.0;
                let spread = 0.01 * (1 + ki.with(2).pick(3)) as f64;
                SimTrade {
                    ts: start + TimeDelta::microseconds((frac * 60_000_000.0) as i64),
                    price,
                    size: (100.0 * (ki.with(3).normal() * 0.8).exp()).round().max(1.0),
                    bid: ((price - spread / 2.0) * 100.0).floor() / 100.0,
                    ask: ((price + spread / 2.0) * 100.0).ceil() / 100.0,
                    index: order as u32,
                }
            })
            .collect()
    }
}

/// America/New_York, without a dependency on the calendar crate.
fn chrono_tz_ny() -> chrono_tz::Tz {
    chrono_tz::America::New_York
}

#[cfg(test)]
pub(crate) fn tests_dir(base: &str) -> String {
    format!(
        "{base}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_plausible() {
        let a = Sim::new(SimParams::default());
        let b = Sim::new(SimParams::default());
        let m = minute_index("2026-11-24T15:00:00Z".parse().unwrap());
        assert_eq!(a.price("AAPL", m), b.price("AAPL", m));
        assert_eq!(a.trades("AAPL", m), b.trades("AAPL", m));
        assert_eq!(a.signal("AAPL", m), b.signal("AAPL", m));
        let p = a.price("AAPL", m);
        assert!(p > 5.0 && p < 5_000.0, "{p}");
        // Another seed, another market.
        let c = Sim::new(SimParams { seed: 43, ..Default::default() });
        assert_ne!(a.price("AAPL", m), c.price("AAPL", m));
        // Trades are ordered within their minute and near the price.
        let t = a.trades("MSFT", m);
        assert!(!t.is_empty());
        assert!(t.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(t.iter().all(|x| x.ts >= minute_start(m) && x.ts < minute_start(m + 1)));
        assert!(t.iter().all(|x| x.bid < x.ask && x.bid <= x.price + 0.01));
    }

    #[test]
    fn returns_follow_the_lagged_signal_only_when_planted() {
        let m0 = minute_index("2026-11-24T14:30:00Z".parse().unwrap());
        let corr = |strength: f64| {
            let sim = Sim::new(SimParams { strength, ..Default::default() });
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for t in ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "JPM", "KO"] {
                for m in m0..m0 + 2_000 {
                    xs.push(sim.signal(t, m - 5));
                    ys.push(sim.minute_return(t, m));
                }
            }
            pearson(&xs, &ys)
        };
        assert!(corr(0.5) > 0.2, "planted: {}", corr(0.5));
        assert!(corr(0.0).abs() < 0.05, "none: {}", corr(0.0));
    }

    pub(crate) fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        cov / (vx * vy).sqrt()
    }
}
