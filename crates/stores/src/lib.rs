//! cashtag-stores: the clients of the suite's stores, set up in one place.
//!
//! Writers (the sinks), readers (log, analysis, history, models) and the backup all talk to
//! the same MongoDB, Kinesis and S3 with the same deadlines; they take their clients from
//! here instead of borrowing them from whichever crate first needed one. Everything AWS
//! shares one loader ([`aws::sdk_config`]): the region, the emulator endpoint when one is
//! configured, credentials from the environment or the instance role.

pub mod aws;
pub mod kinesis;
pub mod mongo;
pub mod s3;
