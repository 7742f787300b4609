//! cashtag-ops: what `cashtagctl` knows about a running suite, and how it shows it.
//!
//! An operator of a cashtag host used to juggle `docker compose`, `redis-cli` and curl.
//! This crate reads the two halves of the truth and puts them on one screen:
//!
//! - [`engine`]: the containers of the compose project (found by the
//!   `com.docker.compose.project` label) through the Docker Engine API — inspect, logs,
//!   restart with the stop grace period, exec;
//! - [`suite`]: the suite's own state on the bus — market, maintenance stop, flags,
//!   heartbeats, each fetcher's sink backlog and journal, the last errors;
//! - [`containers`], [`status`]: the status screen (text or JSON) and its verdict, pure
//!   functions of recorded API answers, so they are tested without an engine;
//! - [`market`]: the NYSE calendar's answer for a day and an instant;
//! - [`logs`]: service log lines (the services log JSON) rendered for people;
//! - [`connect`]: which project, which Redis, which password — the way compose finds them.

pub mod connect;
pub mod containers;
pub mod engine;
pub mod logs;
pub mod market;
pub mod status;
pub mod suite;

/// What can go wrong between cashtagctl and the host. Messages say what to do; none
/// carries a password.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The Docker engine cannot be reached or refuses the request.
    #[error("{0}")]
    Docker(String),
    /// Redis cannot be reached, or wants a (different) password.
    #[error("{0}")]
    Redis(String),
    /// The project, service or backup asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The command line or an input file is wrong.
    #[error("{0}")]
    Usage(String),
}

/// cashtagctl's exit codes beyond the suite's own (1 other, 2 usage; `cashtag_core::exit`).
pub mod exit {
    /// The Docker engine cannot be reached or refuses the request.
    pub const DOCKER: u8 = 3;
    /// Redis cannot be reached, or refuses the password.
    pub const REDIS: u8 = 4;
    /// No such project, service, flag or backup.
    pub const NOT_FOUND: u8 = 5;
}

impl cashtag_core::exit::ExitStatus for OpsError {
    fn exit_code(&self) -> u8 {
        match self {
            OpsError::Docker(_) => exit::DOCKER,
            OpsError::Redis(_) => exit::REDIS,
            OpsError::NotFound(_) => exit::NOT_FOUND,
            OpsError::Usage(_) => cashtag_core::exit::CONFIG,
        }
    }
}
