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

use std::collections::BTreeSet;
use std::time::Duration;

use cashtag_core::{Bar, EventKind, Quote, Record, Secret, Ticker, Trade};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::backoff::{Backoff, sleep_or_cancel};
use crate::ws::{self, Socket};
use crate::{SourceCtx, SourceError, content_seq};

const PROVIDER: &str = "alpaca";

#[derive(Debug, Clone)]
pub struct AlpacaConfig {
    pub ws_url: String,
    pub rest_url: String,
    pub feed: String,
    pub key_id: Secret,
    pub secret_key: Secret,
}

/// A message of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum AlpacaMsg {
    Data(Record),
    Success(String),
    Subscription(serde_json::Value),
    Error {
        code: i64,
        msg: String,
    },
    /// Statuses, LULDs, corrections and other types cashtag does not use.
    Other,
}

#[derive(Deserialize)]
struct TradeMsg {
    #[serde(rename = "S")]
    symbol: String,
    i: Option<u64>,
    x: Option<String>,
    p: f64,
    s: f64,
    #[serde(default)]
    c: Vec<String>,
    t: DateTime<Utc>,
}

#[derive(Deserialize)]
struct QuoteMsg {
    #[serde(rename = "S")]
    symbol: String,
    bp: Option<f64>,
    bs: Option<f64>,
    ap: Option<f64>,
    #[serde(rename = "as")]
    ask_size: Option<f64>,
    t: DateTime<Utc>,
}

#[derive(Deserialize)]
struct BarMsg {
    #[serde(rename = "S", default)]
    symbol: Option<String>,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
    t: DateTime<Utc>,
    n: Option<u64>,
    vw: Option<f64>,
}

fn ticker(symbol: &str) -> Result<Ticker, String> {
    Ticker::parse(symbol).map_err(|e| e.to_string())
}

fn bar(symbol: &str, b: BarMsg, received_at: DateTime<Utc>) -> Result<Record, String> {
    Ok(Record::Bar(Bar {
        provider: PROVIDER.into(),
        ticker: ticker(symbol)?,
        start: b.t,
        open: b.o,
        high: b.h,
        low: b.l,
        close: b.c,
        volume: b.v,
        trade_count: b.n,
        vwap: b.vw,
        origin: "provider".into(),
        received_at: Some(received_at),
    }))
}

/// Parses one stream frame (a JSON array). A bad item is reported in the error list and
/// skipped; the others still count.
pub fn parse_frame(text: &str, received_at: DateTime<Utc>) -> Result<(Vec<AlpacaMsg>, Vec<String>), String> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| format!("not a JSON array: {e}"))?;
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for item in items {
        let parsed: Result<AlpacaMsg, String> = (|| {
            let kind = item.get("T").and_then(|t| t.as_str()).ok_or("message without \"T\"")?;
            Ok(match kind {
                "t" => {
                    let m: TradeMsg = serde_json::from_value(item.clone()).map_err(|e| format!("trade: {e}"))?;
                    let seq = m.i.unwrap_or_else(|| content_seq(&item.to_string()));
                    AlpacaMsg::Data(Record::Trade(Trade {
                        provider: PROVIDER.into(),
                        ticker: ticker(&m.symbol)?,
                        ts: m.t,
                        received_at,
                        price: m.p,
                        size: m.s,
                        exchange: m.x,
                        trade_id: m.i.map(|i| i.to_string()),
                        conditions: m.c,
                        seq,
                    }))
                }
                "q" => {
                    let m: QuoteMsg = serde_json::from_value(item.clone()).map_err(|e| format!("quote: {e}"))?;
                    AlpacaMsg::Data(Record::Quote(Quote {
                        provider: PROVIDER.into(),
                        ticker: ticker(&m.symbol)?,
                        ts: m.t,
                        received_at,
                        bid_price: m.bp,
                        bid_size: m.bs,
                        ask_price: m.ap,
                        ask_size: m.ask_size,
                        last_price: None,
                        volume: None,
                        seq: content_seq(&item.to_string()),
                    }))
                }
                "b" => {
                    let m: BarMsg = serde_json::from_value(item.clone()).map_err(|e| format!("bar: {e}"))?;
                    let sym = m.symbol.clone().ok_or("bar without \"S\"")?;
                    AlpacaMsg::Data(bar(&sym, m, received_at)?)
                }
                "success" => {
                    AlpacaMsg::Success(item.get("msg").and_then(|m| m.as_str()).unwrap_or_default().to_string())
                }
                "subscription" => AlpacaMsg::Subscription(item.clone()),
                "error" => AlpacaMsg::Error {
                    code: item.get("code").and_then(|c| c.as_i64()).unwrap_or(0),
                    msg: item.get("msg").and_then(|m| m.as_str()).unwrap_or_default().to_string(),
                },
                _ => AlpacaMsg::Other,
            })
        })();
        match parsed {
            Ok(m) => out.push(m),
            Err(e) => errors.push(e),
        }
    }
    Ok((out, errors))
}

