//! Control: the manager's start/stop for the data sources.
//!
//! A command is published on the control channel and the same JSON is stored in the
//! state key, so a service that starts late, restarts, or missed a message reads the
//! truth. With no state key the state is "off" at start; a key that disappears later
//! (Redis restarted without persistence) leaves the last state in force until the
//! manager, which re-asserts it every evaluation, writes it again.

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

impl Bus {
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
    pub fn watch_control(&self) -> watch::Receiver<ControlState> {
        let key = self.keys().control_state();
        crate::watch::spawn_watch(self, self.keys().control_channel(), ControlState::initial(), move |c| {
            read_state(c, key.clone())
        })
    }
}

async fn read_state(mut c: redis::aio::ConnectionManager, key: String) -> Result<Option<ControlState>, BusError> {
    let raw: Option<String> = c.get(&key).await.context("GET control state")?;
    raw.map(|s| {
        serde_json::from_str(&s)
            .map_err(|e| BusError::Malformed { what: "control state".into(), message: e.to_string() })
    })
    .transpose()
}
