//! What the intake refuses or trims before a record is accepted: timestamps from the
//! future (beyond a clock skew) or absurdly old, prices that are not positive finite
//! numbers, identifiers too long to be real; and provider text longer than any real post
//! is cut (with a marker), so one bad payload cannot bloat the stores. Every provider
//! string has a cap, and a record is at most [`MAX_RECORD_BYTES`] serialized: whatever a
//! provider sends (a WebSocket frame may be 64 MiB), an accepted record fits a journal
//! frame and a Kinesis record, so no record can stall the intake.

use cashtag_core::Record;
use chrono::{DateTime, TimeDelta, Utc};

/// The limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A record may be this far ahead of the clock (providers' clocks drift).
    pub max_future: TimeDelta,
    /// ... and at most this old.
    pub max_age: TimeDelta,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_future: TimeDelta::minutes(5), max_age: TimeDelta::days(30) }
    }
}

/// Longest post text kept (X's longest posts are 25,000 characters).
pub const MAX_TEXT_CHARS: usize = 25_000;
/// Longest author name kept.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest identifier accepted (post ids, author ids, trade ids).
pub const MAX_ID_BYTES: usize = 512;
/// Longest provider code kept (an exchange, a trade condition); a longer one is dropped.
pub const MAX_CODE_BYTES: usize = 16;
/// Most tickers one post may name (the watched ones it mentions, each once).
pub const MAX_TICKERS: usize = 100;
/// Largest record accepted, serialized: under Kinesis's 1 MiB per record and the smallest
/// journal segment (1 MiB).
pub const MAX_RECORD_BYTES: usize = 1_000_000;
const CUT: &str = "…[cut]";

fn cut(s: &mut String, max_chars: usize) -> bool {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => {
            s.truncate(i);
            s.push_str(CUT);
            true
        }
        None => false,
    }
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// Why a record is refused.
pub type Refusal = &'static str;

/// Checks (and trims) a record received at `now`.
pub fn check(record: &mut Record, now: DateTime<Utc>, limits: &Limits) -> Result<(), Refusal> {
    let t = record.event_time();
    if t > now + limits.max_future {
        return Err("timestamp in the future");
    }
    if t < now - limits.max_age {
        return Err("timestamp too old");
    }
    match record {
        Record::Post(p) => {
            if p.id.is_empty() || p.id.len() > MAX_ID_BYTES || p.author.id.len() > MAX_ID_BYTES {
                return Err("post or author id missing or too long");
            }
            cut(&mut p.text, MAX_TEXT_CHARS);
            cut(&mut p.author.name, MAX_NAME_CHARS);
            if p.lang.as_ref().is_some_and(|l| l.len() > 16) {
                p.lang = None;
            }
            let mut seen = std::collections::HashSet::new();
            p.tickers.retain(|t| seen.insert(t.clone()));
            if p.tickers.len() > MAX_TICKERS {
                return Err("post names too many tickers");
            }
        }
        Record::Trade(tr) => {
            if !positive(tr.price) || !tr.size.is_finite() || tr.size < 0.0 {
                return Err("trade price or size is not a positive number");
            }
            if tr.trade_id.as_ref().is_some_and(|i| i.len() > MAX_ID_BYTES) {
                return Err("trade id too long");
            }
            tr.conditions.truncate(32);
            tr.conditions.retain(|c| c.len() <= MAX_CODE_BYTES);
            if tr.exchange.as_ref().is_some_and(|x| x.len() > MAX_CODE_BYTES) {
                tr.exchange = None;
            }
        }
        Record::Quote(q) => {
            let prices = [q.bid_price, q.ask_price, q.last_price];
            if prices.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
                return Err("quote price is not a number");
            }
        }
        Record::Bar(b) => {
            if ![b.open, b.high, b.low, b.close].into_iter().all(positive) || !b.volume.is_finite() {
                return Err("bar prices are not positive numbers");
            }
        }
    }
    // Serialized only when a bound on its size could be over the limit (a long post).
    if size_bound(record) > MAX_RECORD_BYTES && serde_json::to_vec(record).map_or(true, |b| b.len() > MAX_RECORD_BYTES)
    {
        return Err("record larger than 1 MB");
    }
    Ok(())
}

