//! Control: the manager's start/stop for the data sources.
//!
//! A command is published on the control channel and the same JSON is stored in the
//! state key, so a service that starts late, restarts, or missed a message reads the
//! truth. With no state key the state is "off" at start; a key that disappears later
//! (Redis restarted without persistence) leaves the last state in force until the
//! manager, which re-asserts it every evaluation, writes it again.
//!
//! An operator's maintenance stop is a [`ControlHold`] beside the state: the stop is
//! published at once (the sources stop even without a manager), and the manager keeps
//! them off, whatever the calendar says, until the hold is released or runs out.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{Bus, BusError, Context};

/// `start` or `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlCommand {
    Start,
    Stop,
}

/// The control state: the last command, why, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlState {
    pub cmd: ControlCommand,
    pub reason: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
}

impl ControlState {
    /// Whether the data sources should run.
    pub fn is_on(&self) -> bool {
        self.cmd == ControlCommand::Start
    }

    /// The state before any manager has spoken.
    pub fn initial() -> Self {
        ControlState {
            cmd: ControlCommand::Stop,
            reason: "no control state in redis yet".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// An operator's maintenance stop of the data sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlHold {
    pub reason: String,
    pub by: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
    /// When it ends by itself (bus clock); none: until released.
    #[serde(default, with = "cashtag_core::time::ts_opt", skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl ControlHold {
    /// Whether the hold is still in force at `now`.
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    /// The reason the control state gives while the hold is in force.
    pub fn state_reason(&self) -> String {
        format!("maintenance stop by {}: {}", self.by, self.reason)
    }
}

impl Bus {
    /// Stores an operator's maintenance stop and publishes the stop at once.
    pub async fn hold_sources(&self, hold: &ControlHold) -> Result<(), BusError> {
        let state = ControlState { cmd: ControlCommand::Stop, reason: hold.state_reason(), at: hold.at };
        let state = serde_json::to_string(&state).expect("control state serializes");
        let mut c = self.conn();
        redis::pipe()
            .atomic()
            .set(self.keys().control_hold(), serde_json::to_string(hold).expect("hold serializes"))
            .set(self.keys().control_state(), &state)
            .publish(self.keys().control_channel(), &state)
            .query_async::<()>(&mut c)
            .await
            .context("hold the data sources")?;
        Ok(())
    }

    /// The operator's maintenance stop, if one is stored (in force or run out).
    pub async fn control_hold(&self) -> Result<Option<ControlHold>, BusError> {
        read_json(self.conn(), &self.keys().control_hold(), "control hold").await
    }

    /// Removes the maintenance stop; returns the one removed. The manager's next
    /// evaluation (within `manager.evaluate_every_ms`) follows the calendar again.
    pub async fn release_hold(&self) -> Result<Option<ControlHold>, BusError> {
        let hold = self.control_hold().await?;
        if hold.is_some() {
            let mut c = self.conn();
            let _: () = c.del(self.keys().control_hold()).await.context("DEL control hold")?;
        }
        Ok(hold)
    }

    /// Sets the state key and publishes the command.
    pub async fn publish_control(&self, state: &ControlState) -> Result<(), BusError> {
        let json = serde_json::to_string(state).expect("control state serializes");
        let mut c = self.conn();
        redis::pipe()
            .atomic()
            .set(self.keys().control_state(), &json)
            .publish(self.keys().control_channel(), &json)
            .query_async::<()>(&mut c)
            .await
            .context("publish control")?;
        Ok(())
    }

    /// Reads the current control state ("off" when no manager has published one).
    pub async fn control_state(&self) -> Result<ControlState, BusError> {
        Ok(read_state(self.conn(), self.keys().control_state()).await?.unwrap_or_else(ControlState::initial))
    }

    /// Reads the published control state, None when the key is absent.
    pub async fn published_control(&self) -> Result<Option<ControlState>, BusError> {
        read_state(self.conn(), self.keys().control_state()).await
    }

    /// The control state now and after every change.
    /// Whether the manager has the data sources on, kept current like [`Bus::watch_control`]
    /// (through a Redis outage it keeps the last state it read).
    pub fn watch_sources_on(&self) -> watch::Receiver<bool> {
        let mut control = self.watch_control();
        let (tx, rx) = watch::channel(control.borrow().is_on());
        tokio::spawn(async move {
            while control.changed().await.is_ok() {
                let on = control.borrow_and_update().is_on();
                if tx.send(on).is_err() {
                    break;
                }
            }
        });
        rx
    }

    pub fn watch_control(&self) -> watch::Receiver<ControlState> {
        let key = self.keys().control_state();
        crate::watch::spawn_watch(self, self.keys().control_channel(), ControlState::initial(), move |c| {
            read_state(c, key.clone())
        })
    }
}

async fn read_state(c: redis::aio::ConnectionManager, key: String) -> Result<Option<ControlState>, BusError> {
    read_json(c, &key, "control state").await
}

/// A JSON value stored at a key; none when the key is absent.
async fn read_json<T: serde::de::DeserializeOwned>(
    mut c: redis::aio::ConnectionManager,
    key: &str,
    what: &str,
) -> Result<Option<T>, BusError> {
    let raw: Option<String> = c.get(key).await.context(format!("GET {what}"))?;
    raw.map(|s| serde_json::from_str(&s).map_err(|e| BusError::Malformed { what: what.into(), message: e.to_string() }))
        .transpose()
}
