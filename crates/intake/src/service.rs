//! A fetcher service around an intake: what `cashtag-stocks run` and `cashtag-twitter run`
//! share — the sinks, the watchlist, heartbeats with the sinks' state, and a clean
//! SIGTERM: stop the source, write or spool what the sinks hold, flush, exit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cashtag_core::Settings;
use cashtag_runtime::{Failure, Service, config, other};
use cashtag_sources::Recorder;

use crate::{Intake, IntakeConfig, Sources, Transform};

/// What differs between the fetchers.
pub struct FetcherSpec {
    /// `stocks` or `twitter`.
    pub service: &'static str,
    /// The HTTP port unless `http.listen` says otherwise.
    pub default_port: u16,
    pub sources: Sources,
    pub config: IntakeConfig,
    pub recorder: Option<Recorder>,
    pub transform: Option<Transform>,
}

/// The recorder of raw payloads: `--record DIR`, else the configured directory, else none.
pub fn recorder(flag: Option<std::path::PathBuf>, configured: &str) -> Result<Option<Recorder>, Failure> {
    let dir = flag.or_else(|| (!configured.is_empty()).then(|| configured.into()));
    dir.map(|d| Recorder::new(&d).map_err(|e| Failure::usage(format!("recording directory {}: {e}", d.display()))))
        .transpose()
}

/// Runs a fetcher until SIGTERM or SIGINT.
pub async fn run_fetcher(settings: &Settings, spec: FetcherSpec) -> Result<(), Failure> {
    let mut svc = Service::start(spec.service, settings, format!("source {}", spec.sources.names().join(", ")))?;
    let bus = svc.bus.clone();
    let fanout = Arc::new(cashtag_sinks::fanout_from_settings(settings, &bus, &svc.telemetry).await?);
    let watchlist = bus.watch_watchlist(settings.watchlist.load()?);
    let counts = bus.counts_writer(settings.streams.counts_maxlen).map_err(config)?;
    let mut intake = Intake::new(bus.clone(), fanout.clone(), spec.sources, watchlist, counts.clone(), spec.config)
        .with_recorder(spec.recorder);
    if let Some(t) = spec.transform {
        intake = intake.with_transform(t);
    }
    let status = intake.status();
    let hb_fan = fanout.clone();
    let health = svc.telemetry.health.clone();
    svc.heartbeat(move || {
        let info = serde_json::json!({
            "market_on": status.on.load(Ordering::Relaxed),
            "records": status.records.load(Ordering::Relaxed),
            "dropped": status.dropped.load(Ordering::Relaxed),
            "sinks": serde_json::to_value(hb_fan.status()).unwrap_or_default(),
        });
        health.set(true, info.clone());
        info
    });
    svc.serve(spec.default_port, axum::Router::new()).await?;
    intake.run(svc.shutdown.clone()).await;

    // The source is closed; write or spool what the sinks hold.
    svc.end_heartbeat().await;
    let fanout = Arc::try_unwrap(fanout).map_err(|_| other(anyhow::anyhow!("fan-out still shared at shutdown")))?;
    if !fanout.shutdown(Duration::from_secs(7)).await {
        tracing::error!("sinks did not finish within 7 s");
    }
    counts.flush(Duration::from_secs(1)).await;
    svc.stop(format!("{} stopped", spec.service)).await;
    Ok(())
}
