//! Keeping the roll-ups current (`cashtag-analysis run`): after each minute closes (plus a
//! delay for late records), the last few minutes are recomputed, so posts and trades that
//! arrive late still land in their minute. Failures are events and a 503 on `/healthz`;
//! the loop goes on.

use chrono::{DateTime, TimeDelta, Utc};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use cashtag_bus::Bus;
use cashtag_core::{Clock, catalog};
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
    /// Closed minutes recomputed each time.
    pub trailing: TimeDelta,
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

/// Follows the clock until shutdown.
pub async fn follow(
    db: &Database,
    clock: &Clock,
    bus: &Bus,
    health: &Health,
    metrics: &RollupMetrics,
    config: &FollowConfig,
    shutdown: CancellationToken,
) {
    if let Err(e) = rollup::ensure_indexes(db).await {
        bus.emit(catalog::rollup_indexes(e));
    }
    if let Some(from) = config.backfill_from {
        match backfill(db, from, minute_floor(clock.now()), &Progress::new(true)).await {
            Ok((s, p)) => bus.emit(catalog::rollup_backfill(s, p)),
            Err(e) => bus.emit(catalog::rollup_failed(format!("backfill failed: {e}"))),
        }
    }
    let mut healthy = true;
    loop {
        let next = minute_floor(clock.now()) + TimeDelta::minutes(1) + config.delay;
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = shutdown.cancelled() => break,
        }
        let end = minute_floor(clock.now() - config.delay);
        match rollup::rollup_range(db, end - config.trailing, end).await {
            Ok((s, p)) => {
                metrics.passes.inc();
                metrics.minutes.with_label_values(&["sentiment"]).inc_by(s as u64);
                metrics.minutes.with_label_values(&["price"]).inc_by(p as u64);
                if !healthy {
                    bus.emit(catalog::rollup_recovered());
                    healthy = true;
                }
                health.set(true, serde_json::json!({"last_minute": cashtag_core::time::rfc3339(&end)}));
            }
            Err(e) => {
                metrics.failures.inc();
                if healthy {
                    bus.emit(catalog::rollup_failed(format!(
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
