//! cashtag-calendar: when the New York Stock Exchange is open.
//!
//! The original system switched on at 13:30 UTC and off at 20:00 UTC on weekdays — wrong
//! for half the year (daylight saving), on holidays and on early-close days. This crate
//! knows the real calendar: regular sessions 09:30–16:00 America/New_York, the exchange's
//! holiday rules with weekend observance, regular early closes at 13:00, and the days no
//! rule predicts (unscheduled closures, ad-hoc early closes), which live in data
//! (`data/nyse-special-days.toml`) that a deployment can extend without a release.
//!
//! It is pure: no clock, no I/O. It agrees with the XNYS calendar of the
//! `exchange_calendars` package on every day from 2000 to 2030 (tests/oracle.rs); the rules
//! are the ones in force since 2000, and earlier dates are not supported.

mod rules;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use serde::{Deserialize, Serialize};

pub use rules::holiday;

/// The exchange's time zone.
pub const TZ: chrono_tz::Tz = New_York;

/// An instant as New York wall time with its zone, `2026-11-27 09:25 EST`, for messages
/// and screens.
pub fn ny_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Regular open, New York time.
pub fn regular_open() -> NaiveTime {
    NaiveTime::from_hms_opt(9, 30, 0).unwrap()
}

/// Regular close, New York time.
pub fn regular_close() -> NaiveTime {
    NaiveTime::from_hms_opt(16, 0, 0).unwrap()
}

/// Early close, New York time.
pub fn early_close() -> NaiveTime {
    NaiveTime::from_hms_opt(13, 0, 0).unwrap()
}

/// One trading session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub date: NaiveDate,
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
    /// Why the session closes early (`day after Thanksgiving`), if it does.
    pub early_close: Option<String>,
}

impl Session {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.open <= t && t < self.close
    }

    /// The close in New York time, `HH:MM`.
    pub fn close_local(&self) -> String {
        self.close.with_timezone(&TZ).format("%H:%M").to_string()
    }
}

/// Why the exchange is closed on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum ClosedReason {
    Weekend,
    /// A rule-based holiday, e.g. `Good Friday`.
    Holiday(String),
    /// An unscheduled closure from the special-days data, e.g. `Hurricane Sandy`.
    Closure(String),
}

impl std::fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClosedReason::Weekend => f.write_str("weekend"),
            ClosedReason::Holiday(n) => write!(f, "holiday: {n}"),
            ClosedReason::Closure(n) => write!(f, "closure: {n}"),
        }
    }
}

/// What a calendar day is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Day {
    Open(Session),
    Closed { date: NaiveDate, reason: ClosedReason },
}

impl Day {
    pub fn session(&self) -> Option<&Session> {
        match self {
            Day::Open(s) => Some(s),
            Day::Closed { .. } => None,
        }
    }
}

