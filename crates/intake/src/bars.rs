//! One-minute bars built from trades: a minute's bar is emitted once the clock is a few
//! seconds past its end. Trades arriving later for a closed minute are stored but do not
//! reopen the bar (the analysis roll-ups recompute from raw trades anyway).

use std::collections::BTreeMap;

use cashtag_core::{Bar, Record, Ticker, Trade};
use chrono::{DateTime, TimeDelta, Timelike, Utc};

#[derive(Debug, Clone)]
struct Acc {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    notional: f64,
    count: u64,
    first_ts: DateTime<Utc>,
    last_ts: DateTime<Utc>,
}

/// Every trade passes through [`BarBuilder::add`], so its state is kept per provider: a
/// trade is looked up by the provider's name and its ticker, without copying either.
#[derive(Default)]
pub struct BarBuilder {
    providers: BTreeMap<String, ProviderBars>,
}

#[derive(Default)]
struct ProviderBars {
    open: BTreeMap<(DateTime<Utc>, Ticker), Acc>,
    /// Minutes already emitted, per ticker: later trades for them are ignored.
    emitted_up_to: BTreeMap<Ticker, DateTime<Utc>>,
}

/// How long after a minute ends its bar waits for stragglers.
pub const GRACE: TimeDelta = TimeDelta::seconds(2);

pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0).and_then(|t| t.with_nanosecond(0)).expect("valid")
}

impl BarBuilder {
    pub fn add(&mut self, t: &Trade) {
        let minute = minute_of(t.ts);
        if !self.providers.contains_key(t.provider.as_str()) {
            self.providers.insert(t.provider.clone(), ProviderBars::default());
        }
        let bars = self.providers.get_mut(t.provider.as_str()).expect("inserted");
        if bars.emitted_up_to.get(&t.ticker).is_some_and(|m| minute <= *m) {
            return;
        }
        let acc = bars.open.entry((minute, t.ticker.clone())).or_insert(Acc {
            open: t.price,
            high: t.price,
            low: t.price,
            close: t.price,
            volume: 0.0,
            notional: 0.0,
            count: 0,
            first_ts: t.ts,
            last_ts: t.ts,
        });
        if t.ts < acc.first_ts {
            acc.first_ts = t.ts;
            acc.open = t.price;
        }
        if t.ts >= acc.last_ts {
            acc.last_ts = t.ts;
            acc.close = t.price;
        }
        acc.high = acc.high.max(t.price);
        acc.low = acc.low.min(t.price);
        acc.volume += t.size;
        acc.notional += t.size * t.price;
        acc.count += 1;
    }

    /// Bars of minutes that ended at least [`GRACE`] before `now` (all of them with `all`).
    /// In the order of (minute, provider, ticker).
    pub fn take_due(&mut self, now: DateTime<Utc>, all: bool) -> Vec<Record> {
        let mut due: Vec<(DateTime<Utc>, &String, Ticker, Acc)> = Vec::new();
        for (provider, bars) in self.providers.iter_mut() {
            let keys: Vec<(DateTime<Utc>, Ticker)> =
                bars.open.keys().filter(|(m, _)| all || *m + TimeDelta::minutes(1) + GRACE <= now).cloned().collect();
            for (minute, ticker) in keys {
                let acc = bars.open.remove(&(minute, ticker.clone())).expect("present");
                let mark = bars.emitted_up_to.entry(ticker.clone()).or_insert(minute);
                *mark = (*mark).max(minute);
                due.push((minute, provider, ticker, acc));
            }
        }
        due.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        due.into_iter()
            .map(|(minute, provider, ticker, acc)| {
                Record::Bar(Bar {
                    provider: provider.clone(),
                    ticker,
                    start: minute,
                    open: acc.open,
                    high: acc.high,
                    low: acc.low,
                    close: acc.close,
                    volume: acc.volume,
                    trade_count: Some(acc.count),
                    vwap: (acc.volume > 0.0).then(|| acc.notional / acc.volume),
                    origin: "trades".into(),
                    received_at: Some(now),
                    timeframe: Default::default(),
                    adj_close: None,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(sec: i64, price: f64, size: f64) -> Trade {
        let ts = DateTime::from_timestamp(1_795_532_400 + sec, 0).unwrap();
        Trade {
            provider: "p".into(),
            ticker: Ticker::parse("AAPL").unwrap(),
            ts,
            received_at: ts,
            price,
            size,
            exchange: None,
            trade_id: None,
            conditions: vec![],
            seq: sec as u64,
        }
    }

    #[test]
    fn builds_ohlcv_and_closes_after_the_grace() {
        let mut b = BarBuilder::default();
        for (s, p, v) in [(5, 10.0, 1.0), (1, 9.0, 1.0), (30, 12.0, 2.0), (59, 11.0, 1.0), (61, 20.0, 1.0)] {
            b.add(&trade(s, p, v));
        }
        let m0 = DateTime::from_timestamp(1_795_532_400, 0).unwrap();
        assert!(b.take_due(m0 + TimeDelta::seconds(61), false).is_empty());
        let bars = b.take_due(m0 + TimeDelta::seconds(62), false);
        assert_eq!(bars.len(), 1);
        let Record::Bar(bar) = &bars[0] else { panic!() };
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count),
            (9.0, 12.0, 9.0, 11.0, 5.0, Some(4))
        );
        assert!((bar.vwap.unwrap() - 54.0 / 5.0).abs() < 1e-12);
        // A straggler for the closed minute does not reopen it.
        b.add(&trade(10, 100.0, 1.0));
        let rest = b.take_due(m0 + TimeDelta::seconds(600), true);
        assert_eq!(rest.len(), 1);
    }
}
