//! The simulated market: trades and quotes from [`cashtag_sim`], emitted when the clock
//! reaches their timestamps (so a fast simulated clock plays a day in minutes).

use std::sync::Arc;

use cashtag_core::{Record, Ticker, catalog};
use cashtag_sim::{Sim, minute_index};

use crate::{BoxFuture, Source, SourceCtx, SourceError};

pub const NAME: &str = "sim";

pub struct SimMarket {
    sim: Arc<Sim>,
}

impl SimMarket {
    pub fn new(sim: Arc<Sim>) -> Self {
        SimMarket { sim }
    }

    async fn stream(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        // After a restart, from where the journal says records were last accepted
        // (duplicates of that minute are harmless: records have natural keys).
        let started = ctx.resume_point(NAME).filter(|t| *t < ctx.now()).unwrap_or_else(|| ctx.now());
        let mut m = minute_index(started);
        ctx.emit_event(catalog::source_connected(NAME, "simulated market running"));
        loop {
            let tickers: Vec<Ticker> = ctx.watchlist.borrow().tickers();
            // All tickers' trades of this minute, in time order.
            let mut trades: Vec<(Ticker, cashtag_sim::SimTrade)> = Vec::new();
            for t in &tickers {
                for tr in self.sim.trades(t.as_str(), m) {
                    if tr.ts >= started {
                        trades.push((t.clone(), tr));
                    }
                }
            }
            trades.sort_by(|a, b| a.1.ts.cmp(&b.1.ts).then(a.0.cmp(&b.0)));
            for (ticker, tr) in trades {
                tokio::select! {
                    _ = ctx.clock().sleep_until(tr.ts) => {}
                    _ = ctx.cancel.cancelled() => return Ok(()),
                }
                let now = ctx.now();
                let trade = Record::Trade(tr.to_trade(&ticker, now));
                let quote = Record::Quote(tr.to_quote(&ticker, now));
                if !ctx.emit(trade).await || !ctx.emit(quote).await {
                    return Ok(());
                }
            }
            m += 1;
            tokio::select! {
                _ = ctx.clock().sleep_until(cashtag_sim::minute_start(m)) => {}
                _ = ctx.cancel.cancelled() => return Ok(()),
            }
        }
    }
}

impl Source for SimMarket {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.stream(ctx))
    }
}
