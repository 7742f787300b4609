//! Market-data sources: trades, quotes and bars for the watchlist.

pub mod alpaca;
pub mod finnhub;
pub mod iex;
pub mod sim;
