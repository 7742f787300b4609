//! MongoDB collection names: the data contract between writers and readers.

/// Posts, `_id` = `source:id`.
pub const POSTS: &str = "posts";
/// Trades, `_id` = `provider:ticker:ts:seq`.
pub const TRADES: &str = "trades";
/// Quotes, `_id` = `provider:ticker:ts:seq`.
pub const QUOTES: &str = "quotes";
/// One-minute bars from providers or built from trades.
pub const BARS: &str = "bars";
/// Daily bars (history: provider daily bars, imported OHLCV files), `_id` =
/// `provider:ticker:start:origin:1d`.
pub const BARS_1D: &str = "bars_1d";
/// Per-ticker session-day prices from daily bars (cashtag-analysis aggregate), `_id` =
/// `TICKER:YYYY-MM-DD`.
pub const PRICE_1D: &str = "price_1d";
/// Where each history backfill stands (cashtag-stocks|twitter backfill), `_id` = the task.
pub const BACKFILL_CHECKPOINTS: &str = "backfill_checkpoints";
/// Events kept by cashtag-log.
pub const EVENTS: &str = "events";
/// Per-minute count samples kept by cashtag-log.
pub const COUNTS: &str = "counts";
/// Events and count samples the database refused, with why (cashtag-log).
pub const DEAD_LETTERS: &str = "dead_letters";
/// Per-ticker one-minute sentiment roll-ups (cashtag-analysis aggregate).
pub const SENTIMENT_1M: &str = "sentiment_1m";
/// Per-ticker one-minute price roll-ups (cashtag-analysis aggregate).
pub const PRICE_1M: &str = "price_1m";
/// Model predictions and their outcomes (`cashtag-analysis predict`), `_id` =
/// `model:version:ticker:made_at`.
pub const PREDICTIONS: &str = "predictions";

/// Every collection the suite writes.
pub const ALL: &[&str] = &[
    POSTS,
    TRADES,
    QUOTES,
    BARS,
    BARS_1D,
    PRICE_1D,
    BACKFILL_CHECKPOINTS,
    EVENTS,
    COUNTS,
    DEAD_LETTERS,
    SENTIMENT_1M,
    PRICE_1M,
    PREDICTIONS,
];

/// The collection a record is stored in.
pub fn for_record(r: &crate::Record) -> &'static str {
    match r {
        crate::Record::Post(_) => POSTS,
        crate::Record::Trade(_) => TRADES,
        crate::Record::Quote(_) => QUOTES,
        crate::Record::Bar(b) if b.timeframe.is_minute() => BARS,
        crate::Record::Bar(_) => BARS_1D,
    }
}
