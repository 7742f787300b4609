//! What the intake refuses or trims before a record is accepted: timestamps from the
//! future (beyond a clock skew) or absurdly old, prices that are not positive finite
//! numbers, identifiers too long to be real; and provider text longer than any real post
//! is cut (with a marker), so one bad payload cannot bloat the stores.

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
        }
        Record::Trade(tr) => {
            if !positive(tr.price) || !tr.size.is_finite() || tr.size < 0.0 {
                return Err("trade price or size is not a positive number");
            }
            if tr.trade_id.as_ref().is_some_and(|i| i.len() > MAX_ID_BYTES) {
                return Err("trade id too long");
            }
            tr.conditions.truncate(32);
            tr.conditions.retain(|c| c.len() <= 16);
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
    Ok(())
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
}
