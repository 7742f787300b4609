//! Scheduled backups: when they run (a cron expression with seconds, in a time zone, and
//! the run a down host missed) and the loop of `cashtag-backup schedule`.

use std::str::FromStr;

use cashtag_core::{Emitter, catalog};
use cashtag_telemetry::progress::Progress;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::{BackupError, Target};

pub struct Plan {
    schedule: cron::Schedule,
    tz: Tz,
}

impl Plan {
    pub fn new(expr: &str, tz: &str) -> Result<Self, BackupError> {
        let schedule = cron::Schedule::from_str(expr).map_err(|e| {
            BackupError::Config(format!("backup.cron {expr:?}: {e} (expected `sec min hour day month weekday`)"))
        })?;
        let tz: Tz =
            tz.parse().map_err(|_| BackupError::Config(format!("backup.timezone {tz:?} is not an IANA time zone")))?;
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

    /// Since when backups are overdue: the last scheduled run at least `grace` before `now`
    /// that no backup followed; none when the newest backup is younger than it, and none
    /// within `grace` of the scheduler's start (it runs a missed backup when it starts).
    pub fn overdue(
        &self,
        now: DateTime<Utc>,
        newest: Option<DateTime<Utc>>,
        grace: TimeDelta,
        started: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if started > now - grace {
            return None;
        }
        self.missed(now - grace, newest)
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

/// What a scheduler backs up and where.
pub struct Scheduled<'a> {
    pub plan: &'a Plan,
    /// Where the backup events go, and the clock the plan runs by.
    pub events: &'a Emitter,
    pub mongo: &'a mongodb::Client,
    pub s3: &'a crate::s3::S3Client,
    pub target: &'a Target,
    pub databases: &'a [String],
}

/// One backup, scheduled or on demand (`cashtag-backup run`, `cashtagctl backup now`),
/// reported as a `backup.start` and a `backup.done` or `backup.failed` event.
pub async fn run_once(
    events: &Emitter,
    mongo: &mongodb::Client,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    databases: &[String],
    progress: &Progress,
) -> Result<crate::manifest::Manifest, BackupError> {
    events.emit(catalog::backup_start());
    let t0 = std::time::Instant::now();
    let run = crate::backup(mongo, s3, target, databases, events.clock().now(), progress);
    // Dropping the run at the deadline aborts its upload: no partial archive stays.
    let result = match tokio::time::timeout(target.deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(BackupError::io(format!(
            "still running after {} min (backup.deadline_mins): stopped",
            target.deadline.as_secs() / 60
        ))),
    };
    match &result {
        Ok(m) => events.emit(catalog::backup_done(
            &m.key,
            m.collections.len(),
            m.documents(),
            m.archive_bytes,
            m.duration_secs,
        )),
        Err(e) => events.emit(catalog::backup_failed(e.chain(), t0.elapsed().as_secs_f64(), e.exit_code())),
    }
    result
}

/// Backs up on the plan until shutdown: first the run a down host missed (if any), then
/// each scheduled one. Every run is a `backup.start` and a `backup.done` or
/// `backup.failed` event; a failure never stops the schedule.
pub async fn run_schedule(job: Scheduled<'_>, shutdown: CancellationToken) {
    let Scheduled { plan, events, mongo, s3, target, databases } = job;
    let clock = events.clock();
    let progress = Progress::new(true);
    let newest = crate::list(s3, target).await.ok().and_then(|l| l.last().map(|b| b.at));
    let mut due = plan.missed(clock.now(), newest);
    if let Some(missed) = due {
        events.emit(catalog::backup_missed(missed));
    }
    loop {
        if due.is_none() {
            let Some(next) = plan.next_after(clock.now()) else { break };
            tracing::info!(next = %cashtag_core::time::rfc3339(&next), "next backup");
            tokio::select! {
                _ = clock.sleep_until(next) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        due = None;
        let _ = run_once(events, mongo, s3, target, databases, &progress).await;
        if shutdown.is_cancelled() {
            break;
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
        // Overdue: Friday's run had no backup by Saturday noon, six hours' grace or not.
        let grace = TimeDelta::hours(6);
        let long_ago: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        assert_eq!(p.overdue(sat, Some(thu), grace, long_ago), Some("2026-11-27T21:30:00Z".parse().unwrap()));
        assert_eq!(p.overdue(sat, Some("2026-11-27T21:31:00Z".parse().unwrap()), grace, long_ago), None);
        // Within the grace after the run, not yet.
        let fri_late: DateTime<Utc> = "2026-11-27T23:00:00Z".parse().unwrap();
        assert_eq!(p.overdue(fri_late, Some(thu), grace, long_ago), None, "Friday's run is within its grace");
        assert!(p.overdue(fri_late, None, grace, long_ago).is_some(), "never a backup: overdue since Thursday's");
        // Within the grace after the scheduler started (its missed run may still be going).
        assert_eq!(p.overdue(sat, None, grace, sat - TimeDelta::hours(1)), None);
    }
}