/// Errors in special-days data.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("special days: not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("special days: {date}: {message}")]
    Invalid { date: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecialDaysFile {
    #[serde(default)]
    closure: Vec<ClosureEntry>,
    #[serde(default)]
    early_close: Vec<EarlyCloseEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosureEntry {
    date: NaiveDate,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EarlyCloseEntry {
    date: NaiveDate,
    close: String,
    reason: String,
}

const BUILTIN_SPECIAL_DAYS: &str = include_str!("../data/nyse-special-days.toml");

/// The NYSE calendar: rules plus special days.
#[derive(Debug, Clone)]
pub struct Calendar {
    closures: BTreeMap<NaiveDate, String>,
    early_closes: BTreeMap<NaiveDate, (NaiveTime, String)>,
}

/// How far ahead [`Calendar::next_open`] looks; no closure has lasted this long.
const MAX_SEARCH_DAYS: i64 = 30;

impl Calendar {
    /// The calendar with the built-in special days.
    pub fn nyse() -> Self {
        let mut c = Calendar { closures: BTreeMap::new(), early_closes: BTreeMap::new() };
        c.extend_from_toml(BUILTIN_SPECIAL_DAYS).expect("built-in special days are valid");
        c
    }

    /// Adds special days from TOML text of the same shape as the built-in data file.
    pub fn extend_from_toml(&mut self, text: &str) -> Result<(), CalendarError> {
        let file: SpecialDaysFile = toml::from_str(text)?;
        for c in file.closure {
            self.closures.insert(c.date, c.reason);
        }
        for e in file.early_close {
            let t = NaiveTime::parse_from_str(&e.close, "%H:%M").map_err(|_| CalendarError::Invalid {
                date: e.date.to_string(),
                message: format!("close {:?} is not HH:MM", e.close),
            })?;
            if t <= regular_open() || t >= regular_close() {
                return Err(CalendarError::Invalid {
                    date: e.date.to_string(),
                    message: format!("early close {} must be between 09:30 and 16:00", e.close),
                });
            }
            self.early_closes.insert(e.date, (t, e.reason));
        }
        Ok(())
    }

    /// What the exchange does on a date.
    pub fn day(&self, date: NaiveDate) -> Day {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return Day::Closed { date, reason: ClosedReason::Weekend };
        }
        if let Some(reason) = self.closures.get(&date) {
            return Day::Closed { date, reason: ClosedReason::Closure(reason.clone()) };
        }
        if let Some(name) = rules::holiday(date) {
            return Day::Closed { date, reason: ClosedReason::Holiday(name.to_string()) };
        }
        let (close, early) = match self.early_closes.get(&date) {
            Some((t, reason)) => (*t, Some(reason.clone())),
            None => match rules::early_close(date) {
                Some(reason) => (early_close(), Some(reason.to_string())),
                None => (regular_close(), None),
            },
        };
        Day::Open(Session { date, open: local(date, regular_open()), close: local(date, close), early_close: early })
    }

    /// The session on a date, if the exchange trades that day.
    pub fn session(&self, date: NaiveDate) -> Option<Session> {
        match self.day(date) {
            Day::Open(s) => Some(s),
            Day::Closed { .. } => None,
        }
    }

    /// The New York calendar date of an instant.
    pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&TZ).date_naive()
    }

    /// Whether the regular session is on at `t`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.session(Self::local_date(t)).is_some_and(|s| s.contains(t))
    }

    /// The session that is on at `t` or starts next after it.
    pub fn current_or_next_session(&self, t: DateTime<Utc>) -> Session {
        let start = Self::local_date(t);
        (0..=MAX_SEARCH_DAYS)
            .filter_map(|i| self.session(start + TimeDelta::days(i)))
            .find(|s| s.close > t)
            .expect("a session within 30 days")
    }

    /// The first open strictly after `t`.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let start = Self::local_date(t);
        (0..=MAX_SEARCH_DAYS)
            .filter_map(|i| self.session(start + TimeDelta::days(i)))
            .map(|s| s.open)
            .find(|o| *o > t)
            .expect("an open within 30 days")
    }

    /// The first close strictly after `t`.
    pub fn next_close(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.current_or_next_session(t).close
    }

    /// Every day from `from` to `to` inclusive.
    pub fn days(&self, from: NaiveDate, to: NaiveDate) -> Vec<Day> {
        from.iter_days().take_while(|d| *d <= to).map(|d| self.day(d)).collect()
    }

    /// The sessions from `from` to `to` inclusive.
    pub fn sessions(&self, from: NaiveDate, to: NaiveDate) -> Vec<Session> {
        self.days(from, to).into_iter().filter_map(|d| d.session().cloned()).collect()
    }
}

