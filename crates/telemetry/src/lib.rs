//! cashtag-telemetry: what every long-running cashtag binary has in common.
//!
//! - [`init_tracing`]: JSON log lines on stdout, level from `CASHTAG_LOG` (or `RUST_LOG`);
//! - [`Telemetry`]: a Prometheus registry and a health state, served with `/healthz` and
//!   `/metrics` (text format) — plus any routes the service adds — by [`Telemetry::serve`];
//! - [`shutdown_token`]: a token cancelled on SIGTERM or SIGINT, so a service stops
//!   intake, flushes and exits 0;
//! - [`progress`]: progress bars for long work, log lines when not on a terminal.

pub mod progress;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tokio_util::sync::CancellationToken;

pub use prometheus;

/// The network libraries log requests verbatim below `info` (tungstenite's handshake
/// line holds Finnhub's `?token=`, HTTP/2 and the AWS SDK log headers): whatever
/// `CASHTAG_LOG` asks, they log at `info` at most, so a credential never reaches the logs.
const CREDENTIAL_SAFE: &str = "tungstenite=info,tokio_tungstenite=info,hyper=info,hyper_util=info,h2=info,\
    reqwest=info,rustls=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_smithy_http_client=info,\
    aws_sigv4=info,aws_runtime=info,aws_config=info,mongodb=info,redis=info";

/// `filter` with the network libraries capped (see [`CREDENTIAL_SAFE`]).
fn credential_safe(filter: &str) -> Result<tracing_subscriber::EnvFilter, tracing_subscriber::filter::ParseError> {
    let capped: Vec<&str> = CREDENTIAL_SAFE.split(',').map(str::trim).collect();
    let target = |d: &str| d.split(['=', '[']).next().unwrap_or(d).trim().to_string();
    let is_capped = |d: &str| {
        let t = target(d);
        capped.iter().map(|c| target(c)).any(|c| t == c || t.starts_with(&format!("{c}::")))
    };
    // A directive for a capped library is dropped: the cap is the most it may log.
    let mut directives: Vec<&str> =
        filter.split(',').map(str::trim).filter(|d| !d.is_empty() && !is_capped(d)).collect();
    directives.extend(&capped);
    tracing_subscriber::EnvFilter::try_new(directives.join(","))
}

/// Sets up JSON logging. Call once, first thing in `main`.
pub fn init_tracing(service: &str) {
    let filter = std::env::var("CASHTAG_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    let filter = credential_safe(&filter).unwrap_or_else(|e| {
        eprintln!("{service}: CASHTAG_LOG={filter:?} is not a valid filter ({e}); using info");
        credential_safe("info").expect("a valid filter")
    });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .try_init();
}

/// Sets up human-readable logging on stderr, for command-line tools.
pub fn init_cli_tracing() {
    // The AWS SDK warns about every credential provider it tries; the caller reports the outcome.
    // Progress lines (off a terminal, in place of bars) are what a CLI user waits for.
    let filter = std::env::var("CASHTAG_LOG")
        .unwrap_or_else(|_| "warn,cashtag_telemetry::progress=info,aws_config=error,aws_smithy_runtime=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(credential_safe(&filter).unwrap_or_else(|_| credential_safe("warn").expect("a valid filter")))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// A cancellation token cancelled on SIGTERM or SIGINT.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        t.cancel();
    });
    token
}

/// The health a service reports on `/healthz`: what the service itself sets, and the
/// servers it depends on — one failing for longer than the grace makes it unhealthy.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Mutex<(bool, serde_json::Value)>>,
    /// Dependency → since when it fails (none while it answers).
    deps: Arc<Mutex<std::collections::BTreeMap<String, Option<std::time::Instant>>>>,
    grace: Arc<Mutex<std::time::Duration>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            inner: Arc::new(Mutex::new((true, serde_json::json!({})))),
            deps: Default::default(),
            grace: Arc::new(Mutex::new(std::time::Duration::from_secs(30))),
        }
    }
}

impl Health {
    /// Sets whether the service is healthy and what to show.
    pub fn set(&self, healthy: bool, details: serde_json::Value) {
        *self.inner.lock().unwrap() = (healthy, details);
    }

    /// How long a dependency may fail before the service is unhealthy.
    pub fn set_dependency_grace(&self, grace: std::time::Duration) {
        *self.grace.lock().unwrap() = grace;
    }

