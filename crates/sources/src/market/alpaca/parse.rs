//! Alpaca's payloads: stream frames (JSON arrays that may batch trades, quotes, bars,
//! greetings and errors) and REST pages of history (`/v2/stocks/bars` of any timeframe,
//! `/v2/stocks/trades`), parsed item by item so one bad item never loses its page.

use cashtag_core::{Bar, Quote, Record, Ticker, Timeframe, Trade};
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::NAME;
use crate::{ParseError, Parsed, Signal, content_seq};

/// The recording channel of stream frames.
pub const WS: &str = "ws";
/// The recording channel of REST bar pages.
pub const BARS: &str = "bars";
/// The recording channel of REST trade pages.
pub const TRADES: &str = "trades";

/// A stream message's `T`, as far as reading a trade needs it.
#[derive(Deserialize, PartialEq)]
enum MsgKind {
    #[serde(rename = "t")]
    Trade,
    #[serde(other)]
    Other,
}

/// A trade message; its symbol is read where it lies (a frame holds up to 100 of them).
#[derive(Deserialize)]
struct TradeMsg<'a> {
    #[serde(rename = "T")]
    kind: Option<MsgKind>,
    #[serde(rename = "S", borrow)]
    symbol: Cow<'a, str>,
    i: Option<u64>,
    x: Option<String>,
    p: f64,
    s: f64,
    #[serde(default)]
    c: Vec<String>,
    #[serde(deserialize_with = "cashtag_core::time::deserialize_lenient")]
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
    #[serde(deserialize_with = "cashtag_core::time::deserialize_lenient")]
    t: DateTime<Utc>,
}

#[derive(Deserialize)]
pub(super) struct BarMsg {
    #[serde(rename = "S", default)]
    symbol: Option<String>,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
    #[serde(deserialize_with = "cashtag_core::time::deserialize_lenient")]
    t: DateTime<Utc>,
    n: Option<u64>,
    vw: Option<f64>,
}

fn ticker(symbol: &str) -> Result<Ticker, String> {
    Ticker::parse(symbol).map_err(|e| e.to_string())
}

fn bar(symbol: &str, b: BarMsg, received_at: DateTime<Utc>) -> Result<Record, String> {
    history_bar(symbol, b, received_at, Timeframe::Minute, false)
}

fn history_bar(
    symbol: &str,
    b: BarMsg,
    received_at: DateTime<Utc>,
    timeframe: Timeframe,
    adjusted: bool,
) -> Result<Record, String> {
    if ![b.o, b.h, b.l, b.c, b.v].iter().all(|x| x.is_finite()) || b.c <= 0.0 {
        return Err(format!("bar of {symbol} at {}: prices must be positive numbers", b.t));
    }
    Ok(Record::Bar(Bar {
        provider: NAME.into(),
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
        timeframe,
        adj_close: adjusted.then_some(b.c),
    }))
}

