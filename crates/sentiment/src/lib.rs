//! cashtag-sentiment: how positive or negative a post about a stock is.
//!
//! Two scores, from one call ([`Scorer::score_post`]):
//! - **VADER**, exactly as the reference `vaderSentiment` 3.3.2 computes it ([`vader`]),
//!   so cashtag's numbers are comparable with everyone else's;
//! - a **finance score** in [-1, 1] with a bullish/bearish/neutral label ([`finance`]),
//!   which knows that "calls", "puts", "short", "bagholder" and 🚀 carry direction, and
//!   does not score cashtags and tickers as words.
//!
//! Pure: no I/O; the lexicons are bundled.

pub mod eval;
pub mod finance;
pub mod pytext;
pub mod vader;

use cashtag_core::{FinanceScore, PostSentiment, SentimentLabel, VaderScores};

pub use finance::Finance;
pub use vader::Vader;

/// The version of the scoring model stored with every score.
pub const MODEL_VERSION: &str = "vader-3.3.2+cashtag-finance-1";

/// Both scorers, built once (the lexicons take a few milliseconds to load).
pub struct Scorer {
    vader: Vader,
    finance: Finance,
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer::new()
    }
}

impl Scorer {
    pub fn new() -> Self {
        let vader = Vader::new();
        let finance = Finance::new(&vader);
        Scorer { vader, finance }
    }

    pub fn vader(&self, text: &str) -> VaderScores {
        self.vader.polarity_scores(text)
    }

    pub fn finance(&self, text: &str, tickers: &[&str]) -> FinanceScore {
        self.finance.score(text, tickers)
    }

    /// Scores a post: VADER on the text as written, the finance score with `tickers` (the
    /// post's symbols) not read as words, and the author's own label if the source gave one.
    pub fn score_post(&self, text: &str, tickers: &[&str], author_label: Option<SentimentLabel>) -> PostSentiment {
        PostSentiment {
            vader: self.vader(text),
            finance: self.finance(text, tickers),
            author_label,
            model_version: MODEL_VERSION.to_string(),
        }
    }
}