/// A New York wall-clock time on a date, as a UTC instant. Trading times are never in
/// the skipped or repeated hour of a DST change (that happens at 02:00).
pub fn local(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    TZ.from_local_datetime(&date.and_time(time))
        .earliest()
        .expect("trading hours exist on every date")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn black_friday_2026_closes_early_at_13_new_york() {
        let s = Calendar::nyse().session(d("2026-11-27")).unwrap();
        assert_eq!(s.open, utc("2026-11-27T14:30:00Z"));
        assert_eq!(s.close, utc("2026-11-27T18:00:00Z"));
        assert_eq!(s.close_local(), "13:00");
        assert_eq!(s.early_close.as_deref(), Some("day after Thanksgiving"));
    }

    #[test]
    fn daylight_saving_moves_the_utc_open() {
        let c = Calendar::nyse();
        // 2026: DST starts Sunday March 8, ends Sunday November 1.
        assert_eq!(c.session(d("2026-03-06")).unwrap().open, utc("2026-03-06T14:30:00Z"));
        assert_eq!(c.session(d("2026-03-09")).unwrap().open, utc("2026-03-09T13:30:00Z"));
        assert_eq!(c.session(d("2026-10-30")).unwrap().close, utc("2026-10-30T20:00:00Z"));
        assert_eq!(c.session(d("2026-11-02")).unwrap().close, utc("2026-11-02T21:00:00Z"));
    }

    #[test]
    fn closed_days_say_why() {
        let c = Calendar::nyse();
        let reason = |s| match c.day(d(s)) {
            Day::Closed { reason, .. } => reason.to_string(),
            Day::Open(_) => "open".into(),
        };
        assert_eq!(reason("2026-04-03"), "holiday: Good Friday");
        assert_eq!(reason("2026-07-03"), "holiday: Independence Day (observed)");
        assert_eq!(reason("2026-11-26"), "holiday: Thanksgiving Day");
        assert_eq!(reason("2026-11-28"), "weekend");
        assert_eq!(reason("2012-10-29"), "closure: Hurricane Sandy");
        assert_eq!(reason("2022-12-31"), "weekend");
        // New Year's Day on a Saturday is not observed on the Friday before.
        assert_eq!(reason("2021-12-31"), "open");
    }

    #[test]
    fn next_open_and_close_skip_holidays_and_weekends() {
        let c = Calendar::nyse();
        // Wednesday before Thanksgiving 2026, after the close.
        let t = utc("2026-11-25T22:00:00Z");
        assert_eq!(c.next_open(t), utc("2026-11-27T14:30:00Z"));
        assert_eq!(c.next_close(t), utc("2026-11-27T18:00:00Z"));
        // During a session: next close is today's, next open is tomorrow's.
        let t = utc("2026-11-27T15:00:00Z");
        assert!(c.is_open(t));
        assert_eq!(c.next_close(t), utc("2026-11-27T18:00:00Z"));
        assert_eq!(c.next_open(t), utc("2026-11-30T14:30:00Z"));
        assert!(!c.is_open(utc("2026-11-27T18:00:00Z")), "the close instant is closed");
        assert!(c.is_open(utc("2026-11-27T14:30:00Z")), "the open instant is open");
    }

    #[test]
    fn special_days_extend_from_config() {
        let mut c = Calendar::nyse();
        c.extend_from_toml("[[closure]]\ndate = \"2027-03-03\"\nreason = \"test closure\"\n").unwrap();
        assert!(c.session(d("2027-03-03")).is_none());
        c.extend_from_toml("[[early_close]]\ndate = \"2027-03-04\"\nclose = \"14:00\"\nreason = \"x\"\n").unwrap();
        assert_eq!(c.session(d("2027-03-04")).unwrap().close_local(), "14:00");
        let e = c
            .extend_from_toml("[[early_close]]\ndate = \"2027-03-04\"\nclose = \"17:00\"\nreason = \"x\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("between 09:30 and 16:00"), "{e}");
        assert!(c.extend_from_toml("[[closure]]\ndate = \"tomorrow\"\nreason = \"x\"\n").is_err());
    }

    #[test]
    fn published_lists_2024_to_2027() {
        // ../shared/reference/nyse-calendar.md
        let c = Calendar::nyse();
        let closed = |y: i32| -> Vec<String> {
            c.days(NaiveDate::from_ymd_opt(y, 1, 1).unwrap(), NaiveDate::from_ymd_opt(y, 12, 31).unwrap())
                .into_iter()
                .filter_map(|day| match day {
                    Day::Closed { date, reason } if reason != ClosedReason::Weekend => {
                        Some(date.format("%b %-d").to_string())
                    }
                    _ => None,
                })
                .collect()
        };
        let early = |y: i32| -> Vec<String> {
            c.sessions(NaiveDate::from_ymd_opt(y, 1, 1).unwrap(), NaiveDate::from_ymd_opt(y, 12, 31).unwrap())
                .into_iter()
                .filter(|s| s.early_close.is_some())
                .map(|s| s.date.format("%b %-d").to_string())
                .collect()
        };
        assert_eq!(
            closed(2024).join(", "),
            "Jan 1, Jan 15, Feb 19, Mar 29, May 27, Jun 19, Jul 4, Sep 2, Nov 28, Dec 25"
        );
        assert_eq!(early(2024).join(", "), "Jul 3, Nov 29, Dec 24");
        assert_eq!(
            closed(2025).join(", "),
            "Jan 1, Jan 9, Jan 20, Feb 17, Apr 18, May 26, Jun 19, Jul 4, Sep 1, Nov 27, Dec 25"
        );
        assert_eq!(early(2025).join(", "), "Jul 3, Nov 28, Dec 24");
        assert_eq!(
            closed(2026).join(", "),
            "Jan 1, Jan 19, Feb 16, Apr 3, May 25, Jun 19, Jul 3, Sep 7, Nov 26, Dec 25"
        );
        assert_eq!(early(2026).join(", "), "Nov 27, Dec 24");
        assert_eq!(
            closed(2027).join(", "),
            "Jan 1, Jan 18, Feb 15, Mar 26, May 31, Jun 18, Jul 5, Sep 6, Nov 25, Dec 24"
        );
        assert_eq!(early(2027).join(", "), "Nov 26");
    }
}
