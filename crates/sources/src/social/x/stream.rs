//! The filtered-stream connection: rules synchronized first, then lines read with a read
//! timeout, reconnecting with X's documented backoffs. A line is at most
//! [`MAX_LINE_BYTES`]: a stream that sends more without a newline is dropped and
//! reconnected, so a broken peer can never grow the buffer without bound.

use std::collections::BTreeSet;
use std::time::Duration;

use cashtag_core::{Backoff, Ticker, backoff::sleep_or_cancel, catalog};
use futures::StreamExt;

use super::parse::{STREAM, parse_line};
use super::{NAME, XStream};
use crate::{Signal, SourceCtx, SourceError};

/// The longest stream line accepted (a post with its expansions is a few KiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

enum Ended {
    Cancelled,
    Network(String),
    Http(reqwest::StatusCode),
    RateLimited,
}

/// The three backoffs X documents, reset after every successful connect.
struct Backoffs {
    network: Backoff,
    http: Backoff,
    rate_limit: Backoff,
}

impl XStream {
    fn backoffs(&self) -> Backoffs {
        let t = &self.cfg.timing;
        Backoffs {
            network: Backoff::linear(t.network_step, t.network_max),
            http: Backoff::exponential(t.http_initial, t.http_max).with_jitter(0.0),
            rate_limit: Backoff::exponential(t.rate_limit_initial, Duration::from_secs(3600)).with_jitter(0.0),
        }
    }

    pub(super) async fn stream(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let mut b = self.backoffs();
        if let Err(e) = self.sync_rules(ctx).await {
            ctx.emit_event(catalog::x_rules_failed(e));
        }
        loop {
            let pause = match self.stream_once(ctx, &mut b).await? {
                Ended::Cancelled => return Ok(()),
                Ended::Network(why) => {
                    let d = b.network.next_delay();
                    ctx.emit_event(catalog::source_disconnected(
                        NAME,
                        format!("{why}; reconnecting in {:.2} s", d.as_secs_f64()),
                    ));
                    d
                }
                Ended::Http(status) => {
                    let d = b.http.next_delay();
                    ctx.emit_event(catalog::source_disconnected(
                        NAME,
                        format!("HTTP {status}; reconnecting in {:.1} s", d.as_secs_f64()),
                    ));
                    d
                }
                Ended::RateLimited => {
                    let d = b.rate_limit.next_delay();
                    ctx.emit_event(catalog::source_rate_limited(
                        NAME,
                        format!("HTTP 429; reconnecting in {:.1} s", d.as_secs_f64()),
                        d.as_secs_f64(),
                    ));
                    d
                }
            };
            if !sleep_or_cancel(pause, &ctx.cancel).await {
                return Ok(());
            }
        }
    }

    async fn stream_once(&self, ctx: &SourceCtx, b: &mut Backoffs) -> Result<Ended, SourceError> {
        let req = self.http.get(self.url("/2/tweets/search/stream")).bearer_auth(self.cfg.bearer.expose()).query(&[
            ("tweet.fields", "created_at,author_id,lang,public_metrics,entities,referenced_tweets"),
            ("expansions", "author_id"),
            ("user.fields", "username,public_metrics"),
        ]);
        let resp = tokio::select! {
            r = req.send() => r,
            _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Ok(Ended::Network(e.without_url().to_string())),
        };
        match resp.status() {
            s if s.is_success() => {}
            reqwest::StatusCode::TOO_MANY_REQUESTS => return Ok(Ended::RateLimited),
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                ctx.emit_event(catalog::source_auth_failed(
                    NAME,
                    format!("HTTP {}", resp.status()),
                    "twitter.x.bearer_token and the app's access level",
                ));
                return Err(SourceError::Auth { provider: NAME, message: resp.status().to_string() });
            }
            s => return Ok(Ended::Http(s)),
        }
        ctx.emit_event(catalog::source_connected(NAME, "filtered stream connected"));
        b.network.reset();
        b.http.reset();
        b.rate_limit.reset();
        let read_timeout = self.cfg.timing.read_timeout;
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut watchlist = ctx.watchlist.clone();
        let mut subscribed: BTreeSet<Ticker> = watchlist.borrow_and_update().tickers().into_iter().collect();
        loop {
            tokio::select! {
                chunk = tokio::time::timeout(read_timeout, body.next()) => {
                    let chunk = match chunk {
                        Err(_) => return Ok(Ended::Network(format!("no data or keep-alive for {} s", read_timeout.as_secs()))),
                        Ok(None) => return Ok(Ended::Network("stream closed by the server".into())),
                        Ok(Some(Err(e))) => return Ok(Ended::Network(e.without_url().to_string())),
                        Ok(Some(Ok(c))) => c,
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if let Some(ended) = self.line(ctx, &line).await {
                            return Ok(ended);
                        }
                    }
                    if buf.len() > MAX_LINE_BYTES {
                        let sample = String::from_utf8_lossy(&buf[..200.min(buf.len())]).into_owned();
                        ctx.malformed(NAME, &format!("a line longer than {MAX_LINE_BYTES} bytes without a newline"), &sample);
                        return Ok(Ended::Network("stream line too long".into()));
                    }
                }
                changed = watchlist.changed() => {
                    if changed.is_ok() {
                        let now: BTreeSet<Ticker> = watchlist.borrow_and_update().tickers().into_iter().collect();
                        if now != subscribed {
                            subscribed = now;
                            if let Err(e) = self.sync_rules(ctx).await {
                                ctx.emit_event(catalog::x_rules_failed(e));
                            }
                        }
                    }
                }
                _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
            }
        }
    }

    /// Handles one complete line; Some when the connection must end.
    async fn line(&self, ctx: &SourceCtx, raw: &[u8]) -> Option<Ended> {
        let line = String::from_utf8_lossy(raw).trim().to_string();
        if line.is_empty() {
            return None;
        }
        let at = ctx.now();
        ctx.record_raw(NAME, STREAM, &line, at);
        let parsed = match parse_line(&line, at, &ctx.watched()) {
            Ok(p) => p,
            Err(e) => {
                ctx.malformed(NAME, &e.0, &line);
                return None;
            }
        };
        for s in &parsed.signals {
            match s {
                Signal::Disconnect(why) => return Some(Ended::Network(format!("operational disconnect: {why}"))),
                Signal::Error { message, .. } => ctx.emit_event(catalog::source_error(NAME, message)),
                _ => {}
            }
        }
        if !ctx.deliver(NAME, &line, parsed).await {
            return Some(Ended::Cancelled);
        }
        None
    }
}
