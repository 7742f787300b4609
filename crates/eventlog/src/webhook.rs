//! Alerts to a webhook: JSON POST with a timeout and retries, from a bounded queue in its
//! own task, so a slow or hanging endpoint never blocks storage.

use std::time::Duration;

use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Webhook {
    tx: mpsc::Sender<serde_json::Value>,
}

const ATTEMPTS: u32 = 3;
const QUEUE: usize = 100;

impl Webhook {
    /// Starts the sender. The URL is a secret (it may carry a token): never logged.
    pub fn spawn(url: String, timeout: Duration) -> Self {
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE);
        tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "webhook client");
                    return;
                }
            };
            while let Some(body) = rx.recv().await {
                let mut delay = Duration::from_millis(500);
                for attempt in 1..=ATTEMPTS {
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => break,
                        Ok(r) => tracing::warn!(status = %r.status(), attempt, "webhook refused the alert"),
                        Err(e) => tracing::warn!(error = %e.without_url(), attempt, "webhook unreachable"),
                    }
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        });
        Webhook { tx }
    }

    /// Queues an alert; if the queue is full (the endpoint is stuck) the alert is only
    /// stored, not sent, and that is logged.
    pub fn send(&self, alert: serde_json::Value) {
        if self.tx.try_send(alert).is_err() {
            tracing::warn!("webhook queue full; alert stored but not sent");
        }
    }
}
