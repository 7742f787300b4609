//! Simulated posts: their sentiment expresses the latent signal of their minute (plus
//! noise), they come in bursts around news, and they read like stock posts — cashtags,
//! slang, emoji, negations, money amounts, a second ticker now and then.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Sim, minute_start};

/// One simulated post.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPost {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub text: String,
    /// Tickers the text mentions as cashtags, the subject first.
    pub tickers: Vec<String>,
    pub author_id: String,
    pub author_name: String,
    pub followers: u64,
    pub likes: u64,
    pub reposts: u64,
    /// The polarity the text was written with (signal plus noise), for tests.
    pub polarity: f64,
}

const BULLISH: &[&str] = &[
    "{t} to the moon 🚀🚀",
    "Loaded up on {t} calls this morning",
    "{t} breaking out, new highs incoming 📈",
    "Not selling a single share of {t} 💎🙌",
    "{t} earnings beat and guidance raised. Bullish!",
    "Buy the dip on {t}, this is a gift",
    "{t} short squeeze is on 🔥",
    "{t} upgraded to buy, love it",
    "{t} looking strong here, adding more",
    "{t} can't stop won't stop 🚀",
    "{t} and {u} both ripping, so bullish",
    "Long {t}, easy money",
];

const BEARISH: &[&str] = &[
    "{t} is going to zero",
    "Bought puts on {t}, totally overvalued",
    "{t} breaking down hard 📉",
    "Shorting {t} here, classic bull trap",
    "{t} missed estimates and got downgraded",
    "Bagholding {t} since the top 😭",
    "{t} dumping after hours, get out",
    "{t} not looking good, selling everything",
    "Stay away from {t}, pump and dump",
    "{t} is a falling knife",
    "{t} and {u} both crashing, bearish",
    "Never buying {t} again, worst stock",
];

const NEUTRAL: &[&str] = &[
    "What do you all think about {t}?",
    "{t} earnings on Thursday",
    "Watching {t} today",
    "{t} volume is picking up",
    "Anyone holding {t} over the weekend?",
    "{t} chart for today",
    "{t} weekly options at $2.50, hmm",
    "{t} and {u} both on my list",
    "Reading the {t} 10-Q tonight",
];

const OPENERS: &[&str] = &["", "", "", "lol ", "Honestly ", "BREAKING: ", "ok ", "Folks, "];
const SYLLABLES: &[&str] = &["ka", "ro", "mi", "ta", "zen", "lo", "vi", "qu", "bar", "el", "an", "so"];

impl Sim {
    /// The posts about `ticker` in minute `m`. `others` are tickers a post may mention too.
    pub fn posts(&self, ticker: &str, m: i64, others: &[String]) -> Vec<SimPost> {
        let p = &self.params;
        let k = self.key.with_str(ticker).with(7).with_i64(m);
        let s = self.signal(ticker, m);
        let n = k.with(1).poisson(p.posts_per_minute * (1.0 + 2.0 * s.abs()));
        (0..n)
            .map(|i| {
                let ki = k.with(1_000 + i as u64);
                let polarity = s.tanh() + p.noise * ki.with(1).normal();
                let pool = if polarity > 0.25 {
                    BULLISH
                } else if polarity < -0.25 {
                    BEARISH
                } else {
                    NEUTRAL
                };
                let template = pool[ki.with(2).pick(pool.len())];
                let other = if others.is_empty() {
                    None
                } else {
                    let o = &others[ki.with(3).pick(others.len())];
                    (o != ticker).then_some(o.as_str())
                };
                let mut text = template.replace("{t}", &format!("${ticker}"));
                let mut tickers = vec![ticker.to_string()];
                if text.contains("{u}") {
                    match other {
                        Some(o) => {
                            text = text.replace("{u}", &format!("${o}"));
                            tickers.push(o.to_string());
                        }
                        None => text = text.replace(" and {u} both", ""),
                    }
                }
                text = format!("{}{}", OPENERS[ki.with(4).pick(OPENERS.len())], text);
                if polarity.abs() > 1.0 && ki.with(5).uniform() < 0.5 {
                    text = text.to_uppercase();
                }
                let author = ki.with(6).pick(500) as u64;
                let ka = self.key.with(8).with(author);
                let name: String = (0..2 + ka.with(1).pick(2))
                    .map(|j| SYLLABLES[ka.with(10 + j as u64).pick(SYLLABLES.len())])
                    .collect();
                let followers = (50.0 * (ka.with(2).normal() * 1.5).exp()) as u64;
                SimPost {
                    id: format!("{}-{ticker}-{m}-{i}", p.seed),
                    created_at: minute_start(m) + TimeDelta::milliseconds((ki.with(7).uniform() * 60_000.0) as i64),
                    text,
                    tickers,
                    author_id: format!("sim{author}"),
                    author_name: name,
                    followers,
                    likes: ki.with(8).poisson(followers as f64 / 200.0 + 0.5) as u64,
                    reposts: ki.with(9).poisson(followers as f64 / 1000.0 + 0.1) as u64,
                    polarity,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimParams, minute_index};

    #[test]
    fn posts_are_deterministic_and_follow_the_signal() {
        let sim = Sim::new(SimParams { posts_per_minute: 3.0, ..Default::default() });
        let m0 = minute_index("2026-11-24T14:30:00Z".parse().unwrap());
        let others = vec!["MSFT".to_string(), "BA".to_string()];
        assert_eq!(sim.posts("AAPL", m0, &others), sim.posts("AAPL", m0, &others));
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for m in m0..m0 + 3_000 {
            let s = sim.signal("AAPL", m);
            for p in sim.posts("AAPL", m, &others) {
                assert!(p.text.contains("$AAPL"), "{}", p.text);
                xs.push(s);
                ys.push(p.polarity);
            }
        }
        assert!(xs.len() > 3_000);
        assert!(crate::tests::pearson(&xs, &ys) > 0.3);
    }
}
