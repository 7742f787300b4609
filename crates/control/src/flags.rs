//! Flag defaults: the configured value of every flag is written to Redis where Redis does
//! not hold it yet, so an operator's change survives manager restarts. They are written
//! again whenever Redis lost them (a restart without persistence), every few seconds; a
//! value that does not parse (not `1`/`0`) is replaced by the default, with an event.

use std::collections::BTreeMap;
use std::time::Duration;

use cashtag_bus::Bus;
use cashtag_core::catalog;
use tokio_util::sync::CancellationToken;

/// Writes the defaults Redis lacks, now and every `every`, reporting each one written.
pub async fn keep_flag_defaults(
    bus: Bus,
    defaults: BTreeMap<String, bool>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match bus.init_flag_defaults(&defaults).await {
            Ok(written) => {
                for name in written {
                    bus.emit(catalog::flag_default(&name, defaults[&name]));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot write flag defaults; retrying"),
        }
        match bus.repair_flags(&defaults).await {
            Ok(repaired) => {
                for (name, found) in repaired {
                    bus.emit(catalog::flag_repaired(&name, &found, defaults.get(&name).copied()));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot check the flags; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
