//! When the data sources run: the trading session widened by a lead before the open and a
//! lag after the close, or the extended-hours window (04:00–20:00 New York).

use cashtag_calendar::{Calendar, ClosedReason, Day, Session, local};
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use serde::Serialize;

/// The window policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoursPolicy {
    pub lead: TimeDelta,
    pub lag: TimeDelta,
    pub extended: bool,
}

impl Default for HoursPolicy {
    fn default() -> Self {
        HoursPolicy { lead: TimeDelta::minutes(5), lag: TimeDelta::minutes(5), extended: false }
    }
}

/// What should be running at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub on: bool,
    /// Why: `regular open`, `regular close`, `early close 13:00`, `holiday: Good Friday` ...
    pub reason: String,
    /// The next instant the decision changes.
    pub next_change: DateTime<Utc>,
    /// The session the decision is about: the current one when on, the next one when off.
    pub session: Session,
}

impl HoursPolicy {
    /// The on-window of a session.
    pub fn window(&self, s: &Session) -> (DateTime<Utc>, DateTime<Utc>) {
        if self.extended {
            let pre = local(s.date, NaiveTime::from_hms_opt(4, 0, 0).unwrap());
            // Post-market runs four hours past the close: 20:00, or 17:00 on early-close days.
            (pre.min(s.open - self.lead), s.close + TimeDelta::hours(4))
        } else {
            (s.open - self.lead, s.close + self.lag)
        }
    }

    /// Why the window of a session ends.
    fn close_reason(&self, s: &Session) -> String {
        match &s.early_close {
            Some(_) => format!("early close {}", s.close_local()),
            None if self.extended => "extended hours close".into(),
            None => "regular close".into(),
        }
    }

    fn open_reason(&self) -> String {
        if self.extended { "extended hours open".into() } else { "regular open".into() }
    }

    /// The decision at `now`.
    pub fn decide(&self, cal: &Calendar, now: DateTime<Utc>) -> Decision {
        let today = Calendar::local_date(now);
        // Windows can start the evening before (a long lead) or end after midnight (a long
        // lag), so look at yesterday's session too.
        let mut candidates: Vec<Session> = Vec::new();
        let mut date = today - TimeDelta::days(1);
        while candidates.len() < 3 {
            if let Some(s) = cal.session(date) {
                candidates.push(s);
            }
            date += TimeDelta::days(1);
        }
        for s in &candidates {
            let (from, to) = self.window(s);
            if from <= now && now < to {
                return Decision { on: true, reason: self.open_reason(), next_change: to, session: s.clone() };
            }
        }
        let next = candidates.iter().find(|s| self.window(s).0 > now).cloned().expect("a later session among three");
        let reason = match cal.day(today) {
            Day::Closed { reason: r @ (ClosedReason::Holiday(_) | ClosedReason::Closure(_)), .. } => r.to_string(),
            Day::Closed { reason: ClosedReason::Weekend, .. } => "weekend".into(),
            Day::Open(s) if self.window(&s).1 <= now => self.close_reason(&s),
            Day::Open(_) => "before the open".into(),
        };
        Decision { on: false, reason, next_change: self.window(&next).0, session: next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn regular_day_with_lead_and_lag() {
        let cal = Calendar::nyse();
        let p = HoursPolicy::default();
        let d = p.decide(&cal, utc("2026-11-24T14:24:59Z"));
        assert!(!d.on);
        assert_eq!(d.reason, "before the open");
        assert_eq!(d.next_change, utc("2026-11-24T14:25:00Z"));
        let d = p.decide(&cal, utc("2026-11-24T14:25:00Z"));
        assert!(d.on);
        assert_eq!(d.reason, "regular open");
        assert_eq!(d.next_change, utc("2026-11-24T21:05:00Z"));
        let d = p.decide(&cal, utc("2026-11-24T21:05:00Z"));
        assert!(!d.on);
        assert_eq!(d.reason, "regular close");
        assert_eq!(d.next_change, utc("2026-11-25T14:25:00Z"));
    }

    #[test]
    fn holiday_and_early_close() {
        let cal = Calendar::nyse();
        let p = HoursPolicy::default();
        let d = p.decide(&cal, utc("2026-11-26T16:00:00Z"));
        assert!(!d.on);
        assert_eq!(d.reason, "holiday: Thanksgiving Day");
        assert_eq!(d.next_change, utc("2026-11-27T14:25:00Z"));
        let d = p.decide(&cal, utc("2026-11-27T18:04:59Z"));
        assert!(d.on);
        assert_eq!(d.next_change, utc("2026-11-27T18:05:00Z"));
        let d = p.decide(&cal, utc("2026-11-27T18:05:00Z"));
        assert_eq!(d.reason, "early close 13:00");
        assert_eq!(d.next_change, utc("2026-11-30T14:25:00Z"));
    }

    #[test]
    fn extended_hours() {
        let cal = Calendar::nyse();
        let p = HoursPolicy { extended: true, ..Default::default() };
        let d = p.decide(&cal, utc("2026-11-24T09:00:00Z"));
        assert!(d.on, "04:00 New York is 09:00 UTC in November");
        assert_eq!(d.reason, "extended hours open");
        assert_eq!(d.next_change, utc("2026-11-25T01:00:00Z"));
        let d = p.decide(&cal, utc("2026-11-27T21:59:00Z"));
        assert!(d.on);
        assert_eq!(d.next_change, utc("2026-11-27T22:00:00Z"), "17:00 New York after an early close");
    }
}
