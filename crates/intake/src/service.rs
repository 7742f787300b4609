//! A fetcher service around an intake: what `cashtag-stocks run` and `cashtag-twitter run`
//! share — the bus, the sinks, the watchlist, heartbeats, `/healthz` and `/metrics`, and a
//! clean SIGTERM: stop the source, write or spool what the sinks hold, flush, exit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cashtag_bus::Bus;
use cashtag_core::{EventKind, Settings};
use cashtag_sources::Recorder;
use cashtag_telemetry::Telemetry;

use crate::{Intake, IntakeConfig, RunSource, Transform};

/// What differs between the fetchers.
pub struct FetcherSpec<S: RunSource> {
    /// `stocks` or `twitter`.
    pub service: &'static str,
    /// The HTTP port unless `http.listen` says otherwise.
    pub default_port: u16,
    pub source: S,
    pub config: IntakeConfig,
    pub recorder: Option<Recorder>,
    pub transform: Option<Transform>,
}

/// Runs a fetcher until SIGTERM or SIGINT.
pub async fn run_fetcher<S: RunSource>(settings: &Settings, spec: FetcherSpec<S>) -> Result<(), String> {
    let clock = settings.clock.clock().map_err(|e| e.to_string())?;
    let bus = Bus::from_settings(settings, spec.service, clock).map_err(|e| e.to_string())?;
    let telemetry = Telemetry::new(spec.service);
    let shutdown = cashtag_telemetry::shutdown_token();
    bus.emit(bus.event(
        EventKind::Activity,
        "service.start",
        format!("{} {} starting, source {}", spec.service, env!("CARGO_PKG_VERSION"), spec.source.names().join(", ")),
    ));
    let fanout = Arc::new(cashtag_sinks::fanout_from_settings(settings, &bus, &telemetry).await?);
    let watchlist = bus.watch_watchlist(settings.watchlist.load().map_err(|e| e.to_string())?);
    let counts = bus.counts_writer(settings.streams.counts_maxlen).map_err(|e| e.to_string())?;
    let mut intake = Intake::new(bus.clone(), fanout.clone(), spec.source, watchlist, counts.clone(), spec.config)
        .with_recorder(spec.recorder);
    if let Some(t) = spec.transform {
        intake = intake.with_transform(t);
    }
    let status = intake.status();
    let hb_fan = fanout.clone();
    let health = telemetry.health.clone();
    let heartbeat = bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        move || {
            let info = serde_json::json!({
                "market_on": status.on.load(Ordering::Relaxed),
                "records": status.records.load(Ordering::Relaxed),
                "dropped": status.dropped.load(Ordering::Relaxed),
                "sinks": serde_json::to_value(hb_fan.status()).unwrap_or_default(),
            });
            health.set(true, info.clone());
            info
        },
    );
    let (_addr, server) = telemetry
        .serve(settings.http_listen(spec.default_port), axum::Router::new(), shutdown.clone())
        .await
        .map_err(|e| format!("http.listen: {e}"))?;
    intake.run(shutdown.clone()).await;

    // The source is closed; write or spool what the sinks hold.
    let _ = heartbeat.await;
    let fanout = Arc::try_unwrap(fanout).map_err(|_| "fan-out still shared at shutdown".to_string())?;
    if !fanout.shutdown(Duration::from_secs(7)).await {
        tracing::error!("sinks did not finish within 7 s");
    }
    counts.flush(Duration::from_secs(1)).await;
    bus.emit(bus.event(EventKind::Activity, "service.stop", format!("{} stopped", spec.service)));
    bus.events().flush(Duration::from_secs(2)).await;
    let _ = server.await;
    Ok(())
}
