//! What every history command opens and closes: the bus (events, flags), the store, the
//! progress display; and the summary it prints at the end.

use cashtag_bus::Bus;
use cashtag_core::{Settings, Ticker, Watchlist};
use chrono::{DateTime, NaiveDate, Utc};

use crate::HistoryError;
use crate::import::Report;
use crate::store::Store;

pub struct Session {
    pub bus: Bus,
    pub store: Store,
    pub progress: cashtag_telemetry::progress::Progress,
}

impl Session {
    /// Opens the bus as `service` and the store the flags turn on (with `dry`, a store
    /// that writes nothing).
    pub async fn open(settings: &Settings, service: &str, quiet: bool, dry: bool) -> Result<Session, HistoryError> {
        let clock = settings.clock.clock().map_err(|e| HistoryError::Input(e.to_string()))?;
        let bus =
            Bus::from_settings(settings, service, clock).map_err(|e| HistoryError::Store(format!("Redis: {e}")))?;
        let store = if dry { Store::dry(settings).await? } else { Store::open(settings, &bus).await? };
        Ok(Session { bus, store, progress: cashtag_telemetry::progress::Progress::new(quiet) })
    }

    /// Prints the summary (a table, or JSON) and lets the events out.
    pub async fn finish(self, report: &Report, json: bool) {
        if json {
            println!("{}", serde_json::to_string_pretty(report).expect("serializes"));
        } else {
            print!("{}", report.table());
        }
        self.bus.events().flush(std::time::Duration::from_secs(3)).await;
    }

    /// An import's description for its events (`3 path(s) into mongo`), announced.
    pub fn start_import(&self, paths: usize) -> String {
        let what = format!("{paths} path(s) into {}", self.store.targets());
        self.bus.emit(cashtag_core::catalog::backfill_start("import", &what));
        what
    }

    /// Ends an import: its event, then the summary (or the error).
    pub async fn end_import(
        self,
        what: &str,
        result: Result<Report, HistoryError>,
        json: bool,
    ) -> Result<(), HistoryError> {
        match result {
            Ok(r) => {
                let t = &r.total;
                self.bus.emit(cashtag_core::catalog::backfill_done(
                    "import",
                    what,
                    t.read,
                    t.stored,
                    t.duplicates,
                    t.rejected,
                ));
                self.finish(&r, json).await;
                Ok(())
            }
            Err(e) => {
                self.bus.emit(cashtag_core::catalog::backfill_failed("import", what, &e));
                self.abandon().await;
                Err(e)
            }
        }
    }

    /// Lets the events out after a failure.
    pub async fn abandon(self) {
        self.bus.events().flush(std::time::Duration::from_secs(3)).await;
    }
}

/// `--tickers` (with or without `$`), else the watchlist.
pub fn tickers(given: &[String], watchlist: &Watchlist) -> Result<Vec<Ticker>, HistoryError> {
    if given.is_empty() {
        return Ok(watchlist.tickers());
    }
    given
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .trim_start_matches('$')
                .parse::<Ticker>()
                .map_err(|e| HistoryError::Input(format!("--tickers: {e}")))
        })
        .collect()
}

/// `--watchlist FILE|default`, else the configured one.
pub fn watchlist(
    given: Option<&str>,
    configured: &cashtag_core::config::WatchlistSettings,
) -> Result<Watchlist, HistoryError> {
    match given {
        Some("default") => Ok(Watchlist::builtin()),
        Some(f) => Watchlist::load(std::path::Path::new(f)).map_err(|e| HistoryError::Input(e.to_string())),
        None => configured.load().map_err(|e| HistoryError::Input(e.to_string())),
    }
}

/// `--from D --to D` (New York dates, `--to` inclusive) as an instant range.
pub fn range(from: NaiveDate, to: NaiveDate) -> Result<(DateTime<Utc>, DateTime<Utc>), HistoryError> {
    if to < from {
        return Err(HistoryError::Input(format!("--to {to} is before --from {from}")));
    }
    let next = to.succ_opt().ok_or_else(|| HistoryError::Input("--to out of range".into()))?;
    Ok((cashtag_calendar::local(from, chrono::NaiveTime::MIN), cashtag_calendar::local(next, chrono::NaiveTime::MIN)))
}
