//! The WebSocket connection loop every streaming provider shares (Alpaca, Finnhub,
//! Bluesky Jetstream): connect with a deadline, let the provider authenticate and
//! subscribe, read frames with an idle timeout (answering pings), parse and deliver them,
//! follow watchlist changes, and reconnect with backoff when the connection is lost. The
//! provider supplies only what differs, through [`WsProvider`].
//!
//! URLs may carry a token (Finnhub's `?token=`): errors and events never include the query.

use std::collections::BTreeSet;
use std::time::Duration;

use cashtag_core::{Backoff, catalog};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{BoxFuture, ParseError, Parsed, Signal, SourceCtx, SourceError};

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The source was cancelled: stop.
    Cancelled,
    /// The connection was lost or refused; reconnect after a pause.
    Lost(String),
    /// The source cannot go on (credentials refused): stop with this error.
    Failed(SourceError),
}

/// What to do after a provider signal.
#[derive(Debug)]
pub enum Flow {
    Continue,
    Reconnect(String),
    Fail(SourceError),
}

/// An open connection, as a provider sees it during its handshake and resubscriptions.
pub struct WsConn<'a> {
    socket: Socket,
    provider: &'static str,
    ctx: &'a SourceCtx,
    idle: Duration,
}

impl WsConn<'_> {
    /// Sends a JSON message.
    pub async fn send_json(&mut self, v: &serde_json::Value) -> Result<(), String> {
        self.socket.send(Message::Text(v.to_string().into())).await.map_err(|e| e.to_string())
    }

    /// The next text frame with its receive time (recorded when recording), answering
    /// pings meanwhile; `Err` when the connection ends, the idle timeout passes, or the
    /// source is cancelled.
    pub async fn next_text(&mut self) -> Result<(String, DateTime<Utc>), Ended> {
        let idle = self.idle;
        let next = async {
            loop {
                match self.socket.next().await {
                    None => return Err(Ended::Lost("closed by the server".into())),
                    Some(Err(e)) => return Err(Ended::Lost(e.to_string())),
                    Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
                    Some(Ok(Message::Ping(p))) => {
                        let _ = self.socket.send(Message::Pong(p)).await;
                    }
                    Some(Ok(Message::Close(_))) => return Err(Ended::Lost("closed by the server".into())),
                    Some(Ok(_)) => {}
                }
            }
        };
        let text = tokio::select! {
            r = tokio::time::timeout(idle, next) => match r {
                Ok(r) => r?,
                Err(_) => return Err(Ended::Lost(format!("no data for {} s", idle.as_secs()))),
            },
            _ = self.ctx.cancel.cancelled() => return Err(Ended::Cancelled),
        };
        Ok((text, self.ctx.now()))
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The source's context (events, clock, watchlist).
    pub fn ctx(&self) -> &SourceCtx {
        self.ctx
    }

    async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// What a streaming provider supplies to the shared loop.
pub trait WsProvider: Send {
    /// The provider's name.
    fn name(&self) -> &'static str;

    /// Where to connect (may carry a token; never logged).
    fn url(&self) -> String;

    /// No frame for this long means the connection is dead.
    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(90)
    }

    /// After connecting: authenticate and subscribe to `tickers`. Returns what the
    /// `source.connected` event says.
    fn open<'a>(
        &'a mut self,
        conn: &'a mut WsConn<'_>,
        tickers: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<String, Ended>>;

    /// Parses one text frame.
    fn parse(&mut self, text: &str, at: DateTime<Utc>, ctx: &SourceCtx) -> Result<Parsed, ParseError>;

    /// Whether a frame is kept when recording (default: every frame).
    fn keep_raw(&self, _parsed: &Parsed) -> bool {
        true
    }

    /// A signal received while streaming.
    fn on_signal(&mut self, _signal: &Signal, _ctx: &SourceCtx) -> Flow {
        Flow::Continue
    }

    /// The watchlist changed while connected: subscribe to `add`, unsubscribe from `remove`.
    fn resubscribe<'a>(
        &'a mut self,
        _conn: &'a mut WsConn<'_>,
        _add: &'a BTreeSet<String>,
        _remove: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Connected again after data stopped at `from`: fill the gap if the provider can.
    fn on_gap(&mut self, _ctx: &SourceCtx, _from: DateTime<Utc>, _to: DateTime<Utc>, _tickers: &BTreeSet<String>) {}
}

