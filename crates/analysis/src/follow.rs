//! Keeping the roll-ups current (`cashtag-analysis run`): after each minute closes (plus a
//! delay for late records) it is rolled up, and every few minutes the whole trailing
//! window is recomputed, so posts and trades that arrive late still land in their minute.
//! Recomputing the window every minute would read each record `trailing` times over; this
//! way the database reads the newest minute once plus the window now and then. Failures
//! are events and a 503 on `/healthz`; the loop goes on.

use chrono::{DateTime, TimeDelta, Utc};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use cashtag_core::{Emitter, catalog};
use cashtag_telemetry::progress::Progress;
use cashtag_telemetry::prometheus::{IntCounter, IntCounterVec};
use cashtag_telemetry::{Health, Telemetry};

use crate::{AnalysisError, rollup};

/// The roll-up service's counters.
#[derive(Clone)]
pub struct RollupMetrics {
    pub passes: IntCounter,
    pub failures: IntCounter,
    pub minutes: IntCounterVec,
}

impl RollupMetrics {
    pub fn register(t: &Telemetry) -> Self {
        RollupMetrics {
            passes: t.counter("rollup_passes_total", "Roll-up passes completed"),
            failures: t.counter("rollup_failures_total", "Roll-up passes that failed"),
            minutes: t.counter_vec("rollup_minutes_total", "Ticker-minutes written", &["kind"]),
        }
    }
}

/// How the follower works.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Closed minutes recomputed ...
    pub trailing: TimeDelta,
    /// ... every this many passes (the first pass included); the other passes roll up the
    /// minute that just closed.
    pub trailing_every: u32,
    /// How long after a minute closes it is rolled up.
    pub delay: TimeDelta,
    /// Roll up `[from, now)` first.
    pub backfill_from: Option<DateTime<Utc>>,
}

/// Rolls up `[from, to)` day by day, with progress; returns (sentiment, price) minutes.
pub async fn backfill(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: &Progress,
) -> Result<(usize, usize), AnalysisError> {
    rollup::ensure_indexes(db).await?;
    let steps = rollup::day_steps(from, to);
    let mut bar = progress.task("roll-ups", steps.len() as u64, "days");
    let (mut s, mut p) = (0, 0);
    for (a, b) in steps {
        let (ds, dp) = rollup::rollup_range(db, a, b).await?;
        s += ds;
        p += dp;
        bar.add(1);
    }
    bar.done();
    Ok((s, p))
}

/// The start of `t`'s minute.
pub fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).expect("valid")
}

/// How many closed minutes pass number `pass` (from 0) recomputes: the whole trailing
/// window on every `trailing_every`-th pass, starting with the first (which also covers a
/// restart), else the newest minute.
pub fn pass_window(pass: u32, config: &FollowConfig) -> TimeDelta {
    if pass.is_multiple_of(config.trailing_every.max(1)) {
        config.trailing
    } else {
        TimeDelta::minutes(1).min(config.trailing)
    }
}

/// Follows the clock until shutdown.
pub async fn follow(
    db: &Database,
    events: &Emitter,
    health: &Health,
    metrics: &RollupMetrics,
    config: &FollowConfig,
    shutdown: CancellationToken,
) {
    let clock = events.clock();
    if let Err(e) = rollup::ensure_indexes(db).await {
        events.emit(catalog::rollup_indexes(e));
    }
    if let Some(from) = config.backfill_from {
        match backfill(db, from, minute_floor(clock.now()), &Progress::new(true)).await {
            Ok((s, p)) => events.emit(catalog::rollup_backfill(s, p)),
            Err(e) => events.emit(catalog::rollup_failed(format!("backfill failed: {e}"))),
        }
    }
    let mut healthy = true;
    let mut passes = 0u32;
    loop {
        let next = minute_floor(clock.now()) + TimeDelta::minutes(1) + config.delay;
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = shutdown.cancelled() => break,
        }
        let end = minute_floor(clock.now() - config.delay);
        let window = pass_window(passes, config);
        passes = passes.wrapping_add(1);
        match rollup::rollup_range(db, end - window, end).await {
            Ok((s, p)) => {
                metrics.passes.inc();
                metrics.minutes.with_label_values(&["sentiment"]).inc_by(s as u64);
                metrics.minutes.with_label_values(&["price"]).inc_by(p as u64);
                if !healthy {
                    events.emit(catalog::rollup_recovered());
                    healthy = true;
                }
                health.set(true, serde_json::json!({"last_minute": cashtag_core::time::rfc3339(&end)}));
            }
            Err(e) => {
                metrics.failures.inc();
                if healthy {
                    events.emit(catalog::rollup_failed(format!(
                        "roll-up of the minutes before {} failed: {e}",
                        cashtag_core::time::rfc3339(&end)
                    )));
                    healthy = false;
                }
                health.set(false, serde_json::json!({"error": e.to_string()}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_recomputed_every_few_passes() {
        let config = FollowConfig {
            trailing: TimeDelta::minutes(15),
            trailing_every: 5,
            delay: TimeDelta::zero(),
            backfill_from: None,
        };
        let windows: Vec<i64> = (0..11).map(|p| pass_window(p, &config).num_minutes()).collect();
        assert_eq!(windows, [15, 1, 1, 1, 1, 15, 1, 1, 1, 1, 15]);
        let every = FollowConfig { trailing_every: 1, ..config };
        assert!((0..5).all(|p| pass_window(p, &every) == TimeDelta::minutes(15)));
    }
}
