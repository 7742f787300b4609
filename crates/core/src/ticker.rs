//! Strict ticker symbols.
//!
//! A ticker is what an exchange lists: 1–5 upper-case ASCII letters, optionally followed by
//! a dot and a one- or two-letter share class (`BRK.B`). Anything else — lower case, digits,
//! money amounts, empty strings — is rejected with an error that says why, so a typo in a
//! watchlist or a malformed provider payload is caught at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated ticker symbol such as `AAPL` or `BRK.B`: at most eight ASCII bytes, held
/// inline, so a ticker costs no allocation (every trade, quote and bar carries one).
#[derive(Clone, PartialEq, Eq)]
pub struct Ticker {
    bytes: [u8; Ticker::MAX_LEN],
    len: u8,
}

/// Why a string is not a ticker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ticker {input:?}: {reason}")]
pub struct TickerError {
    pub input: String,
    pub reason: &'static str,
}

impl Ticker {
    /// The longest ticker: five letters, a dot and a two-letter class.
    const MAX_LEN: usize = 8;

    /// Parses a ticker; see the module documentation for the rules.
    pub fn parse(input: &str) -> Result<Self, TickerError> {
        let err = |reason| TickerError { input: input.to_string(), reason };
        if input.is_empty() {
            return Err(err("empty"));
        }
        let (root, class) = match input.split_once('.') {
            Some((root, class)) => (root, Some(class)),
            None => (input, None),
        };
        if root.is_empty() || root.len() > 5 {
            return Err(err("the symbol must have 1 to 5 letters"));
        }
        if !root.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(err("the symbol must be upper-case letters A-Z only"));
        }
        if let Some(class) = class
            && (class.is_empty() || class.len() > 2 || !class.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(err("a share class after '.' must be 1 or 2 upper-case letters"));
        }
        let mut bytes = [0u8; Ticker::MAX_LEN];
        bytes[..input.len()].copy_from_slice(input.as_bytes());
        Ok(Ticker { bytes, len: input.len() as u8 })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("a ticker is ASCII")
    }
}

// Ordered and hashed as its text, like the `String` it used to be.
impl Ord for Ticker {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Ticker {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Ticker {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl FromStr for Ticker {
    type Err = TickerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ticker::parse(s)
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticker({})", self.as_str())
    }
}

impl AsRef<str> for Ticker {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Ticker {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Ticker {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TickerVisitor;
        impl serde::de::Visitor<'_> for TickerVisitor {
            type Value = Ticker;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a ticker symbol")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Ticker, E> {
                Ticker::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(TickerVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_listed_symbols() {
        for s in ["A", "F", "AAPL", "GOOGL", "BRK.B", "BF.B", "MOG.A", "ZZ.AB"] {
            assert_eq!(Ticker::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("aapl", "upper-case"),
            ("AAPLXX", "1 to 5"),
            ("$AAPL", "upper-case"),
            ("100", "upper-case"),
            ("BRK.", "share class"),
            ("BRK.b", "share class"),
            ("BRK.BBB", "share class"),
            (".B", "1 to 5"),
            ("A B", "upper-case"),
            ("ÄPL", "upper-case"),
        ];
        for (input, why) in cases {
            let err = Ticker::parse(input).unwrap_err();
            assert!(err.to_string().contains(why), "{input:?}: {err}");
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
    }

    #[test]
    fn orders_and_hashes_as_text() {
        use std::hash::{BuildHasher, RandomState};
        let mut tickers: Vec<Ticker> = ["BRK.B", "A", "AAPL", "BRK", "AA", "ZZ.AB"].map(|t| t.parse().unwrap()).into();
        tickers.sort();
        let texts: Vec<&str> = tickers.iter().map(Ticker::as_str).collect();
        assert_eq!(texts, ["A", "AA", "AAPL", "BRK", "BRK.B", "ZZ.AB"]);
        let h = RandomState::new();
        assert_eq!(h.hash_one(Ticker::parse("MSFT").unwrap()), h.hash_one("MSFT"));
    }

    #[test]
    fn serde_validates() {
        let t: Ticker = serde_json::from_str("\"MSFT\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"MSFT\"");
        assert!(serde_json::from_str::<Ticker>("\"msft\"").is_err());
    }
}
