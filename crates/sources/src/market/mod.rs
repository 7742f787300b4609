//! Market-data sources: trades, quotes and bars for the watchlist.

pub mod alpaca;
pub mod finnhub;
pub mod iex;
pub mod sim;

use std::sync::Arc;
use std::time::Duration;

use cashtag_core::Settings;

use crate::replay::Replay;
use crate::{SourceCtx, SourceError};

/// The configured market source.
pub enum MarketSource {
    Sim(sim::SimMarket),
    Alpaca(alpaca::Alpaca),
    Iex(iex::Iex),
    Finnhub(finnhub::Finnhub),
    Replay(Replay),
}

impl MarketSource {
    pub fn name(&self) -> &'static str {
        match self {
            MarketSource::Sim(_) => "sim",
            MarketSource::Alpaca(_) => "alpaca",
            MarketSource::Iex(_) => "iex",
            MarketSource::Finnhub(_) => "finnhub",
            MarketSource::Replay(_) => "replay",
        }
    }

    /// Runs until the context is cancelled (Ok) or the source fails.
    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        match self {
            MarketSource::Sim(s) => s.run(ctx).await,
            MarketSource::Alpaca(s) => s.run(ctx).await,
            MarketSource::Iex(s) => s.run(ctx).await,
            MarketSource::Finnhub(s) => s.run(ctx).await,
            MarketSource::Replay(s) => s.run(ctx).await,
        }
    }
}

/// Builds the source `stocks.source` names.
pub fn from_settings(settings: &Settings) -> Result<MarketSource, SourceError> {
    let s = &settings.stocks;
    Ok(match s.source.as_str() {
        "sim" => MarketSource::Sim(sim::SimMarket::new(Arc::new(cashtag_sim::Sim::new(sim_params(settings))))),
        "alpaca" => MarketSource::Alpaca(alpaca::Alpaca::new(alpaca::AlpacaConfig {
            ws_url: s.alpaca_ws_url.clone(),
            rest_url: s.alpaca_rest_url.clone(),
            feed: s.alpaca_feed.clone(),
            key_id: s.alpaca_key_id.clone(),
            secret_key: s.alpaca_secret_key.clone(),
        })),
        "iex" => MarketSource::Iex(iex::Iex::new(
            s.iex_url.clone(),
            s.iex_token.clone(),
            Duration::from_millis(s.iex_poll_ms),
        )),
        "finnhub" => MarketSource::Finnhub(finnhub::Finnhub::new(s.finnhub_ws_url.clone(), s.finnhub_token.clone())),
        "replay" => MarketSource::Replay(Replay::new(s.replay_dir.clone().into(), s.replay_speed)),
        other => return Err(SourceError::Config { provider: "stocks", message: format!("unknown source {other:?}") }),
    })
}

/// The simulation parameters from the settings (stocks and twitter must agree).
pub fn sim_params(settings: &Settings) -> cashtag_sim::SimParams {
    let s = &settings.sim;
    cashtag_sim::SimParams {
        seed: s.seed,
        lead_minutes: s.lead_minutes,
        strength: s.strength,
        noise: s.noise,
        trades_per_minute: s.trades_per_minute,
        posts_per_minute: s.posts_per_minute,
        ..Default::default()
    }
}
