//! The data sources' settings: which providers run (typed, so an unknown name is an error
//! that lists the known ones) and one table per provider.
//!
//! A provider's table nests under its service — `[stocks.alpaca]`, `[twitter.x]` — and its
//! environment names are the same as ever: `stocks.alpaca.key_id` is
//! `CASHTAG_STOCKS_ALPACA_KEY_ID`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section, check};
use crate::secret::Secret;

/// The market-data providers (`stocks.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketProvider {
    Sim,
    Alpaca,
    Iex,
    Finnhub,
    Replay,
}

impl MarketProvider {
    pub const ALL: [MarketProvider; 5] = [
        MarketProvider::Sim,
        MarketProvider::Alpaca,
        MarketProvider::Iex,
        MarketProvider::Finnhub,
        MarketProvider::Replay,
    ];

    /// The name in configuration, records (`provider`) and events.
    pub fn name(self) -> &'static str {
        match self {
            MarketProvider::Sim => "sim",
            MarketProvider::Alpaca => "alpaca",
            MarketProvider::Iex => "iex",
            MarketProvider::Finnhub => "finnhub",
            MarketProvider::Replay => "replay",
        }
    }
}

/// The social providers (`twitter.sources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocialProvider {
    Sim,
    X,
    Stocktwits,
    Bluesky,
    Replay,
}

impl SocialProvider {
    pub const ALL: [SocialProvider; 5] = [
        SocialProvider::Sim,
        SocialProvider::X,
        SocialProvider::Stocktwits,
        SocialProvider::Bluesky,
        SocialProvider::Replay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SocialProvider::Sim => "sim",
            SocialProvider::X => "x",
            SocialProvider::Stocktwits => "stocktwits",
            SocialProvider::Bluesky => "bluesky",
            SocialProvider::Replay => "replay",
        }
    }
}

/// Alpaca's data feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlpacaFeed {
    /// The free plan's feed.
    Iex,
    Sip,
    /// The test stream (`FAKEPACA`).
    Test,
}

impl AlpacaFeed {
    pub fn as_str(self) -> &'static str {
        match self {
            AlpacaFeed::Iex => "iex",
            AlpacaFeed::Sip => "sip",
            AlpacaFeed::Test => "test",
        }
    }
}

/// A provider URL must be encrypted (`https://`, `wss://`): credentials travel with the
/// requests. Plain `http://` and `ws://` are allowed only to a server on this host
/// (`127.0.0.1`, `localhost`, `[::1]`), which is what local test servers are.
fn secure_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let local = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    match scheme {
        "https" | "wss" => Ok(()),
        "http" | "ws" if local => Ok(()),
        "http" | "ws" => Err(ConfigError::new(
            key,
            format!(
                "plain {scheme}:// sends the credentials unencrypted; use {scheme}s:// (plain is allowed only to this host)"
            ),
        )),
        _ => Err(ConfigError::new(key, "must start with https:// or wss://")),
    }
}

/// The simulated market and posts (shared by stocks and twitter, so they agree).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    pub seed: u64,
    /// Prices react this many minutes after posts express the news.
    pub lead_minutes: i64,
    /// Strength of the price reaction (0 = posts say nothing about prices).
    pub strength: f64,
    /// Noise on each simulated post's sentiment.
    pub noise: f64,
    pub trades_per_minute: f64,
    pub posts_per_minute: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 42,
            lead_minutes: 5,
            strength: 0.5,
            noise: 0.5,
            trades_per_minute: 20.0,
            posts_per_minute: 0.5,
        }
    }
}

impl Section for SimSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.trades_per_minute >= 0.0 && self.posts_per_minute >= 0.0 && self.noise >= 0.0,
            "sim.trades_per_minute",
            "rates and noise must not be negative",
        )
    }
}

/// Recorded payloads played back (the `replay` provider of either service).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaySettings {
    /// Directory of recorded raw payloads.
    pub dir: String,
    /// Replay speed factor; 0 = as fast as possible.
    pub speed: f64,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings { dir: String::new(), speed: 1.0 }
    }
}

