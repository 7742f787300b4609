//! When scheduled backups run: a cron expression (with seconds) in a time zone, and the
//! run a down host missed.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

pub struct Plan {
    schedule: cron::Schedule,
    tz: Tz,
}

impl Plan {
    pub fn new(expr: &str, tz: &str) -> Result<Self, String> {
        let schedule = cron::Schedule::from_str(expr)
            .map_err(|e| format!("backup.cron {expr:?}: {e} (expected `sec min hour day month weekday`)"))?;
        let tz: Tz = tz.parse().map_err(|_| format!("backup.timezone {tz:?} is not an IANA time zone"))?;
        Ok(Plan { schedule, tz })
    }

    /// The next run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&t.with_timezone(&self.tz)).next().map(|d| d.with_timezone(&Utc))
    }

    /// The last run at or before `t` (within 31 days).
    pub fn last_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = (t - TimeDelta::days(31)).with_timezone(&self.tz);
        self.schedule.after(&start).take_while(|d| d.with_timezone(&Utc) <= t).last().map(|d| d.with_timezone(&Utc))
    }

    /// Whether the last scheduled run before `now` was missed, given the newest backup time.
    pub fn missed(&self, now: DateTime<Utc>, newest: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let due = self.last_before(now)?;
        match newest {
            Some(n) if n >= due => None,
            _ => Some(due),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_after_the_close_in_new_york() {
        let p = Plan::new("0 30 16 * * Mon-Fri", "America/New_York").unwrap();
        let fri: DateTime<Utc> = "2026-11-27T12:00:00Z".parse().unwrap();
        assert_eq!(p.next_after(fri).unwrap(), "2026-11-27T21:30:00Z".parse::<DateTime<Utc>>().unwrap());
        let sat: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        assert_eq!(
            p.next_after(sat).unwrap(),
            "2026-11-30T21:30:00Z".parse::<DateTime<Utc>>().unwrap(),
            "skips the weekend"
        );
        // Friday's run was due; a backup from Thursday means it was missed.
        let thu: DateTime<Utc> = "2026-11-26T21:30:05Z".parse().unwrap();
        assert_eq!(p.missed(sat, Some(thu)), Some("2026-11-27T21:30:00Z".parse().unwrap()));
        assert_eq!(p.missed(sat, Some("2026-11-27T21:30:07Z".parse().unwrap())), None);
        assert!(Plan::new("every day", "UTC").is_err());
    }
}
