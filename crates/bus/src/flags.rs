//! Feature flags: a hash of named booleans that operators flip at run time.
//!
//! Defaults come from configuration and are written only where a flag is absent
//! (`HSETNX`), so an operator's change survives restarts. A change is written to the
//! hash and announced on a channel; every [`Bus::watch_flags`] subscriber re-reads the
//! hash at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{Bus, BusError, Context};

/// The flags hash as a map.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flags(pub BTreeMap<String, bool>);

impl Flags {
    /// A flag's value; an unknown flag is off.
    pub fn get(&self, name: &str) -> bool {
        self.0.get(name).copied().unwrap_or(false)
    }
}

/// The message announcing a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagChange {
    pub name: String,
    pub value: bool,
    pub by: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
}

impl Bus {
    /// Writes the defaults of flags that are not set yet; returns the names written.
    pub async fn init_flag_defaults(&self, defaults: &BTreeMap<String, bool>) -> Result<Vec<String>, BusError> {
        let mut c = self.conn();
        let mut written = Vec::new();
        for (name, value) in defaults {
            let set: bool = c
                .hset_nx(self.keys().flags(), name, if *value { "1" } else { "0" })
                .await
                .context("HSETNX flag default")?;
            if set {
                written.push(name.clone());
            }
        }
        Ok(written)
    }

    /// Rewrites the flags whose stored value does not parse with their configured default
    /// (fields without a default are deleted), and announces the change; returns what was
    /// repaired as (flag, the value found).
    pub async fn repair_flags(&self, defaults: &BTreeMap<String, bool>) -> Result<Vec<(String, String)>, BusError> {
        let mut c = self.conn();
        let raw: BTreeMap<String, String> = c.hgetall(self.keys().flags()).await.context("HGETALL flags")?;
        let mut repaired = Vec::new();
        for (name, value) in raw.into_iter().filter(|(_, v)| parse_flag(v).is_none()) {
            match defaults.get(&name) {
                Some(d) => self.set_flag(&name, *d, "manager (repair)").await?,
                None => {
                    let _: () = c.hdel(self.keys().flags(), &name).await.context("HDEL flag")?;
                }
            }
            repaired.push((name, value));
        }
        Ok(repaired)
    }

    /// Sets a flag and announces the change.
    pub async fn set_flag(&self, name: &str, value: bool, by: &str) -> Result<(), BusError> {
        let change = FlagChange { name: name.to_string(), value, by: by.to_string(), at: self.clock().now() };
        let mut c = self.conn();
        redis::pipe()
            .atomic()
            .hset(self.keys().flags(), name, if value { "1" } else { "0" })
            .publish(self.keys().flags_channel(), serde_json::to_string(&change).expect("serializes"))
            .query_async::<()>(&mut c)
            .await
            .context("set flag")?;
        Ok(())
    }

    /// Reads all flags.
    pub async fn flags(&self) -> Result<Flags, BusError> {
        read_flags(self.conn(), self.keys().flags()).await
    }

    /// The flags now and after every change.
    pub fn watch_flags(&self) -> watch::Receiver<Flags> {
        let key = self.keys().flags();
        crate::watch::spawn_watch(self, self.keys().flags_channel(), Flags::default(), move |c| {
            let key = key.clone();
            // An empty hash is an absent one: keep the flags last seen.
            async move { read_flags(c, key).await.map(|f| (!f.0.is_empty()).then_some(f)) }
        })
    }
}

/// A flag's stored value: `1`/`0` (as written) or `true`/`false`; anything else is none.
pub fn parse_flag(raw: &str) -> Option<bool> {
    match raw {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The flags hash. A field whose value does not parse is left out (the flag is as if
/// unset: off, unless the reader has a default) and logged; it never hides the others.
/// The manager repairs such fields ([`Bus::repair_flags`]).
async fn read_flags(mut c: redis::aio::ConnectionManager, key: String) -> Result<Flags, BusError> {
    let raw: BTreeMap<String, String> = c.hgetall(&key).await.context("HGETALL flags")?;
    let mut flags = BTreeMap::new();
    for (k, v) in raw {
        match parse_flag(&v) {
            Some(b) => {
                flags.insert(k, b);
            }
            None => tracing::debug!(flag = %k, "flag value does not parse; skipped"),
        }
    }
    Ok(Flags(flags))
}