    /// Records whether a dependency answered its last check.
    pub fn dependency(&self, name: &str, answered: bool) {
        let mut deps = self.deps.lock().unwrap();
        let since = deps.entry(name.to_string()).or_insert(None);
        match (answered, *since) {
            (true, _) => *since = None,
            (false, None) => *since = Some(std::time::Instant::now()),
            (false, Some(_)) => {}
        }
    }

    /// Healthy, and the details with each dependency's state.
    pub fn get(&self) -> (bool, serde_json::Value) {
        let (mut ok, mut details) = self.inner.lock().unwrap().clone();
        let grace = *self.grace.lock().unwrap();
        let deps = self.deps.lock().unwrap();
        if deps.is_empty() {
            return (ok, details);
        }
        let mut states = serde_json::Map::new();
        for (name, since) in deps.iter() {
            let state = match since {
                None => "ok".to_string(),
                Some(t) => {
                    let failing = t.elapsed();
                    ok &= failing < grace;
                    format!("unreachable for {:.0} s", failing.as_secs_f64())
                }
            };
            states.insert(name.clone(), state.into());
        }
        if !details.is_object() {
            details = serde_json::json!({ "service": details });
        }
        details.as_object_mut().expect("an object").insert("dependencies".into(), states.into());
        (ok, details)
    }
}

/// Metrics registry and health of one service.
#[derive(Clone)]
pub struct Telemetry {
    pub service: String,
    pub registry: prometheus::Registry,
    pub health: Health,
}

impl Telemetry {
    pub fn new(service: &str) -> Self {
        let labels = std::collections::HashMap::from([("service".to_string(), service.to_string())]);
        let registry = prometheus::Registry::new_custom(Some("cashtag".into()), Some(labels)).expect("registry");
        Telemetry { service: service.to_string(), registry, health: Health::default() }
    }

    /// Registers a counter.
    pub fn counter(&self, name: &str, help: &str) -> prometheus::IntCounter {
        let c = prometheus::IntCounter::new(name, help).expect("valid metric");
        self.registry.register(Box::new(c.clone())).expect("unique metric");
        c
    }

    /// Registers a counter with labels.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
        let c = prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels).expect("valid metric");
        self.registry.register(Box::new(c.clone())).expect("unique metric");
        c
    }

    /// Registers a gauge.
    pub fn gauge(&self, name: &str, help: &str) -> prometheus::Gauge {
        let g = prometheus::Gauge::new(name, help).expect("valid metric");
        self.registry.register(Box::new(g.clone())).expect("unique metric");
        g
    }

    /// Registers a gauge with labels.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
        let g = prometheus::GaugeVec::new(prometheus::Opts::new(name, help), labels).expect("valid metric");
        self.registry.register(Box::new(g.clone())).expect("unique metric");
        g
    }

    /// Registers a histogram with labels.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> prometheus::HistogramVec {
        let h = prometheus::HistogramVec::new(prometheus::HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric");
        self.registry.register(Box::new(h.clone())).expect("unique metric");
        h
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("encodes");
        String::from_utf8(buf).expect("utf-8")
    }

    /// The `/healthz` and `/metrics` routes merged with the service's own.
    pub fn router(&self, extra: Router) -> Router {
        let health = self.health.clone();
        let service = self.service.clone();
        let me = self.clone();
        Router::new()
            .route(
                "/healthz",
                get(move || {
                    let (ok, details) = health.get();
                    let body = serde_json::json!({"service": service, "status": if ok {"ok"} else {"unhealthy"}, "details": details});
                    async move {
                        let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                        (code, axum::Json(body))
                    }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let text = me.render();
                    async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response() }
                }),
            )
            .merge(extra)
    }

    /// Serves the routes until `shutdown` is cancelled; returns the bound address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        extra: Router,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = self.router(extra);
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        });
        tracing::info!(%bound, "serving /healthz and /metrics");
        Ok((bound, handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_health_and_metrics() {
        let t = Telemetry::new("test");
        let c = t.counter("records_total", "records");
        c.inc_by(3);
        let stop = CancellationToken::new();
        let (addr, handle) = t.serve("127.0.0.1:0".parse().unwrap(), Router::new(), stop.clone()).await.unwrap();
        let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("cashtag_records_total{service=\"test\"} 3"), "{metrics}");
        let h = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
        assert_eq!(h.status(), 200);
        t.health.set(false, serde_json::json!({"redis": "down"}));
        let h = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
        assert_eq!(h.status(), 503);
        let body: serde_json::Value = h.json().await.unwrap();
        assert_eq!(body["details"]["redis"], "down");
        stop.cancel();
        handle.await.unwrap();
    }
}
