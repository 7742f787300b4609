//! X API v2 filtered stream.
//!
//! - [`rules`]: cashtag disjunctions built from the watchlist — `($AAPL OR $MSFT …)
//!   lang:en -is:retweet` — packed under the rule length and count limits, tagged
//!   `cashtag:<n>`, and synchronized with X at start and on every watchlist change
//!   (missing rules added, stale ones of ours deleted, nothing duplicated, someone else's
//!   left alone; invalid rules reported).
//! - [`parse`]: one stream line (`data`, `includes.users`, `matching_rules`, or `errors`).
//! - [`stream`]: the connection, read line by line with a ~20 s read timeout (X sends a
//!   blank keep-alive about every 20 s), reconnecting as X asks: network errors back off
//!   linearly (+250 ms per attempt, up to 16 s), HTTP errors exponentially from 5 s (to
//!   320 s), HTTP 429 exponentially from 60 s; `operational-disconnect` means reconnect.

pub mod parse;
pub mod rules;
pub mod stream;
pub mod v1;

use std::time::Duration;

use cashtag_core::Secret;
use cashtag_core::config::TwitterSettings;

use crate::{BoxFuture, Source, SourceCtx, SourceError};

pub use parse::{parse, parse_archived, parse_line, parse_search_page};
pub use rules::{RULE_TAG_PREFIX, Rule, build_rules, plan_sync};

pub const NAME: &str = "x";

/// Reconnect timing (X's documented policy by default; tests shorten it).
#[derive(Debug, Clone)]
pub struct XTiming {
    pub read_timeout: Duration,
    pub network_step: Duration,
    pub network_max: Duration,
    pub http_initial: Duration,
    pub http_max: Duration,
    pub rate_limit_initial: Duration,
}

impl Default for XTiming {
    fn default() -> Self {
        XTiming {
            read_timeout: Duration::from_secs(20),
            network_step: Duration::from_millis(250),
            network_max: Duration::from_secs(16),
            http_initial: Duration::from_secs(5),
            http_max: Duration::from_secs(320),
            rate_limit_initial: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct XConfig {
    pub api_url: String,
    pub bearer: Secret,
    pub rule_max_len: usize,
    pub max_rules: usize,
    pub languages: Vec<String>,
    pub include_reposts: bool,
    pub timing: XTiming,
}

impl From<&TwitterSettings> for XConfig {
    fn from(t: &TwitterSettings) -> Self {
        XConfig {
            api_url: t.x.api_url.clone(),
            bearer: t.x.bearer_token.clone(),
            rule_max_len: t.x.rule_max_len as usize,
            max_rules: t.x.max_rules as usize,
            languages: t.languages.clone(),
            include_reposts: t.include_reposts,
            timing: XTiming::default(),
        }
    }
}

/// The X filtered-stream source.
pub struct XStream {
    cfg: XConfig,
    http: reqwest::Client,
}

impl XStream {
    pub fn new(cfg: XConfig) -> Self {
        let http = crate::http::builder().build().expect("http client");
        XStream { cfg, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_url.trim_end_matches('/'))
    }
}

impl Source for XStream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.stream(ctx))
    }
}