/// One item of a stream frame: a record, a signal, or nothing cashtag uses (statuses,
/// LULDs, corrections).
fn item(item: &serde_json::Value, received_at: DateTime<Utc>) -> Result<Option<Result<Record, Signal>>, String> {
    let kind = item.get("T").and_then(|t| t.as_str()).ok_or("message without \"T\"")?;
    let text = |k: &str| item.get(k).and_then(|m| m.as_str()).unwrap_or_default().to_string();
    Ok(Some(match kind {
        "t" => {
            let m = TradeMsg::deserialize(item).map_err(|e| format!("trade: {e}"))?;
            let seq = m.i.unwrap_or_else(|| content_seq(&item.to_string()));
            Ok(stream_trade(m, seq, received_at)?)
        }
        "q" => {
            let m = QuoteMsg::deserialize(item).map_err(|e| format!("quote: {e}"))?;
            Ok(Record::Quote(Quote {
                provider: NAME.into(),
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
            let m = BarMsg::deserialize(item).map_err(|e| format!("bar: {e}"))?;
            let sym = m.symbol.clone().ok_or("bar without \"S\"")?;
            Ok(bar(&sym, m, received_at)?)
        }
        "success" => Err(Signal::Status(text("msg"))),
        "subscription" => Err(Signal::Subscribed(item.clone())),
        "error" => Err(Signal::Error { code: item.get("code").and_then(|c| c.as_i64()), message: text("msg") }),
        _ => return Ok(None),
    }))
}

/// Parses one stream frame. A bad item is reported in `errors` and skipped; the others
/// still count.
pub fn parse_frame(text: &str, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    if let Some(trades) = trades_only(text, received_at) {
        return Ok(Parsed::records(trades));
    }
    parse_items(text, received_at)
}

/// Any frame, item by item through a JSON tree.
fn parse_items(text: &str, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    let items: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| ParseError(format!("not a JSON array: {e}")))?;
    let mut out = Parsed::default();
    for i in &items {
        match item(i, received_at) {
            Ok(Some(Ok(r))) => out.records.push(r),
            Ok(Some(Err(s))) => out.signals.push(s),
            Ok(None) => {}
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

fn stream_trade(m: TradeMsg<'_>, seq: u64, received_at: DateTime<Utc>) -> Result<Record, String> {
    Ok(Record::Trade(Trade {
        provider: NAME.into(),
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

/// The common frame — trades only, each with its id — read straight into trades, without
/// a JSON tree. `None` for anything else (another message kind, a trade without an id, an
/// item that does not read): [`parse_frame`] then takes the general path, which reports
/// errors.
fn trades_only(text: &str, received_at: DateTime<Utc>) -> Option<Vec<Record>> {
    let items: Vec<TradeMsg> = serde_json::from_str(text).ok()?;
    items
        .into_iter()
        .map(|m| {
            let id = m.i.filter(|_| m.kind == Some(MsgKind::Trade))?;
            stream_trade(m, id, received_at).ok()
        })
        .collect()
}

#[derive(Deserialize)]
struct HistoryPage {
    #[serde(default)]
    bars: Option<std::collections::BTreeMap<String, Vec<serde_json::Value>>>,
    #[serde(default)]
    trades: Option<std::collections::BTreeMap<String, Vec<serde_json::Value>>>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct HistoryTrade {
    i: Option<u64>,
    x: Option<String>,
    p: f64,
    s: f64,
    #[serde(default)]
    c: Vec<String>,
    #[serde(deserialize_with = "cashtag_core::time::deserialize_lenient")]
    t: DateTime<Utc>,
}

/// What a REST history page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    /// Bars of a timeframe; `adjusted` when asked with `adjustment` other than `raw`
    /// (the close is then also the adjusted close).
    Bars {
        timeframe: Timeframe,
        adjusted: bool,
    },
    Trades,
}

/// Parses a `/v2/stocks/bars` page of one-minute bars: the bars, and the next page token
/// as a [`Signal::NextPage`].
pub fn parse_bars_page(text: &str, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    parse_history_page(text, received_at, HistoryKind::Bars { timeframe: Timeframe::Minute, adjusted: false })
}

/// Parses a page of `/v2/stocks/bars` or `/v2/stocks/trades`. An item that does not parse
/// is reported in `errors`; the rest of the page still counts.
pub fn parse_history_page(text: &str, received_at: DateTime<Utc>, kind: HistoryKind) -> Result<Parsed, ParseError> {
    let page: HistoryPage = serde_json::from_str(text).map_err(|e| ParseError(format!("history page: {e}")))?;
    let mut out = Parsed::default();
    let items = match kind {
        HistoryKind::Bars { .. } => page.bars,
        HistoryKind::Trades => page.trades,
    };
    for (sym, list) in items.unwrap_or_default() {
        for v in list {
            let r = match kind {
                HistoryKind::Bars { timeframe, adjusted } => serde_json::from_value::<BarMsg>(v.clone())
                    .map_err(|e| format!("bar of {sym}: {e}"))
                    .and_then(|b| history_bar(&sym, b, received_at, timeframe, adjusted)),
                HistoryKind::Trades => serde_json::from_value::<HistoryTrade>(v.clone())
                    .map_err(|e| format!("trade of {sym}: {e}"))
                    .and_then(|m| {
                        if !(m.p.is_finite() && m.p > 0.0 && m.s.is_finite()) {
                            return Err(format!("trade of {sym} at {}: bad price or size", m.t));
                        }
                        Ok(Record::Trade(Trade {
                            provider: NAME.into(),
                            ticker: ticker(&sym)?,
                            ts: m.t,
                            received_at,
                            price: m.p,
                            size: m.s,
                            exchange: m.x,
                            trade_id: m.i.map(|i| i.to_string()),
                            conditions: m.c,
                            seq: m.i.unwrap_or_else(|| content_seq(&v.to_string())),
                        }))
                    }),
            };
            match r {
                Ok(r) => out.records.push(r),
                Err(e) => out.errors.push(e),
            }
        }
    }
    if let Some(t) = page.next_page_token.filter(|t| !t.is_empty()) {
        out.signals.push(Signal::NextPage(t));
    }
    Ok(out)
}

/// Alpaca's parser, by recording channel.
pub fn parse(
    channel: &str,
    payload: &str,
    at: DateTime<Utc>,
    _watched: &std::collections::HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    match channel {
        WS => parse_frame(payload, at),
        BARS => parse_bars_page(payload, at),
        TRADES => parse_history_page(payload, at, HistoryKind::Trades),
        other => Err(ParseError(format!("alpaca has no channel {other:?}"))),
    }
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
            {"T":"success","msg":"authenticated"},
            {"T":"t","S":"AAPL","p":"oops"},
            {"T":"t","S":"aapl!","i":1,"p":1,"s":1,"t":"2026-11-24T14:59:59Z"}]"#;
        let parsed = parse_frame(text, at).unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(parsed.signals, vec![Signal::Status("authenticated".into())]);
        assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
        let Record::Trade(t) = &parsed.records[0] else { panic!() };
        assert_eq!((t.ticker.as_str(), t.price, t.seq), ("AAPL", 231.5, 96921));
        assert_eq!(t.ts.timestamp_subsec_nanos(), 123_456_789);
        let Record::Quote(q) = &parsed.records[1] else { panic!() };
        assert_eq!(q.ask_size, Some(3.0));
        let Record::Bar(b) = &parsed.records[2] else { panic!() };
        assert_eq!((b.trade_count, b.origin.as_str()), (Some(55), "provider"));
        assert!(parse_frame("{not json", at).is_err());
    }

    #[test]
    fn trade_frames_read_directly_as_through_the_tree() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let text = r#"[{"T":"t","S":"AAPL","i":96921,"x":"V","p":231.5,"s":100,"c":["@","I"],"t":"2026-11-24T14:59:59.123456789Z","z":"C"},
            {"T":"t","S":"BRK.B","i":7,"p":1.25,"s":3,"t":"2026-11-24T14:59:59Z"}]"#;
        let fast = trades_only(text, at).expect("a trades-only frame takes the direct path");
        assert_eq!(fast.len(), 2);
        assert_eq!(fast, parse_items(text, at).unwrap().records);
        // A trade without an id (its seq is a content hash), or any other kind: the tree.
        assert!(trades_only(r#"[{"T":"t","S":"AAPL","p":1,"s":1,"t":"2026-11-24T14:59:59Z"}]"#, at).is_none());
        assert!(trades_only(r#"[{"T":"success","msg":"authenticated"}]"#, at).is_none());
    }

    #[test]
    fn parses_bar_pages() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let page = parse_bars_page(r#"{"bars":{"AAPL":[{"t":"2026-11-24T14:30:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"n":3,"vw":1.2}]},"next_page_token":"abc"}"#, at).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.signals, vec![Signal::NextPage("abc".into())]);
        let last = parse_bars_page(r#"{"bars":{},"next_page_token":null}"#, at).unwrap();
        assert!(last.signals.is_empty());
        let daily = HistoryKind::Bars { timeframe: Timeframe::Day, adjusted: true };
        let page = parse_history_page(
            r#"{"bars":{"AAPL":[{"t":"2026-11-24T05:00:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":10},{"t":"2026-11-25T05:00:00Z","o":"x"}]},"next_page_token":null,"unknown":1}"#,
            at,
            daily,
        )
        .unwrap();
        assert_eq!(page.records.len(), 1, "the good bar stays");
        assert_eq!(page.errors.len(), 1, "the bad one is reported");
        let Record::Bar(b) = &page.records[0] else { panic!() };
        assert_eq!((b.timeframe, b.adj_close), (Timeframe::Day, Some(1.5)));
        let trades = parse_history_page(
            r#"{"trades":{"AAPL":[{"t":"2026-11-24T14:30:00.5Z","x":"V","p":231.5,"s":100,"c":["@"],"i":7,"z":"C"}]},"next_page_token":"n"}"#,
            at,
            HistoryKind::Trades,
        )
        .unwrap();
        let Record::Trade(t) = &trades.records[0] else { panic!() };
        assert_eq!((t.ticker.as_str(), t.seq, t.price), ("AAPL", 7, 231.5));
        assert_eq!(trades.signals, vec![Signal::NextPage("n".into())]);
    }
}
