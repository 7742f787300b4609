//! The manager's `GET /status`: the market state and why, the next transition, the flags,
//! the live services and the watchlist size, as one JSON document.

use std::sync::{Arc, Mutex};

use cashtag_bus::{Bus, Heartbeat};
use cashtag_core::time::rfc3339;

use crate::Status;

/// The `/status` route.
pub fn routes(bus: Bus, status: Arc<Mutex<Status>>, alive: Arc<Mutex<Vec<Heartbeat>>>) -> axum::Router {
    axum::Router::new().route(
        "/status",
        axum::routing::get(move || {
            let bus = bus.clone();
            let status = status.lock().unwrap().clone();
            let alive = alive.lock().unwrap().clone();
            async move {
                let flags = bus
                    .flags()
                    .await
                    .map(|f| serde_json::to_value(f.0).unwrap_or_default())
                    .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
                let watchlist_size = bus.watchlist().await.ok().flatten().map(|w| w.len());
                let decision = status.decision.as_ref();
                axum::Json(serde_json::json!({
                    "now": rfc3339(&bus.clock().now()),
                    "market": {
                        "on": status.state.as_ref().map(|s| s.is_on()),
                        "state": status.state,
                        "reason": decision.map(|d| d.reason.clone()),
                        "session": decision.map(|d| &d.session),
                        "next_transition": decision.map(|d| rfc3339(&d.next_change)),
                    },
                    "flags": flags,
                    "services": alive,
                    "watchlist_size": watchlist_size,
                }))
            }
        }),
    )
}
