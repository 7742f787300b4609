//! Strict ticker symbols.
//!
//! A ticker is what an exchange lists: 1–5 upper-case ASCII letters, optionally followed by
//! a dot and a one- or two-letter share class (`BRK.B`). Anything else — lower case, digits,
//! money amounts, empty strings — is rejected with an error that says why, so a typo in a
//! watchlist or a malformed provider payload is caught at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated ticker symbol such as `AAPL` or `BRK.B`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticker(String);

/// Why a string is not a ticker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ticker {input:?}: {reason}")]
pub struct TickerError {
    pub input: String,
    pub reason: &'static str,
}

impl Ticker {
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
        Ok(Ticker(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticker({})", self.0)
    }
}

impl AsRef<str> for Ticker {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Ticker {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Ticker {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ticker::parse(&s).map_err(serde::de::Error::custom)
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
    fn serde_validates() {
        let t: Ticker = serde_json::from_str("\"MSFT\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"MSFT\"");
        assert!(serde_json::from_str::<Ticker>("\"msft\"").is_err());
    }
}
