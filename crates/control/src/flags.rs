//! Flag defaults: the configured value of every flag is written to Redis where Redis does
//! not hold it yet, so an operator's change survives manager restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use cashtag_bus::Bus;
use cashtag_core::catalog;
use tokio_util::sync::CancellationToken;

/// Writes the defaults Redis lacks (retrying while Redis is away), reporting each one.
pub async fn init_flag_defaults(bus: Bus, defaults: BTreeMap<String, bool>, shutdown: CancellationToken) {
    loop {
        match bus.init_flag_defaults(&defaults).await {
            Ok(written) => {
                for name in written {
                    bus.emit(catalog::flag_default(&name, defaults[&name]));
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot initialize flag defaults; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
