//! The watchlist: which companies the suite follows.
//!
//! The manager owns it (from a config file) and publishes it on the bus; the fetchers
//! follow it live and fall back to their configured copy when the bus has none.

use serde::{Deserialize, Serialize};

use crate::ticker::Ticker;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEntry {
    pub ticker: Ticker,
    /// Company name, for display and for matching posts that name the company.
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Watchlist {
    pub entries: Vec<WatchEntry>,
}

impl Watchlist {
    pub fn tickers(&self) -> Vec<Ticker> {
        self.entries.iter().map(|e| e.ticker.clone()).collect()
    }

    pub fn contains(&self, t: &Ticker) -> bool {
        self.entries.iter().any(|e| &e.ticker == t)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds a watchlist from bare tickers.
    pub fn from_tickers(tickers: impl IntoIterator<Item = Ticker>) -> Self {
        Watchlist { entries: tickers.into_iter().map(|ticker| WatchEntry { ticker, name: String::new() }).collect() }
    }
}

/// Why a watchlist file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
    #[error("watchlist {path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("watchlist {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchlistFile {
    company: Vec<CompanyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompanyEntry {
    ticker: String,
    #[serde(default)]
    name: String,
}

const BUILTIN: &str = include_str!("../data/watchlist.toml");

impl Watchlist {
    /// The built-in default: about thirty large US companies and SPY.
    pub fn builtin() -> Self {
        Self::parse_toml(BUILTIN, "built-in watchlist").expect("built-in watchlist is valid")
    }

    /// Parses the TOML form: `[[company]] ticker = "AAPL" name = "Apple"`.
    /// Rejects invalid and duplicate tickers, naming them.
    pub fn parse_toml(text: &str, origin: &str) -> Result<Self, WatchlistError> {
        let invalid = |message: String| WatchlistError::Invalid { path: origin.to_string(), message };
        let file: WatchlistFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut entries: Vec<WatchEntry> = Vec::new();
        for (i, c) in file.company.into_iter().enumerate() {
            let ticker = Ticker::parse(&c.ticker).map_err(|e| invalid(format!("company #{}: {e}", i + 1)))?;
            if entries.iter().any(|e| e.ticker == ticker) {
                return Err(invalid(format!("company #{}: ticker {ticker} is listed twice", i + 1)));
            }
            entries.push(WatchEntry { ticker, name: c.name });
        }
        if entries.is_empty() {
            return Err(invalid("no companies".into()));
        }
        Ok(Watchlist { entries })
    }

    /// Reads a watchlist file.
    pub fn load(path: &std::path::Path) -> Result<Self, WatchlistError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| WatchlistError::Read { path: path.display().to_string(), source })?;
        Self::parse_toml(&text, &path.display().to_string())
    }

    /// Tickers added and removed going from `self` to `next`.
    pub fn diff(&self, next: &Watchlist) -> (Vec<Ticker>, Vec<Ticker>) {
        let added = next.entries.iter().filter(|e| !self.contains(&e.ticker)).map(|e| e.ticker.clone()).collect();
        let removed = self.entries.iter().filter(|e| !next.contains(&e.ticker)).map(|e| e.ticker.clone()).collect();
        (added, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_about_thirty_companies_and_spy() {
        let w = Watchlist::builtin();
        assert!((28..=35).contains(&w.len()), "{}", w.len());
        assert!(w.contains(&Ticker::parse("SPY").unwrap()));
        assert!(w.contains(&Ticker::parse("BRK.B").unwrap()));
    }

    #[test]
    fn bad_files_name_the_entry() {
        let e = Watchlist::parse_toml("[[company]]\nticker = \"AAPL\"\n[[company]]\nticker = \"aapl\"\n", "w.toml")
            .unwrap_err();
        assert!(e.to_string().contains("company #2"), "{e}");
        let e = Watchlist::parse_toml("[[company]]\nticker = \"AAPL\"\n[[company]]\nticker = \"AAPL\"\n", "w.toml")
            .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn diff_lists_added_and_removed() {
        let a = Watchlist::parse_toml("[[company]]\nticker = \"AAPL\"\n[[company]]\nticker = \"MSFT\"\n", "a").unwrap();
        let b = Watchlist::parse_toml("[[company]]\nticker = \"MSFT\"\n[[company]]\nticker = \"TSLA\"\n", "b").unwrap();
        let (added, removed) = a.diff(&b);
        assert_eq!(added, vec![Ticker::parse("TSLA").unwrap()]);
        assert_eq!(removed, vec![Ticker::parse("AAPL").unwrap()]);
    }
}
