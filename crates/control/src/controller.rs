//! The control loop: evaluate the hours policy against the clock and publish start/stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cashtag_bus::{Bus, BusError, ControlCommand, ControlHold, ControlState};
use cashtag_calendar::Calendar;
use cashtag_core::catalog;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use cashtag_calendar::ny_time as ny;

use crate::hours::{Decision, HoursPolicy};

/// What the manager's `/status` shows about the market.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    /// The published control state.
    pub state: Option<ControlState>,
    /// The policy's current decision.
    pub decision: Option<Decision>,
    #[serde(with = "cashtag_core::time::ts_opt")]
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// Turns the data sources on and off with the market.
pub struct Controller {
    bus: Bus,
    calendar: Calendar,
    policy: HoursPolicy,
    evaluate_every: Duration,
    status: Arc<Mutex<Status>>,
    evaluated: watch::Sender<Option<DateTime<Utc>>>,
}

impl Controller {
    pub fn new(bus: Bus, calendar: Calendar, policy: HoursPolicy, evaluate_every: Duration) -> Self {
        Controller {
            bus,
            calendar,
            policy,
            evaluate_every,
            status: Default::default(),
            evaluated: watch::Sender::new(None),
        }
    }

    /// The status snapshot, updated on every evaluation.
    pub fn status(&self) -> Arc<Mutex<Status>> {
        self.status.clone()
    }

    /// The clock time of the last completed evaluation (tests wait on it).
    pub fn evaluated(&self) -> watch::Receiver<Option<DateTime<Utc>>> {
        self.evaluated.subscribe()
    }

    /// Runs until `shutdown`. Never publishes anything on shutdown: the state key stays
    /// what the market says, for the services and for the next manager.
    pub async fn run(self, shutdown: CancellationToken) {
        let clock = self.bus.clock().clone();
        let mut published: Option<ControlState> = None;
        let mut first = true;
        // The operator's maintenance stop last read (kept while Redis does not answer).
        let mut held: Option<ControlHold> = None;
        loop {
            let now = clock.now();
            let mut decision = self.policy.decide(&self.calendar, now);
            let was_held = held.is_some();
            match self.bus.control_hold().await {
                Ok(Some(h)) if h.holds_at(now) => held = Some(h),
                Ok(Some(h)) => {
                    // Its `--for` ran out: the calendar decides again.
                    match self.bus.release_hold().await {
                        Ok(_) => self.bus.emit(catalog::control_released(&h.reason, &h.by, true)),
                        Err(e) => tracing::warn!(error = %e, "cannot remove the expired maintenance stop"),
                    }
                    held = None;
                }
                Ok(None) => held = None,
                Err(e) => tracing::debug!(error = %e, "cannot read the maintenance stop; keeping the last one read"),
            }
            if let Some(h) = &held {
                if !was_held {
                    // The operator published the stop already: adopt it, do not repeat it.
                    if let Ok(Some(s)) = self.bus.published_control().await {
                        published = Some(s);
                    }
                }
                decision = Decision {
                    on: false,
                    reason: h.state_reason(),
                    next_change: h.until.unwrap_or(decision.next_change),
                    session: decision.session,
                };
            }
            // A stop that just ended is followed by the calendar's own word, on or off,
            // so the state's reason no longer names the stop.
            let hold_ended = was_held && held.is_none();
            if hold_ended {
                decision.reason = format!("{} (maintenance stop ended)", decision.reason);
            }
            if published.is_none() {
                // The truth is in Redis: what an earlier manager published.
                match self.bus.control_state().await {
                    Ok(s) => published = Some(s),
                    // Garbage (by hand, or from another version) is not the truth: the
                    // manager's own decision goes over it.
                    Err(BusError::Malformed { message, .. }) => {
                        let state = ControlState {
                            cmd: if decision.on { ControlCommand::Start } else { ControlCommand::Stop },
                            reason: decision.reason.clone(),
                            at: now,
                        };
                        match self.bus.publish_control(&state).await {
                            Ok(()) => {
                                self.bus.emit(catalog::control_repaired(state.is_on(), &state.reason, &message));
                                published = Some(state);
                                continue;
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot repair the control state; retrying"),
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                            _ = shutdown.cancelled() => return,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the control state; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
            }
            let current = published.clone().expect("read above");
            // (The "nothing published yet" state is not worth re-asserting.)
            if current.is_on() == decision.on && !first && current != ControlState::initial() {
                // Re-assert: a Redis that restarted without persistence (or was flushed)
                // has lost the state key; write it again, unchanged.
                match self.bus.published_control().await {
                    Ok(Some(s)) if s == current => {}
                    // Written by someone else since: an operator's maintenance stop (whose
                    // hold this evaluation may have just missed). Adopt it; the next
                    // evaluation acts on it, and corrects it if the calendar disagrees.
                    Ok(Some(s)) => published = Some(s),
                    Ok(None) => match self.bus.publish_control(&current).await {
                        Ok(()) => self.bus.emit(catalog::control_reasserted(current.is_on(), &current.reason)),
                        Err(e) => tracing::warn!(error = %e, "cannot re-assert the control state; retrying"),
                    },
                    Err(BusError::Malformed { message, .. }) => match self.bus.publish_control(&current).await {
                        Ok(()) => self.bus.emit(catalog::control_repaired(current.is_on(), &current.reason, &message)),
                        Err(e) => tracing::warn!(error = %e, "cannot repair the control state; retrying"),
                    },
                    Err(e) => tracing::debug!(error = %e, "cannot read the control state to re-assert it"),
                }
            }
            if current.is_on() != decision.on || hold_ended {
                let mut reason = decision.reason.clone();
                if first && decision.on {
                    reason = format!("{reason} (manager started during the session)");
                }
                let state = ControlState {
                    cmd: if decision.on { ControlCommand::Start } else { ControlCommand::Stop },
                    reason: reason.clone(),
                    at: now,
                };
                match self.bus.publish_control(&state).await {
                    Ok(()) => {
                        self.bus.emit(catalog::control_switched(
                            decision.on,
                            &reason,
                            decision.session.date,
                            decision.next_change,
                            ny(decision.next_change),
                        ));
                        published = Some(state);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot publish the control state; retrying");
                        published = None;
                    }
                }
            } else if first {
                let message = if decision.on {
                    format!("manager started; data sources stay on until {}", ny(decision.next_change))
                } else {
                    format!(
                        "manager started; market closed ({}); data sources stay off until {}",
                        decision.reason,
                        ny(decision.next_change)
                    )
                };
                self.bus.emit(catalog::control_resume(message, decision.on, &decision.reason, decision.next_change));
            }
            first = false;
            {
                let mut st = self.status.lock().unwrap();
                st.state = published.clone();
                st.decision = Some(decision.clone());
                st.evaluated_at = Some(now);
            }
            self.evaluated.send_replace(Some(now));
            tokio::select! {
                _ = clock.sleep_until(decision.next_change) => {}
                _ = tokio::time::sleep(self.evaluate_every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