/// Connects with a deadline; the error never shows the URL's query.
pub async fn connect(url: &str, timeout: Duration) -> Result<Socket, String> {
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(format!("websocket connect failed: {}", strip_query(&e.to_string()))),
        Err(_) => Err(format!("websocket connect timed out after {} s", timeout.as_secs())),
    }
}

/// Removes anything after `?` in URLs inside a message (tokens travel in query strings).
pub fn strip_query(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            if w.contains("://") && w.contains('?') {
                w.split('?').next().unwrap_or(w).to_string() + "?…"
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a streaming provider until cancelled or it fails for good.
pub async fn run<P: WsProvider>(p: &mut P, ctx: &SourceCtx) -> Result<(), SourceError> {
    let name = p.name();
    let mut backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
    // Where data was last received, when there is a gap to fill after (re)connecting:
    // the newest record accepted from this provider, else when the market turned on.
    let mut resume = ctx.resume_point(name).or(ctx.resume_from);
    loop {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        let socket = match connect(&p.url(), Duration::from_secs(10)).await {
            Ok(s) => s,
            Err(e) => {
                ctx.emit_event(catalog::source_disconnected(name, format!("{e}; retrying")));
                if !backoff.wait(&ctx.cancel).await {
                    return Ok(());
                }
                continue;
            }
        };
        let mut conn = WsConn { socket, provider: name, ctx, idle: p.idle_timeout() };
        let ended = session(p, &mut conn, ctx, &mut resume, &mut backoff).await;
        conn.close().await;
        match ended {
            Ended::Cancelled => return Ok(()),
            Ended::Failed(e) => return Err(e),
            Ended::Lost(why) => {
                ctx.emit_event(catalog::source_disconnected(name, format!("connection lost ({why}); reconnecting")));
                if !backoff.wait(&ctx.cancel).await {
                    return Ok(());
                }
            }
        }
    }
}

async fn session<P: WsProvider>(
    p: &mut P,
    conn: &mut WsConn<'_>,
    ctx: &SourceCtx,
    resume: &mut Option<DateTime<Utc>>,
    backoff: &mut Backoff,
) -> Ended {
    let name = p.name();
    let mut watchlist = ctx.watchlist.clone();
    let mut subscribed: BTreeSet<String> =
        watchlist.borrow_and_update().tickers().iter().map(|t| t.to_string()).collect();
    let connected = match p.open(conn, &subscribed).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    ctx.emit_event(catalog::source_connected(name, connected));
    backoff.reset();
    if let Some(from) = resume.take() {
        p.on_gap(ctx, from, ctx.now(), &subscribed);
    }
    loop {
        tokio::select! {
            frame = conn.next_text() => {
                let (text, at) = match frame {
                    Ok(x) => x,
                    Err(Ended::Lost(why)) => {
                        *resume = Some(ctx.now());
                        return Ended::Lost(why);
                    }
                    Err(other) => return other,
                };
                let parsed = match p.parse(&text, at, ctx) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        if p.keep_raw(&Parsed::default()) {
                            ctx.record_raw(name, "ws", &text, at);
                        }
                        ctx.malformed(name, &e.0, &text);
                        continue;
                    }
                };
                if p.keep_raw(&parsed) {
                    ctx.record_raw(name, "ws", &text, at);
                }
                for s in &parsed.signals {
                    match p.on_signal(s, ctx) {
                        Flow::Continue => {}
                        Flow::Reconnect(why) => return Ended::Lost(why),
                        Flow::Fail(e) => return Ended::Failed(e),
                    }
                }
                if !ctx.deliver(name, &text, parsed).await {
                    return Ended::Cancelled;
                }
            }
            changed = watchlist.changed() => {
                if changed.is_err() {
                    continue;
                }
                let want: BTreeSet<String> = watchlist.borrow_and_update().tickers().iter().map(|t| t.to_string()).collect();
                let add: BTreeSet<String> = want.difference(&subscribed).cloned().collect();
                let remove: BTreeSet<String> = subscribed.difference(&want).cloned().collect();
                if add.is_empty() && remove.is_empty() {
                    continue;
                }
                if let Err(e) = p.resubscribe(conn, &add, &remove).await {
                    return Ended::Lost(e);
                }
                subscribed = want;
            }
        }
    }
}
