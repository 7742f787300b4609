//! cashtag-core: the vocabulary every cashtag crate shares.
//!
//! Domain records (posts, trades, quotes, bars), operational records (events, count
//! samples), the suite-wide configuration schema and loader, and the
//! [`Clock`] that is the only source of "now" in the suite.

pub mod backoff;
pub mod bsondoc;
pub mod catalog;
pub mod clock;
pub mod collections;
pub mod config;
pub mod emit;
pub mod event;
pub mod exit;
pub mod records;
pub mod secret;
pub mod span;
pub mod ticker;
pub mod time;
pub mod watchlist;

pub use backoff::Backoff;
pub use clock::{Clock, SimSpec};
pub use config::{ConfigError, Settings};
pub use emit::{Emit, Emitter};
pub use event::{CountKind, CountSample, Event, EventDraft, EventKind};
pub use records::{
    Author, Bar, Engagement, FinanceScore, Post, PostSentiment, Quote, Record, SentimentLabel, Timeframe, Trade,
    VaderScores,
};
pub use secret::Secret;
pub use ticker::{Ticker, TickerError};
pub use watchlist::{WatchEntry, Watchlist};