#[derive(Deserialize)]
struct BarsPage {
    #[serde(default)]
    bars: std::collections::BTreeMap<String, Vec<BarMsg>>,
    next_page_token: Option<String>,
}

/// Parses a `/v2/stocks/bars` response page: the bars and the next page token.
pub fn parse_bars_page(text: &str, received_at: DateTime<Utc>) -> Result<(Vec<Record>, Option<String>), String> {
    let page: BarsPage = serde_json::from_str(text).map_err(|e| format!("bars page: {e}"))?;
    let mut out = Vec::new();
    for (sym, bars) in page.bars {
        for b in bars {
            out.push(bar(&sym, b, received_at)?);
        }
    }
    Ok((out, page.next_page_token.filter(|t| !t.is_empty())))
}

pub struct Alpaca {
    config: AlpacaConfig,
    http: reqwest::Client,
}

enum Session {
    /// Cancelled: stop.
    Done,
    /// Lost the connection after receiving data up to this instant.
    Lost(String),
}

impl Alpaca {
    pub fn new(config: AlpacaConfig) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");
        Alpaca { config, http }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut resume = ctx.resume_from;
        loop {
            if ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let url = format!("{}/v2/{}", self.config.ws_url.trim_end_matches('/'), self.config.feed);
            let socket = match ws::connect(&url, Duration::from_secs(10)).await {
                Ok(s) => s,
                Err(e) => {
                    ctx.event(EventKind::Warning, "source.disconnected", format!("alpaca: {e}; retrying"));
                    if !backoff.wait(&ctx.cancel).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            match self.session(ctx, socket, &mut resume, &mut backoff).await? {
                Session::Done => return Ok(()),
                Session::Lost(why) => {
                    ctx.event(
                        EventKind::Warning,
                        "source.disconnected",
                        format!("alpaca: connection lost ({why}); reconnecting"),
                    );
                    if !backoff.wait(&ctx.cancel).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn recv(ctx: &SourceCtx, socket: &mut Socket) -> Option<Result<(String, DateTime<Utc>), String>> {
        tokio::select! {
            m = tokio::time::timeout(Duration::from_secs(90), ws::next_text(socket)) => match m {
                Ok(Some(Ok(t))) => {
                    let at = ctx.now();
                    ctx.record_raw(PROVIDER, "ws", &t, at);
                    Some(Ok((t, at)))
                }
                Ok(Some(Err(e))) => Some(Err(e)),
                Ok(None) => Some(Err("closed by the server".into())),
                Err(_) => Some(Err("no data for 90 s".into())),
            },
            _ = ctx.cancel.cancelled() => None,
        }
    }

    async fn session(
        &self,
        ctx: &SourceCtx,
        mut socket: Socket,
        resume: &mut Option<DateTime<Utc>>,
        backoff: &mut Backoff,
    ) -> Result<Session, SourceError> {
        // Greeting, then auth.
        let mut authed = false;
        let mut sent_auth = false;
        while !authed {
            let Some(frame) = Self::recv(ctx, &mut socket).await else {
                let _ = socket.close(None).await;
                return Ok(Session::Done);
            };
            let (text, at) = match frame {
                Ok(x) => x,
                Err(e) => return Ok(Session::Lost(e)),
            };
            let (msgs, _) = match parse_frame(&text, at) {
                Ok(x) => x,
                Err(e) => {
                    ctx.malformed(PROVIDER, &e, &text);
                    continue;
                }
            };
            for m in msgs {
                match m {
                    AlpacaMsg::Success(s) if s == "connected" && !sent_auth => {
                        let auth = json!({"action": "auth", "key": self.config.key_id.expose(), "secret": self.config.secret_key.expose()});
                        if let Err(e) = ws::send_json(&mut socket, &auth).await {
                            return Ok(Session::Lost(e));
                        }
                        sent_auth = true;
                    }
                    AlpacaMsg::Success(s) if s == "authenticated" => authed = true,
                    AlpacaMsg::Error { code, msg } => {
                        let _ = socket.close(None).await;
                        return match code {
                            402 | 401 | 403 => {
                                ctx.event(EventKind::Error, "source.auth_failed", format!("alpaca: authentication failed ({code} {msg}); check stocks.alpaca_key_id / stocks.alpaca_secret_key"));
                                Err(SourceError::Auth { provider: PROVIDER, message: format!("{code} {msg}") })
                            }
                            406 => {
                                ctx.event(
                                    EventKind::Error,
                                    "source.connection_limit",
                                    format!("alpaca: connection limit exceeded ({msg}); another client uses this key"),
                                );
                                Ok(Session::Lost(format!("{code} {msg}")))
                            }
                            _ => {
                                ctx.event(
                                    EventKind::Error,
                                    "source.error",
                                    format!("alpaca: error {code} {msg} during login"),
                                );
                                Ok(Session::Lost(format!("{code} {msg}")))
                            }
                        };
                    }
                    _ => {}
                }
            }
        }
        // Subscribe to the watchlist.
        let mut subscribed: BTreeSet<String> = BTreeSet::new();
        let mut watchlist = ctx.watchlist.clone();
        let want: BTreeSet<String> = ctx.tickers().into_iter().collect();
        if let Err(e) = self.change_subscription(&mut socket, "subscribe", &want).await {
            return Ok(Session::Lost(e));
        }
        subscribed = &subscribed | &want;
        ctx.event(
            EventKind::Activity,
            "source.connected",
            format!("alpaca: connected to the {} feed, {} symbols", self.config.feed, subscribed.len()),
        );
        backoff.reset();
        // Backfill the gap since the last data, in the background.
        if let Some(from) = resume.take() {
            let to = ctx.now();
            if to - from > chrono::TimeDelta::minutes(1) {
                let me = self.clone_for_backfill();
                let c = ctx.clone();
                let syms: Vec<String> = subscribed.iter().cloned().collect();
                tokio::spawn(async move { me.backfill(&c, &syms, from, to).await });
            }
        }
        loop {
            tokio::select! {
                frame = Self::recv(ctx, &mut socket) => {
                    let Some(frame) = frame else {
                        let _ = socket.close(None).await;
                        return Ok(Session::Done);
                    };
                    let (text, at) = match frame {
                        Ok(x) => x,
                        Err(e) => {
                            *resume = Some(ctx.now());
                            return Ok(Session::Lost(e));
                        }
                    };
                    let (msgs, errors) = match parse_frame(&text, at) {
                        Ok(x) => x,
                        Err(e) => {
                            ctx.malformed(PROVIDER, &e, &text);
                            continue;
                        }
                    };
                    for e in errors {
                        ctx.malformed(PROVIDER, &e, &text);
                    }
                    for m in msgs {
                        match m {
                            AlpacaMsg::Data(r) => {
                                if !ctx.emit(r).await {
                                    return Ok(Session::Done);
                                }
                            }
                            AlpacaMsg::Error { code, msg } => {
                                let code_name = match code { 405 => "source.symbol_limit", 406 => "source.connection_limit", _ => "source.error" };
                                ctx.event(EventKind::Error, code_name, format!("alpaca: error {code}: {msg}"));
                            }
                            _ => {}
                        }
                    }
                }
                changed = watchlist.changed() => {
                    if changed.is_err() { continue; }
                    let want: BTreeSet<String> = watchlist.borrow_and_update().tickers().iter().map(|t| t.to_string()).collect();
                    let add: BTreeSet<String> = want.difference(&subscribed).cloned().collect();
                    let remove: BTreeSet<String> = subscribed.difference(&want).cloned().collect();
                    if !add.is_empty() {
                        if let Err(e) = self.change_subscription(&mut socket, "subscribe", &add).await { return Ok(Session::Lost(e)); }
                    }
                    if !remove.is_empty() {
                        if let Err(e) = self.change_subscription(&mut socket, "unsubscribe", &remove).await { return Ok(Session::Lost(e)); }
                    }
                    subscribed = want;
                    ctx.event(EventKind::Activity, "source.resubscribed", format!("alpaca: watchlist changed, +{} -{}", add.len(), remove.len()));
                }
            }
        }
    }

    async fn change_subscription(
        &self,
        socket: &mut Socket,
        action: &str,
        symbols: &BTreeSet<String>,
    ) -> Result<(), String> {
        let list: Vec<&String> = symbols.iter().collect();
        ws::send_json(socket, &json!({"action": action, "trades": list, "quotes": list, "bars": list})).await
    }

    fn clone_for_backfill(&self) -> Alpaca {
        Alpaca { config: self.config.clone(), http: self.http.clone() }
    }

    /// Fetches one-minute bars for `[from, to)` page by page and emits them.
    pub async fn backfill(&self, ctx: &SourceCtx, symbols: &[String], from: DateTime<Utc>, to: DateTime<Utc>) {
        let mut token: Option<String> = None;
        let mut count = 0usize;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            let mut req = self
                .http
                .get(format!("{}/v2/stocks/bars", self.config.rest_url.trim_end_matches('/')))
                .header("APCA-API-KEY-ID", self.config.key_id.expose())
                .header("APCA-API-SECRET-KEY", self.config.secret_key.expose())
                .query(&[
                    ("symbols", symbols.join(",")),
                    ("timeframe", "1Min".into()),
                    ("start", cashtag_core::time::rfc3339(&from)),
                    ("end", cashtag_core::time::rfc3339(&to)),
                    ("limit", "10000".into()),
                    ("feed", self.config.feed.clone()),
                ]);
            if let Some(t) = &token {
                req = req.query(&[("page_token", t)]);
            }
            let resp = tokio::select! {
                r = req.send() => r,
                _ = ctx.cancel.cancelled() => return,
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    ctx.event(
                        EventKind::Warning,
                        "source.backfill_failed",
                        format!("alpaca: backfill request failed: {}", e.without_url()),
                    );
                    return;
                }
            };
            if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&resp).unwrap_or_else(|| backoff.next_delay());
                ctx.event(
                    EventKind::Warning,
                    "source.rate_limited",
                    format!("alpaca: HTTP 429 on bars; waiting {} s", wait.as_secs_f64()),
                );
                if !sleep_or_cancel(wait, &ctx.cancel).await {
                    return;
                }
                continue;
            }
            if !resp.status().is_success() {
                ctx.event(
                    EventKind::Warning,
                    "source.backfill_failed",
                    format!("alpaca: bars request answered {}", resp.status()),
                );
                return;
            }
            let at = ctx.now();
            let text = match resp.text().await {
                Ok(t) => t,
                Err(e) => {
                    ctx.event(
                        EventKind::Warning,
                        "source.backfill_failed",
                        format!("alpaca: reading bars: {}", e.without_url()),
                    );
                    return;
                }
            };
            ctx.record_raw(PROVIDER, "bars", &text, at);
            match parse_bars_page(&text, at) {
                Ok((bars, next)) => {
                    count += bars.len();
                    for b in bars {
                        if !ctx.emit(b).await {
                            return;
                        }
                    }
                    match next {
                        Some(t) => token = Some(t),
                        None => break,
                    }
                }
                Err(e) => {
                    ctx.malformed(PROVIDER, &e, &text);
                    return;
                }
            }
        }
        ctx.bus.emit(
            ctx.bus
                .event(
                    EventKind::Activity,
                    "source.backfill",
                    format!("alpaca: backfilled {count} one-minute bars for the gap"),
                )
                .with("from", cashtag_core::time::rfc3339(&from))
                .with("to", cashtag_core::time::rfc3339(&to))
                .with("bars", count),
        );
    }
}

/// `Retry-After` in seconds, if present.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_batched_frames() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let text = r#"[{"T":"t","S":"AAPL","i":96921,"x":"V","p":231.5,"s":100,"c":["@"],"t":"2026-11-24T14:59:59.123456789Z","z":"C"},
            {"T":"q","S":"AAPL","bx":"V","bp":231.4,"bs":2,"ax":"V","ap":231.6,"as":3,"c":["R"],"t":"2026-11-24T14:59:59.2Z","z":"C"},
            {"T":"b","S":"MSFT","o":410,"h":411,"l":409.5,"c":410.5,"v":12000,"t":"2026-11-24T14:59:00Z","n":55,"vw":410.2},
            {"T":"s","S":"AAPL"},
            {"T":"t","S":"AAPL","p":"oops"},
            {"T":"t","S":"aapl!","i":1,"p":1,"s":1,"t":"2026-11-24T14:59:59Z"}]"#;
        let (msgs, errors) = parse_frame(text, at).unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let AlpacaMsg::Data(Record::Trade(t)) = &msgs[0] else { panic!() };
        assert_eq!((t.ticker.as_str(), t.price, t.seq), ("AAPL", 231.5, 96921));
        assert_eq!(t.ts.timestamp_subsec_nanos(), 123_456_789);
        let AlpacaMsg::Data(Record::Quote(q)) = &msgs[1] else { panic!() };
        assert_eq!(q.ask_size, Some(3.0));
        let AlpacaMsg::Data(Record::Bar(b)) = &msgs[2] else { panic!() };
        assert_eq!((b.trade_count, b.origin.as_str()), (Some(55), "provider"));
        assert!(parse_frame("{not json", at).is_err());
    }

    #[test]
    fn parses_bar_pages() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let (bars, next) = parse_bars_page(r#"{"bars":{"AAPL":[{"t":"2026-11-24T14:30:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"n":3,"vw":1.2}]},"next_page_token":"abc"}"#, at).unwrap();
        assert_eq!(bars.len(), 1);
        assert_eq!(next.as_deref(), Some("abc"));
        let (_, next) = parse_bars_page(r#"{"bars":{},"next_page_token":null}"#, at).unwrap();
        assert!(next.is_none());
    }
}
