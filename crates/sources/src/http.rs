//! The HTTP polling loop the REST providers share (IEX-compatible quotes, StockTwits):
//! one request at a time at the provider's pace, `Retry-After` honoured on HTTP 429,
//! backoff after errors, credentials refused → the source stops. The provider supplies the
//! request, the parser and what to keep of each answer, through [`Poller`].
//!
//! Tokens may travel in query strings, so request errors are reported without their URL.

use std::time::Duration;

use cashtag_core::{Backoff, backoff::sleep_or_cancel, catalog};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;

use crate::{ParseError, Parsed, SourceCtx, SourceError};

/// How a poller paces itself.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// Between two successful requests.
    pub interval: Duration,
    /// After an error: the backoff (from 1 s), or at least the interval when the
    /// provider's budget is per hour.
    pub errors_wait_interval: bool,
    /// A 429 without `Retry-After` waits this long (None: the backoff).
    pub rate_limit_wait: Option<Duration>,
    /// HTTP 401/403 means the credentials are wrong: stop (else it is an HTTP error).
    pub auth_is_fatal: bool,
    /// The settings to check when credentials are refused.
    pub auth_hint: &'static str,
}

/// One request of a poller.
pub struct PollRequest {
    pub request: reqwest::RequestBuilder,
    /// The recording channel of the answer.
    pub channel: &'static str,
    /// What the request is about, for events (`for AAPL`).
    pub about: String,
}

/// What a polling provider supplies to the shared loop.
pub trait Poller: Send {
    fn name(&self) -> &'static str;

    fn policy(&self) -> PollPolicy;

    /// The next request; None when there is nothing to poll now.
    fn next_request(&mut self, http: &reqwest::Client, ctx: &SourceCtx) -> Option<PollRequest>;

    fn parse(&mut self, channel: &str, text: &str, at: DateTime<Utc>, ctx: &SourceCtx) -> Result<Parsed, ParseError>;

    /// What of a parsed answer to deliver (and cursors to keep): by default, all of it.
    fn keep(&mut self, parsed: Parsed) -> Parsed {
        parsed
    }

    /// The `source.connected` detail.
    fn connected(&self) -> String;
}

/// `Retry-After` in seconds, if present.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
}

/// A client with a request deadline that follows redirects only within the provider's
/// origin (see [`same_origin_redirects`]).
pub fn client(timeout: Duration) -> reqwest::Client {
    builder().timeout(timeout).build().expect("http client")
}

/// The builder every provider client starts from: a connect deadline, and redirects
/// followed only within the origin that was asked.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).redirect(same_origin_redirects())
}

/// Follows a redirect (at most 5) only to the same scheme, host and port. Providers
/// authenticate with custom headers (`APCA-API-KEY-ID`, …), which an HTTP client keeps on
/// a redirect to another host; a redirect that leaves the provider is not followed, so
/// the credentials never go anywhere else (the 3xx answer is reported like any error).
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin =
            |u: &reqwest::Url| (u.scheme().to_string(), u.host_str().map(str::to_string), u.port_or_known_default());
        let first = attempt.previous().first().map(origin);
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if first.is_some_and(|f| f != origin(attempt.url())) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Runs a poller until cancelled or its credentials are refused.
pub async fn run<P: Poller>(p: &mut P, http: &reqwest::Client, ctx: &SourceCtx) -> Result<(), SourceError> {
    let name = p.name();
    let policy = p.policy();
    let mut backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
    let mut connected = false;
    let after_error = |backoff: &mut Backoff| {
        let d = backoff.next_delay();
        if policy.errors_wait_interval { d.max(policy.interval) } else { d }
    };
    loop {
        let Some(req) = p.next_request(http, ctx) else {
            if !sleep_or_cancel(policy.interval, &ctx.cancel).await {
                return Ok(());
            }
            continue;
        };
        let resp = tokio::select! {
            r = req.request.send() => r,
            _ = ctx.cancel.cancelled() => return Ok(()),
        };
        let wait = match resp {
            Err(e) => {
                ctx.emit_event(catalog::source_disconnected(name, format!("request failed: {}", e.without_url())));
                connected = false;
                after_error(&mut backoff)
            }
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                let w = retry_after(&r)
                    .or(policy.rate_limit_wait)
                    .unwrap_or_else(|| backoff.next_delay())
                    .max(if policy.errors_wait_interval { policy.interval } else { Duration::ZERO });
                ctx.emit_event(catalog::source_rate_limited(
                    name,
                    format!("HTTP 429; waiting {:.1} s", w.as_secs_f64()),
                    w.as_secs_f64(),
                ));
                w
            }
            Ok(r) if policy.auth_is_fatal && matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                ctx.emit_event(catalog::source_auth_failed(name, format!("HTTP {}", r.status()), policy.auth_hint));
                return Err(SourceError::Auth { provider: name, message: r.status().to_string() });
            }
            Ok(r) if !r.status().is_success() => {
                ctx.emit_event(catalog::source_http_error(
                    name,
                    format!("HTTP {} {}", r.status(), req.about).trim_end(),
                ));
                after_error(&mut backoff)
            }
            Ok(r) => {
                let at = ctx.now();
                match r.text().await {
                    Ok(text) => {
                        ctx.record_raw(name, req.channel, &text, at);
                        if !connected {
                            ctx.emit_event(catalog::source_connected(name, p.connected()));
                            connected = true;
                        }
                        backoff.reset();
                        match p.parse(req.channel, &text, at, ctx) {
                            Ok(parsed) => {
                                let parsed = p.keep(parsed);
                                if !ctx.deliver(name, &text, parsed).await {
                                    return Ok(());
                                }
                            }
                            Err(e) => ctx.malformed(name, &e.0, &text),
                        }
                        policy.interval
                    }
                    Err(e) => {
                        ctx.emit_event(catalog::source_http_error(
                            name,
                            format!("reading the response: {}", e.without_url()),
                        ));
                        after_error(&mut backoff)
                    }
                }
            }
        };
        if !sleep_or_cancel(wait, &ctx.cancel).await {
            return Ok(());
        }
    }
}
