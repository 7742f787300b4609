//! `cashtagctl market`: a day of the NYSE calendar, whether the exchange is open at an
//! instant and why not, and the next session.

use cashtag_calendar::ny_time as ny;
use cashtag_calendar::{Calendar, Day, Session, TZ};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// What the calendar says about a day and an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketReport {
    pub date: NaiveDate,
    pub day: Day,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
    /// The regular session is on at `at`.
    pub open_now: bool,
    /// Why it is closed at `at` (none while open).
    pub closed_because: Option<String>,
    /// The session on at `at`, or the next one.
    pub next_session: Session,
}

impl MarketReport {
    /// The report for `date` (the New York date of `at` when none) at the instant `at`.
    pub fn new(cal: &Calendar, at: DateTime<Utc>, date: Option<NaiveDate>) -> MarketReport {
        let today = Calendar::local_date(at);
        let date = date.unwrap_or(today);
        let day = cal.day(date);
        let open_now = cal.is_open(at);
        let closed_because = (!open_now).then(|| match cal.day(today) {
            Day::Closed { reason, .. } => reason.to_string(),
            Day::Open(s) if at < s.open => "before the open".to_string(),
            Day::Open(s) => match &s.early_close {
                Some(why) => format!("after the early close at {} ({why})", s.close_local()),
                None => "after the close".to_string(),
            },
        });
        let next_session = cal.current_or_next_session(at);
        MarketReport { date, day, at, open_now, closed_because, next_session }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let day = match &self.day {
            Day::Open(s) => format!("open {}", hours(s)),
            Day::Closed { reason, .. } => format!("closed ({reason})"),
        };
        out.push_str(&format!("{:<13}{} ({}): {day}\n", "Day", self.date, self.date.format("%A")));
        let now = if self.open_now {
            "open".to_string()
        } else {
            format!("closed: {}", self.closed_because.as_deref().unwrap_or("-"))
        };
        out.push_str(&format!("{:<13}{}: {now}\n", "Now", ny(self.at)));
        let s = &self.next_session;
        let label = if self.open_now { "This session" } else { "Next session" };
        out.push_str(&format!("{label:<13}{} ({}) {}\n", s.date, s.date.format("%A"), hours(s)));
        out
    }
}

/// `09:30–16:00 EST` or `09:30–13:00 EST, early close (day after Thanksgiving)`.
fn hours(s: &Session) -> String {
    let open = s.open.with_timezone(&TZ);
    let early = s.early_close.as_ref().map(|w| format!(", early close ({w})")).unwrap_or_default();
    format!("{}–{} {}{early}", open.format("%H:%M"), s.close_local(), open.format("%Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thanksgiving_week_reads_right() {
        let cal = Calendar::nyse();
        // Thanksgiving Day 2026, at noon New York: closed, why, and Friday's early close.
        let r = MarketReport::new(&cal, "2026-11-26T17:00:00Z".parse().unwrap(), None);
        assert!(!r.open_now);
        assert_eq!(r.closed_because.as_deref(), Some("holiday: Thanksgiving Day"));
        assert_eq!(r.next_session.date.to_string(), "2026-11-27");
        let text = r.render();
        assert!(text.contains("2026-11-26 (Thursday): closed (holiday: Thanksgiving Day)"), "{text}");
        assert!(text.contains("Next session 2026-11-27 (Friday) 09:30–13:00 EST, early close"), "{text}");
        // Friday 14:00: after the early close.
        let r = MarketReport::new(&cal, "2026-11-27T19:00:00Z".parse().unwrap(), None);
        assert!(r.closed_because.unwrap().starts_with("after the early close at 13:00"));
        // A Tuesday session, asked about a Sunday.
        let r = MarketReport::new(&cal, "2026-11-24T15:00:00Z".parse().unwrap(), Some("2026-11-29".parse().unwrap()));
        assert!(r.open_now);
        assert!(r.render().contains("closed (weekend)"));
        assert!(r.render().contains("This session 2026-11-24 (Tuesday) 09:30–16:00 EST"));
    }
}
