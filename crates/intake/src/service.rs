//! A fetcher service around an intake: what `cashtag-stocks run` and `cashtag-twitter run`
//! share — the sinks, the watchlist, heartbeats with the sinks' state, and a clean
//! SIGTERM: stop the source, let the sinks write what they can within the grace period
//! (the rest stays in the journal), flush, exit.

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

/// With `aws.create_missing`, against an emulator (`aws.endpoint` set), which starts empty and forgets everything
/// when it restarts, the Kinesis streams are created when missing: checked at once and
/// every 10 s. Against AWS the streams are the operator's.
fn keep_emulator_streams(settings: &Settings, stop: tokio_util::sync::CancellationToken) {
    let (region, endpoint) = (settings.aws.region.clone(), settings.aws.endpoint.clone());
    let names = [settings.sinks.kinesis_posts_stream.clone(), settings.sinks.kinesis_market_stream.clone()];
    tokio::spawn(async move {
        let client = cashtag_stores::kinesis::client(&region, &endpoint).await;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        loop {
            match cashtag_stores::kinesis::ensure_streams(&client, &names).await {
                Ok(created) if !created.is_empty() => tracing::info!(?created, "created streams in the emulator"),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "the emulator's streams cannot be checked now"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// Runs a fetcher until SIGTERM or SIGINT.
pub async fn run_fetcher(settings: &Settings, spec: FetcherSpec) -> Result<(), Failure> {
    let mut svc = Service::start(spec.service, settings, format!("source {}", spec.sources.names().join(", ")))?;
    let bus = svc.bus.clone();
    let delivery = Arc::new(cashtag_sinks::delivery_from_settings(settings, &bus, &svc.telemetry).await?);
    if settings.aws.create_missing && !settings.aws.endpoint.is_empty() {
        keep_emulator_streams(settings, svc.shutdown.clone());
    }
    let watchlist = bus.watch_watchlist(settings.watchlist.load()?);
    let counts = bus.counts_writer(settings.streams.counts_maxlen).map_err(config)?;
    let mut intake = Intake::new(bus.clone(), delivery.clone(), spec.sources, watchlist, counts.clone(), spec.config)
        .with_recorder(spec.recorder);
    if let Some(t) = spec.transform {
        intake = intake.with_transform(t);
    }
    let status = intake.status();
    let hb_delivery = delivery.clone();
    let health = svc.telemetry.health.clone();
    let down_alert = settings.sinks.down_alert_secs as f64;
    svc.heartbeat(move || {
        let sinks = hb_delivery.status();
        let journal = hb_delivery.journal().stats();
        let blocked = status.blocked.load(Ordering::Relaxed);
        let long_down: Vec<&str> =
            sinks.iter().filter(|s| s.enabled && s.down_seconds > down_alert).map(|s| s.sink).collect();
        let info = serde_json::json!({
            "market_on": status.on.load(Ordering::Relaxed),
            "records": status.records.load(Ordering::Relaxed),
            "dropped": status.dropped.load(Ordering::Relaxed),
            "refused": status.refused.load(Ordering::Relaxed),
            "journal": {"bytes": journal.bytes, "max_bytes": journal.max_bytes, "segments": journal.segments, "blocked": blocked},
            "sinks": serde_json::to_value(&sinks).unwrap_or_default(),
        });
        // Unhealthy when records cannot be accepted, or a sink has been down too long.
        let problems: Vec<String> = blocked
            .then(|| "the journal cannot take records".to_string())
            .into_iter()
            .chain(long_down.iter().map(|s| format!("{s} down for more than {down_alert:.0} s")))
            .collect();
        let mut shown = info.clone();
        shown["problems"] = serde_json::json!(problems);
        health.set(problems.is_empty(), shown);
        info
    });
    svc.serve(spec.default_port, axum::Router::new()).await?;
    intake.run(svc.shutdown.clone()).await;

    // The sources are closed; the sinks write what they can, the journal keeps the rest.
    svc.end_heartbeat().await;
    let delivery =
        Arc::try_unwrap(delivery).map_err(|_| other(anyhow::anyhow!("the delivery is still shared at shutdown")))?;
    if !delivery.shutdown(Duration::from_secs(7)).await {
        tracing::warn!("sinks did not write everything within 7 s; the rest stays in the journal for the next start");
    }
    counts.flush(Duration::from_secs(1)).await;
    svc.stop(format!("{} stopped", spec.service)).await;
    Ok(())
}
