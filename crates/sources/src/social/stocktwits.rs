//! StockTwits symbol streams: `/api/2/streams/symbol/{SYMBOL}.json?since={id}`, up to 30
//! messages each, polled round-robin over the watchlist at a pace that stays within the
//! unauthenticated hourly limit, with a `since` cursor per symbol (the shared loop of
//! [`crate::http`]). The author's own Bullish/Bearish label is kept. HTTP 429 waits
//! (`Retry-After`, else a minute).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cashtag_core::config::StocktwitsSettings;
use cashtag_core::{Author, Post, Record, SentimentLabel, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::cashtag::{extract, merge_tags};
use crate::http::{PollPolicy, PollRequest, Poller};
use crate::{BoxFuture, ParseError, Parsed, Signal, Source, SourceCtx, SourceError};

pub const NAME: &str = "stocktwits";
/// The recording channel of symbol-stream pages.
pub const SYMBOL: &str = "symbol";

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

/// Parses a symbol stream page: the posts about watched tickers, and the newest message id
/// as a [`Signal::Cursor`].
pub fn parse_symbol_stream(
    text: &str,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    let r: Response = serde_json::from_str(text).map_err(|e| ParseError(format!("symbol stream: {e}")))?;
    let mut out = Parsed::default();
    if let Some(newest) = r.messages.iter().map(|m| m.id).max() {
        out.signals.push(Signal::Cursor(newest as i64));
    }
    for m in r.messages {
        let p = message_post(m, received_at, watched);
        if !p.tickers.is_empty() {
            out.records.push(Record::Post(p));
        }
    }
    Ok(out)
}

/// A message as a post (`tickers` empty when it mentions no watched ticker).
fn message_post(m: Message, received_at: DateTime<Utc>, watched: &HashSet<Ticker>) -> Post {
    let tickers = merge_tags(extract(&m.body, watched), m.symbols.iter().map(|s| s.symbol.as_str()), watched);
    let label = m.entities.and_then(|e| e.sentiment).and_then(|s| s.basic).and_then(|b| match b.as_str() {
        "Bullish" => Some(SentimentLabel::Bullish),
        "Bearish" => Some(SentimentLabel::Bearish),
        _ => None,
    });
    let author_id = match &m.user.id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Post {
        source: NAME.into(),
        id: m.id.to_string(),
        created_at: m.created_at,
        received_at,
        text: m.body,
        lang: None,
        author: Author { id: author_id, name: m.user.username.unwrap_or_default(), followers: m.user.followers },
        engagement: None,
        tickers,
        is_repost: false,
        author_label: label,
        sentiment: None,
    }
}

/// One archived StockTwits message (an item of a symbol stream's `messages`) as a post;
/// `tickers` is empty when it mentions no watched ticker.
pub fn parse_message(
    v: serde_json::Value,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Post, ParseError> {
    let m: Message = serde_json::from_value(v).map_err(|e| ParseError(format!("stocktwits message: {e}")))?;
    Ok(message_post(m, received_at, watched))
}

/// StockTwits' parser (one channel, `symbol`).
pub fn parse(
    _channel: &str,
    payload: &str,
    at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    parse_symbol_stream(payload, at, watched)
}

pub struct StockTwits {
    base: String,
    /// Pause between two requests (the hourly budget spread evenly).
    every: Duration,
    since: HashMap<String, u64>,
    /// The symbol of the request in flight, and the round-robin position.
    current: Option<String>,
    next: usize,
    http: reqwest::Client,
}

impl StockTwits {
    pub fn new(base: String, every: Duration) -> Self {
        StockTwits {
            base,
            every,
            since: HashMap::new(),
            current: None,
            next: 0,
            http: crate::http::client(Duration::from_secs(15)),
        }
    }

    pub fn from_settings(s: &StocktwitsSettings) -> Self {
        StockTwits::new(s.url.clone(), Duration::from_secs_f64(3600.0 / s.requests_per_hour as f64))
    }
}

impl Source for StockTwits {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        let http = self.http.clone();
        Box::pin(async move { crate::http::run(self, &http, ctx).await })
    }
}

impl Poller for StockTwits {
    fn name(&self) -> &'static str {
        NAME
    }

    fn policy(&self) -> PollPolicy {
        PollPolicy {
            interval: self.every,
            errors_wait_interval: true,
            rate_limit_wait: Some(Duration::from_secs(60)),
            auth_is_fatal: false,
            auth_hint: "",
        }
    }

    fn next_request(&mut self, http: &reqwest::Client, ctx: &SourceCtx) -> Option<PollRequest> {
        let symbols = ctx.tickers();
        if symbols.is_empty() {
            return None;
        }
        let sym = symbols[self.next % symbols.len()].clone();
        self.next += 1;
        let mut request = http.get(format!("{}/api/2/streams/symbol/{sym}.json", self.base.trim_end_matches('/')));
        if let Some(since) = self.since.get(&sym) {
            request = request.query(&[("since", since.to_string())]);
        }
        self.current = Some(sym.clone());
        Some(PollRequest { request, channel: SYMBOL, about: format!("for {sym}") })
    }

    fn parse(&mut self, _channel: &str, text: &str, at: DateTime<Utc>, ctx: &SourceCtx) -> Result<Parsed, ParseError> {
        parse_symbol_stream(text, at, &ctx.watched())
    }

    fn keep(&mut self, parsed: Parsed) -> Parsed {
        if let (Some(sym), Some(newest)) = (
            self.current.clone(),
            parsed.signals.iter().find_map(|s| if let Signal::Cursor(c) = s { Some(*c as u64) } else { None }),
        ) {
            let e = self.since.entry(sym).or_insert(0);
            *e = (*e).max(newest);
        }
        parsed
    }

    fn connected(&self) -> String {
        "polling symbol streams".into()
    }
}
