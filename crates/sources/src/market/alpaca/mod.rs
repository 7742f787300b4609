//! Alpaca Market Data v2: the WebSocket stream (trades, quotes, bars; feed `iex` or `sip`)
//! and REST backfill of one-minute bars after a gap.
//!
//! Protocol: on connect the server sends `[{"T":"success","msg":"connected"}]`; we send
//! `{"action":"auth","key","secret"}` and expect `authenticated`, then subscribe. Frames
//! are JSON arrays that may batch several messages. Errors come as
//! `[{"T":"error","code":…,"msg":…}]` (402 auth failed, 406 connection limit, 405 symbol
//! limit …). A lost connection is re-established with backoff and the subscription
//! renewed; the gap is backfilled from REST bars (`next_page_token` pagination, HTTP 429
//! honoured with `Retry-After`).
//!
//! - [`parse`]: the payloads; [`stream`]: the WebSocket session; [`backfill`]: REST bars.

pub mod backfill;
pub mod parse;
pub mod stream;

use std::time::Duration;

use cashtag_core::Secret;
use cashtag_core::config::AlpacaSettings;

use crate::{BoxFuture, Source, SourceCtx, SourceError};

pub use parse::{parse, parse_bars_page, parse_frame};

/// The provider's name.
pub const NAME: &str = "alpaca";

#[derive(Debug, Clone)]
pub struct AlpacaConfig {
    pub ws_url: String,
    pub rest_url: String,
    pub feed: String,
    pub key_id: Secret,
    pub secret_key: Secret,
}

impl From<&AlpacaSettings> for AlpacaConfig {
    fn from(s: &AlpacaSettings) -> Self {
        AlpacaConfig {
            ws_url: s.ws_url.clone(),
            rest_url: s.rest_url.clone(),
            feed: s.feed.as_str().to_string(),
            key_id: s.key_id.clone(),
            secret_key: s.secret_key.clone(),
        }
    }
}

/// The Alpaca market-data source.
pub struct Alpaca {
    config: AlpacaConfig,
    http: reqwest::Client,
}

impl Alpaca {
    pub fn new(config: AlpacaConfig) -> Self {
        Alpaca { config, http: crate::http::client(Duration::from_secs(20)) }
    }

    pub fn config(&self) -> &AlpacaConfig {
        &self.config
    }
}

impl Source for Alpaca {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(crate::ws::run(self, ctx))
    }
}