/// An upper bound of a record's JSON size: every character of its text escaped (six
/// bytes each at worst), plus the fixed fields.
fn size_bound(record: &Record) -> usize {
    const FIXED: usize = 2_048;
    match record {
        Record::Post(p) => {
            let text = p.text.len() + p.author.name.len() + p.author.id.len() + p.id.len() + p.source.len();
            FIXED + 6 * text + 32 * p.tickers.len()
        }
        Record::Trade(t) => {
            FIXED + 6 * (t.provider.len() + t.trade_id.as_ref().map_or(0, String::len)) + 64 * t.conditions.len()
        }
        Record::Quote(q) => FIXED + 6 * q.provider.len(),
        Record::Bar(b) => FIXED + 6 * (b.provider.len() + b.origin.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashtag_core::{Author, Post, Ticker, Trade};

    fn post(text: String, at: DateTime<Utc>) -> Record {
        Record::Post(Post {
            source: "x".into(),
            id: "1".into(),
            created_at: at,
            received_at: at,
            text,
            lang: Some("en".into()),
            author: Author { id: "a".into(), name: "n".repeat(1000), followers: None },
            engagement: None,
            tickers: vec![Ticker::parse("AAPL").unwrap()],
            is_repost: false,
            author_label: None,
            sentiment: None,
        })
    }

    #[test]
    fn refuses_bad_times_and_prices_and_trims_long_text() {
        let now: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let l = Limits::default();
        assert_eq!(check(&mut post("hi".into(), now + TimeDelta::hours(1)), now, &l), Err("timestamp in the future"));
        assert_eq!(check(&mut post("hi".into(), now - TimeDelta::days(365)), now, &l), Err("timestamp too old"));
        let mut long = post("é".repeat(30_000), now);
        assert_eq!(check(&mut long, now, &l), Ok(()));
        let Record::Post(p) = &long else { unreachable!() };
        assert_eq!(p.text.chars().count(), MAX_TEXT_CHARS + CUT.chars().count());
        assert!(p.text.ends_with(CUT) && p.author.name.ends_with(CUT));
        let mut nan = Record::Trade(Trade {
            provider: "sim".into(),
            ticker: Ticker::parse("AAPL").unwrap(),
            ts: now,
            received_at: now,
            price: f64::NAN,
            size: 1.0,
            exchange: None,
            trade_id: None,
            conditions: vec![],
            seq: 1,
        });
        assert!(check(&mut nan, now, &l).is_err());
    }

    #[test]
    fn provider_strings_are_capped_so_every_accepted_record_fits_a_frame() {
        let now: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let l = Limits::default();
        // A 20 MB exchange code (a hostile frame): the code is dropped, the trade kept.
        let mut trade = Record::Trade(Trade {
            provider: "alpaca".into(),
            ticker: Ticker::parse("AAPL").unwrap(),
            ts: now,
            received_at: now,
            price: 10.0,
            size: 1.0,
            exchange: Some("V".repeat(20 << 20)),
            trade_id: Some("1".into()),
            conditions: vec!["@".into(), "X".repeat(1 << 20)],
            seq: 1,
        });
        assert_eq!(check(&mut trade, now, &l), Ok(()));
        let Record::Trade(t) = &trade else { unreachable!() };
        assert_eq!((t.exchange.as_deref(), t.conditions.len()), (None, 1));
        assert!(serde_json::to_vec(&trade).unwrap().len() < MAX_RECORD_BYTES);
        // A post naming a ticker twice names it once; one naming hundreds is refused.
        let mut twice = post("$AAPL $AAPL".into(), now);
        if let Record::Post(p) = &mut twice {
            p.tickers.push(Ticker::parse("AAPL").unwrap());
        }
        assert_eq!(check(&mut twice, now, &l), Ok(()));
        let Record::Post(p) = &twice else { unreachable!() };
        assert_eq!(p.tickers.len(), 1);
        let mut many = post("all of them".into(), now);
        if let Record::Post(p) = &mut many {
            let name = |i: u8| format!("{}{}", (b'A' + i / 26) as char, (b'A' + i % 26) as char);
            p.tickers = (0..150u8).map(|i| Ticker::parse(&name(i)).unwrap()).collect();
        }
        assert_eq!(check(&mut many, now, &l), Err("post names too many tickers"));
        // The longest post there can be (every character escaped in JSON) still fits.
        let mut worst = post("\u{1}".repeat(MAX_TEXT_CHARS * 2), now);
        assert_eq!(check(&mut worst, now, &l), Ok(()));
        assert!(serde_json::to_vec(&worst).unwrap().len() < MAX_RECORD_BYTES);
    }
}
