//! cashtag-control: the manager's logic.
//!
//! - [`hours`]: given the calendar, the configured lead/lag and extended hours, whether
//!   the data sources should run at an instant, why, and when that next changes (pure);
//! - [`Controller`]: the loop that turns that into start/stop on the bus — restart-safe
//!   (it reads the published state first and never sends a spurious stop) and robust to a
//!   sleeping host or a jumping clock (it re-evaluates every few seconds);
//! - [`WatchlistPublisher`]: publishes the watchlist file and re-publishes it on change;
//! - [`HeartbeatMonitor`]: reports services that go missing and return;
//! - [`Status`]: the snapshot behind the manager's `GET /status` ([`status::routes`]);
//! - [`flags::init_flag_defaults`]: the configured flag defaults, where Redis lacks them.

mod controller;
pub mod flags;
pub mod hours;
mod monitor;
pub mod status;
mod watchlist;

pub use controller::{Controller, Status};
pub use hours::{Decision, HoursPolicy};
pub use monitor::HeartbeatMonitor;
pub use watchlist::WatchlistPublisher;

/// The NYSE calendar with the deployment's extra special days, if configured.
pub fn calendar_from_settings(
    settings: &cashtag_core::Settings,
) -> Result<cashtag_calendar::Calendar, cashtag_core::ConfigError> {
    let mut cal = cashtag_calendar::Calendar::nyse();
    let path = &settings.manager.calendar_overrides;
    if !path.is_empty() {
        let text = std::fs::read_to_string(path).map_err(|e| {
            cashtag_core::ConfigError::new("manager.calendar_overrides", format!("cannot read {path}: {e}"))
        })?;
        cal.extend_from_toml(&text)
            .map_err(|e| cashtag_core::ConfigError::new("manager.calendar_overrides", e.to_string()))?;
    }
    Ok(cal)
}

/// The hours policy from the settings.
pub fn policy_from_settings(settings: &cashtag_core::Settings) -> HoursPolicy {
    HoursPolicy {
        lead: chrono::TimeDelta::minutes(settings.manager.lead_minutes as i64),
        lag: chrono::TimeDelta::minutes(settings.manager.lag_minutes as i64),
        extended: settings.manager.extended_hours,
    }
}
