//! StockTwits symbol streams: `/api/2/streams/symbol/{SYMBOL}.json?since={id}`, up to 30
//! messages each, polled round-robin over the watchlist at a pace that stays within the
//! unauthenticated hourly limit, with a `since` cursor per symbol. The author's own
//! Bullish/Bearish label is kept. HTTP 429 waits (`Retry-After`, else a minute).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cashtag_core::{Author, EventKind, Post, Record, SentimentLabel, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::backoff::sleep_or_cancel;
use crate::cashtag::{extract, merge_tags};
use crate::market::alpaca::retry_after;
use crate::social::{post, watched};
use crate::{SourceCtx, SourceError};

const PROVIDER: &str = "stocktwits";

#[derive(Deserialize)]
struct User {
    id: serde_json::Value,
    username: Option<String>,
    followers: Option<u64>,
}

#[derive(Deserialize)]
struct Sym {
    symbol: String,
}

#[derive(Deserialize)]
struct Basic {
    basic: Option<String>,
}

#[derive(Deserialize, Default)]
struct Entities {
    sentiment: Option<Basic>,
}

#[derive(Deserialize)]
struct Message {
    id: u64,
    body: String,
    created_at: DateTime<Utc>,
    user: User,
    #[serde(default)]
    symbols: Vec<Sym>,
    #[serde(default)]
    entities: Option<Entities>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    messages: Vec<Message>,
}

/// Parses a symbol stream page: the posts about watched tickers and the newest id seen.
pub fn parse_symbol_stream(
    text: &str,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<(Vec<Post>, Option<u64>), String> {
    let r: Response = serde_json::from_str(text).map_err(|e| format!("symbol stream: {e}"))?;
    let newest = r.messages.iter().map(|m| m.id).max();
    let posts = r
        .messages
        .into_iter()
        .filter_map(|m| {
            let tickers = merge_tags(extract(&m.body, watched), m.symbols.iter().map(|s| s.symbol.as_str()), watched);
            if tickers.is_empty() {
                return None;
            }
            let label = m.entities.and_then(|e| e.sentiment).and_then(|s| s.basic).and_then(|b| match b.as_str() {
                "Bullish" => Some(SentimentLabel::Bullish),
                "Bearish" => Some(SentimentLabel::Bearish),
                _ => None,
            });
            let author_id = match &m.user.id {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(post(
                PROVIDER,
                m.id.to_string(),
                m.created_at,
                received_at,
                m.body,
                None,
                Author { id: author_id, name: m.user.username.unwrap_or_default(), followers: m.user.followers },
                None,
                tickers,
                false,
                label,
            ))
        })
        .collect();
    Ok((posts, newest))
}

pub struct StockTwits {
    base: String,
    /// Pause between two requests (the hourly budget spread evenly).
    every: Duration,
    since: HashMap<String, u64>,
    http: reqwest::Client,
}

impl StockTwits {
    pub fn new(base: String, every: Duration) -> Self {
        StockTwits {
            base,
            every,
            since: HashMap::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("http client"),
        }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let mut connected = false;
        let mut next = 0usize;
        loop {
            let symbols = ctx.tickers();
            if symbols.is_empty() {
                if !sleep_or_cancel(self.every, &ctx.cancel).await {
                    return Ok(());
                }
                continue;
            }
            let sym = symbols[next % symbols.len()].clone();
            next += 1;
            let mut req = self.http.get(format!("{}/api/2/streams/symbol/{sym}.json", self.base.trim_end_matches('/')));
            if let Some(since) = self.since.get(&sym) {
                req = req.query(&[("since", since.to_string())]);
            }
            let resp = tokio::select! {
                r = req.send() => r,
                _ = ctx.cancel.cancelled() => return Ok(()),
            };
            let mut wait = self.every;
            match resp {
                Err(e) => {
                    ctx.event(EventKind::Warning, "source.disconnected", format!("stocktwits: {}", e.without_url()));
                    connected = false;
                }
                Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    wait = retry_after(&r).unwrap_or(Duration::from_secs(60)).max(self.every);
                    ctx.event(
                        EventKind::Warning,
                        "source.rate_limited",
                        format!("stocktwits: HTTP 429; waiting {:.0} s", wait.as_secs_f64()),
                    );
                }
                Ok(r) if !r.status().is_success() => {
                    ctx.event(EventKind::Warning, "source.error", format!("stocktwits: HTTP {} for {sym}", r.status()));
                }
                Ok(r) => {
                    let at = ctx.now();
                    let text = r.text().await.unwrap_or_default();
                    ctx.record_raw(PROVIDER, "symbol", &text, at);
                    if !connected {
                        ctx.event(EventKind::Activity, "source.connected", "stocktwits: polling symbol streams");
                        connected = true;
                    }
                    match parse_symbol_stream(&text, at, &watched(ctx)) {
                        Ok((posts, newest)) => {
                            if let Some(n) = newest {
                                let e = self.since.entry(sym.clone()).or_insert(0);
                                *e = (*e).max(n);
                            }
                            for p in posts {
                                if !ctx.emit(Record::Post(p)).await {
                                    return Ok(());
                                }
                            }
                        }
                        Err(e) => ctx.malformed(PROVIDER, &e, &text),
                    }
                }
            }
            if !sleep_or_cancel(wait, &ctx.cancel).await {
                return Ok(());
            }
        }
    }
}
