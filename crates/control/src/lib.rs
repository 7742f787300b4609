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

/// The hours policy from the manager's settings.
pub fn policy_from_settings(manager: &cashtag_core::config::ManagerSettings) -> HoursPolicy {
    HoursPolicy {
        lead: chrono::TimeDelta::minutes(manager.lead_minutes as i64),
        lag: chrono::TimeDelta::minutes(manager.lag_minutes as i64),
        extended: manager.extended_hours,
    }
}
