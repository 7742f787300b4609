//! Exit codes: how a failed command tells a script what went wrong.
//!
//! Every binary uses the same two: 1 for anything unexpected, 2 for bad configuration or
//! usage. Commands with more to say (backup, analysis) add their own codes from 3 up,
//! documented in docs/ (each service's page); their library errors implement [`ExitStatus`], and the
//! service runtime turns an error into its code.

/// Something unexpected.
pub const OTHER: u8 = 1;
/// Bad configuration or command-line usage.
pub const CONFIG: u8 = 2;

/// An error that knows the exit code it means.
pub trait ExitStatus {
    fn exit_code(&self) -> u8;
}

impl ExitStatus for crate::ConfigError {
    fn exit_code(&self) -> u8 {
        CONFIG
    }
}
