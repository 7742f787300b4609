//! Social sources: posts that mention watched tickers, from X, StockTwits, Bluesky or the
//! simulator. Several run together (the supervisor restarts each on its own).

pub mod bluesky;
pub mod sim;
pub mod stocktwits;
pub mod x;