impl ReplaySettings {
    fn validate(&self, service: &str) -> Result<(), ConfigError> {
        check(
            Path::new(&self.dir).is_dir(),
            &format!("{service}.replay.dir"),
            format!("{:?} is not a directory", self.dir),
        )?;
        check(self.speed >= 0.0, &format!("{service}.replay.speed"), "must be 0 (as fast as possible) or positive")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlpacaSettings {
    pub feed: AlpacaFeed,
    pub ws_url: String,
    pub rest_url: String,
    pub key_id: Secret,
    pub secret_key: Secret,
}

impl Default for AlpacaSettings {
    fn default() -> Self {
        AlpacaSettings {
            feed: AlpacaFeed::Iex,
            ws_url: "wss://stream.data.alpaca.markets".into(),
            rest_url: "https://data.alpaca.markets".into(),
            key_id: Secret::default(),
            secret_key: Secret::default(),
        }
    }
}

/// An IEX-Cloud-compatible REST API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IexSettings {
    pub url: String,
    pub token: Secret,
    pub poll_ms: u64,
}

impl Default for IexSettings {
    fn default() -> Self {
        IexSettings { url: "https://cloud.iexapis.com".into(), token: Secret::default(), poll_ms: 5_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FinnhubSettings {
    pub ws_url: String,
    pub token: Secret,
}

impl Default for FinnhubSettings {
    fn default() -> Self {
        FinnhubSettings { ws_url: "wss://ws.finnhub.io".into(), token: Secret::default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StocksSettings {
    pub source: MarketProvider,
    pub alpaca: AlpacaSettings,
    pub iex: IexSettings,
    pub finnhub: FinnhubSettings,
    pub replay: ReplaySettings,
    /// Write every raw payload here, rotated daily (also `--record DIR`); empty = off.
    pub record_dir: String,
    /// Build one-minute bars from trades.
    pub bars_from_trades: bool,
}

impl Default for StocksSettings {
    fn default() -> Self {
        StocksSettings {
            source: MarketProvider::Sim,
            alpaca: AlpacaSettings::default(),
            iex: IexSettings::default(),
            finnhub: FinnhubSettings::default(),
            replay: ReplaySettings::default(),
            record_dir: String::new(),
            bars_from_trades: true,
        }
    }
}

impl Section for StocksSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(self.iex.poll_ms >= 100, "stocks.iex.poll_ms", "must be at least 100")?;
        secure_url("stocks.alpaca.ws_url", &self.alpaca.ws_url)?;
        secure_url("stocks.alpaca.rest_url", &self.alpaca.rest_url)?;
        secure_url("stocks.iex.url", &self.iex.url)?;
        secure_url("stocks.finnhub.ws_url", &self.finnhub.ws_url)?;
        match self.source {
            MarketProvider::Sim | MarketProvider::Iex | MarketProvider::Finnhub => Ok(()),
            MarketProvider::Alpaca => check(
                !self.alpaca.key_id.is_empty() && !self.alpaca.secret_key.is_empty(),
                "stocks.alpaca.key_id",
                "the alpaca source needs stocks.alpaca.key_id and stocks.alpaca.secret_key",
            ),
            MarketProvider::Replay => self.replay.validate("stocks"),
        }
    }
}

/// The X API v2.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct XSettings {
    pub api_url: String,
    pub bearer_token: Secret,
    /// Longest filtered-stream rule (1,024 on the pay-per-use tier, 2,048 enterprise).
    pub rule_max_len: u64,
    pub max_rules: u64,
}

impl Default for XSettings {
    fn default() -> Self {
        XSettings {
            api_url: "https://api.x.com".into(),
            bearer_token: Secret::default(),
            rule_max_len: 1_024,
            max_rules: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StocktwitsSettings {
    pub url: String,
    /// Requests per hour, below StockTwits' unauthenticated limit of about 200.
    pub requests_per_hour: u64,
}

impl Default for StocktwitsSettings {
    fn default() -> Self {
        StocktwitsSettings { url: "https://api.stocktwits.com".into(), requests_per_hour: 180 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BlueskySettings {
    pub jetstream_url: String,
}

impl Default for BlueskySettings {
    fn default() -> Self {
        BlueskySettings { jetstream_url: "wss://jetstream2.us-east.bsky.network".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TwitterSettings {
    /// Sources run together.
    pub sources: Vec<SocialProvider>,
    /// Keep only posts in these languages (when the source says); empty = all.
    pub languages: Vec<String>,
    /// Keep reposts (retweets); by default they are skipped.
    pub include_reposts: bool,
    pub x: XSettings,
    pub stocktwits: StocktwitsSettings,
    pub bluesky: BlueskySettings,
    pub replay: ReplaySettings,
    /// Record raw payloads here (also `run --record DIR`); empty = off.
    pub record_dir: String,
}

impl Default for TwitterSettings {
    fn default() -> Self {
        TwitterSettings {
            sources: vec![SocialProvider::Sim],
            languages: vec!["en".into()],
            include_reposts: false,
            x: XSettings::default(),
            stocktwits: StocktwitsSettings::default(),
            bluesky: BlueskySettings::default(),
            replay: ReplaySettings::default(),
            record_dir: String::new(),
        }
    }
}

impl Section for TwitterSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(!self.sources.is_empty(), "twitter.sources", "name at least one source")?;
        secure_url("twitter.x.api_url", &self.x.api_url)?;
        secure_url("twitter.stocktwits.url", &self.stocktwits.url)?;
        secure_url("twitter.bluesky.jetstream_url", &self.bluesky.jetstream_url)?;
        let mut seen = std::collections::HashSet::new();
        for s in &self.sources {
            check(seen.insert(*s), "twitter.sources", format!("{} is named twice", s.name()))?;
            match s {
                SocialProvider::X => check(
                    !self.x.bearer_token.is_empty(),
                    "twitter.x.bearer_token",
                    "the x source needs a bearer token",
                )?,
                SocialProvider::Replay => self.replay.validate("twitter")?,
                SocialProvider::Sim | SocialProvider::Stocktwits | SocialProvider::Bluesky => {}
            }
        }
        check((64..=4096).contains(&self.x.rule_max_len), "twitter.x.rule_max_len", "must be between 64 and 4096")?;
        check(self.stocktwits.requests_per_hour > 0, "twitter.stocktwits.requests_per_hour", "must be positive")
    }
}

#[cfg(test)]
mod tests {
    use super::secure_url;

    #[test]
    fn provider_urls_must_be_encrypted_unless_on_this_host() {
        for ok in [
            "https://data.alpaca.markets",
            "wss://stream.data.alpaca.markets/v2/iex",
            "http://127.0.0.1:8080/x",
            "ws://localhost:9000",
            "http://[::1]:80/",
        ] {
            assert!(secure_url("k", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.x.com",
            "ws://ws.finnhub.io?token=t",
            "http://127.0.0.1.evil.com/",
            "ftp://x",
            "api.x.com",
            "http://[::1",
            "ws://[é",
        ] {
            let e = secure_url("k", bad).unwrap_err().to_string();
            assert!(e.contains("https://") || e.contains("wss://") || e.contains("s://"), "{bad}: {e}");
            assert!(!e.contains("token=t"), "the URL is not echoed: {e}");
        }
    }
}
