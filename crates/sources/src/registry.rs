//! The registry: every provider the suite knows, in one table per service — how to build
//! its source from the settings, and which parser reads its recorded payloads (replay).
//!
//! No provider module depends on this one. Adding a provider is one new module (its
//! parser and client), one line here, and its settings table in `cashtag-core`'s config.

use std::collections::HashSet;
use std::sync::Arc;

use cashtag_core::{Settings, Ticker};

use crate::market::{alpaca, finnhub, iex, sim as sim_market};
use crate::recorder::RecordedPayload;
use crate::replay::{self, Replay};
use crate::social::{bluesky, sim as sim_posts, stocktwits, x};
use crate::{ParseError, ParseFn, Parsed, Source};

/// Builds a provider's source from the suite settings.
pub type BuildFn = fn(&Settings) -> Box<dyn Source>;

/// One provider: its configuration name, its source, and its parser (None for providers
/// that have no payloads of their own: the simulator and replay).
pub struct Provider {
    pub name: &'static str,
    pub build: BuildFn,
    pub parse: Option<ParseFn>,
}

fn sim(settings: &Settings) -> Arc<cashtag_sim::Sim> {
    Arc::new(cashtag_sim::Sim::new(cashtag_sim::SimParams::from(&settings.sim)))
}

/// The market-data providers (`stocks.source`).
pub const MARKET: &[Provider] = &[
    Provider { name: "sim", build: |s| Box::new(sim_market::SimMarket::new(sim(s))), parse: None },
    Provider {
        name: alpaca::NAME,
        build: |s| Box::new(alpaca::Alpaca::new((&s.stocks.alpaca).into())),
        parse: Some(alpaca::parse),
    },
    Provider { name: iex::NAME, build: |s| Box::new(iex::Iex::from_settings(&s.stocks.iex)), parse: Some(iex::parse) },
    Provider {
        name: finnhub::NAME,
        build: |s| Box::new(finnhub::Finnhub::from_settings(&s.stocks.finnhub)),
        parse: Some(finnhub::parse),
    },
    Provider {
        name: replay::NAME,
        build: |s| Box::new(Replay::from_settings(&s.stocks.replay, parse_recorded)),
        parse: None,
    },
];

/// The social providers (`twitter.sources`).
pub const SOCIAL: &[Provider] = &[
    Provider { name: "sim", build: |s| Box::new(sim_posts::SimPosts::new(sim(s))), parse: None },
    Provider { name: x::NAME, build: |s| Box::new(x::XStream::new((&s.twitter).into())), parse: Some(x::parse) },
    Provider {
        name: stocktwits::NAME,
        build: |s| Box::new(stocktwits::StockTwits::from_settings(&s.twitter.stocktwits)),
        parse: Some(stocktwits::parse),
    },
    Provider {
        name: bluesky::NAME,
        build: |s| Box::new(bluesky::Jetstream::from_settings(&s.twitter.bluesky)),
        parse: Some(bluesky::parse),
    },
    Provider {
        name: replay::NAME,
        build: |s| Box::new(Replay::from_settings(&s.twitter.replay, parse_recorded)),
        parse: None,
    },
];

fn find(table: &'static [Provider], name: &str) -> &'static Provider {
    // Every configurable name has an entry (a test checks it).
    table.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("provider {name} has no registry entry"))
}

/// The market source `stocks.source` names.
pub fn market_source(settings: &Settings) -> Box<dyn Source> {
    (find(MARKET, settings.stocks.source.name()).build)(settings)
}

/// The social sources `twitter.sources` names, run together.
pub fn social_sources(settings: &Settings) -> Vec<Box<dyn Source>> {
    settings.twitter.sources.iter().map(|p| (find(SOCIAL, p.name()).build)(settings)).collect()
}

/// The records in one recorded payload, by its provider and channel. Posts are matched
/// against the watchlist of the replay, as they were live.
pub fn parse_recorded(p: &RecordedPayload, watched: &HashSet<Ticker>) -> Result<Parsed, ParseError> {
    let parse = MARKET
        .iter()
        .chain(SOCIAL)
        .filter(|e| e.name == p.provider)
        .find_map(|e| e.parse)
        .ok_or_else(|| ParseError(format!("no parser for {}/{}", p.provider, p.channel)))?;
    parse(&p.channel, &p.payload, p.at, watched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashtag_core::config::{MarketProvider, SocialProvider};

    #[test]
    fn every_configurable_provider_has_an_entry() {
        for p in MarketProvider::ALL {
            assert!(MARKET.iter().any(|e| e.name == p.name()), "{} is not in MARKET", p.name());
        }
        for p in SocialProvider::ALL {
            assert!(SOCIAL.iter().any(|e| e.name == p.name()), "{} is not in SOCIAL", p.name());
        }
        assert_eq!(MARKET.len(), MarketProvider::ALL.len());
        assert_eq!(SOCIAL.len(), SocialProvider::ALL.len());
    }

    #[test]
    fn recorded_payloads_find_their_parser() {
        let at = chrono::Utc::now();
        let rec = |provider: &str, channel: &str, payload: &str| RecordedPayload {
            at,
            provider: provider.into(),
            channel: channel.into(),
            payload: payload.into(),
        };
        let w = HashSet::new();
        assert!(parse_recorded(&rec("finnhub", "ws", r#"{"type":"ping"}"#), &w).is_ok());
        assert!(parse_recorded(&rec("alpaca", "bars", r#"{"bars":{}}"#), &w).is_ok());
        assert!(parse_recorded(&rec("alpaca", "nope", "[]"), &w).is_err());
        assert!(parse_recorded(&rec("unknown", "ws", "{}"), &w).unwrap_err().0.contains("no parser"));
    }
}
