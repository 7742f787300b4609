//! The one supervisor: runs every configured source together, each restarted on its own
//! after a failure (a long pause after refused credentials) or a panic (with growing
//! backoff), so one provider's trouble never stops the others. When the context is
//! cancelled every source is handed back, ready for the next market session.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use cashtag_core::{Backoff, backoff::sleep_or_cancel, catalog};
use chrono::TimeDelta;
use futures::FutureExt;

use crate::{Source, SourceCtx, SourceError};

/// How long a source rests before it is restarted.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// After an error (or a source that returned on its own).
    pub restart_pause: Duration,
    /// After the provider refused the credentials.
    pub auth_pause: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy { restart_pause: Duration::from_secs(5), auth_pause: Duration::from_secs(60) }
    }
}

/// Runs `sources` until `ctx` is cancelled; returns them.
pub async fn supervise(
    mut sources: Vec<Box<dyn Source>>,
    ctx: SourceCtx,
    policy: RestartPolicy,
) -> Vec<Box<dyn Source>> {
    let runs = sources.iter_mut().map(|s| supervise_one(s.as_mut(), ctx.clone(), &policy));
    futures::future::join_all(runs).await;
    sources
}

async fn supervise_one(source: &mut dyn Source, mut ctx: SourceCtx, policy: &RestartPolicy) {
    let name = source.name();
    let mut panics = Backoff::exponential(policy.restart_pause, Duration::from_secs(300));
    loop {
        let outcome = AssertUnwindSafe(source.run(&ctx)).catch_unwind().await;
        if ctx.cancel.is_cancelled() {
            return;
        }
        let pause = match outcome {
            Ok(Ok(())) => policy.restart_pause,
            Ok(Err(e @ SourceError::Auth { .. })) => {
                ctx.emit_event(catalog::source_failed(&e, policy.auth_pause.as_secs_f64()));
                policy.auth_pause
            }
            Ok(Err(e)) => {
                ctx.emit_event(catalog::source_failed(&e, policy.restart_pause.as_secs_f64()));
                policy.restart_pause
            }
            Err(panic) => {
                let pause = panics.next_delay();
                ctx.emit_event(catalog::source_panicked(name, &panic_message(&*panic), pause.as_secs_f64()));
                pause
            }
        };
        if !sleep_or_cancel(pause, &ctx.cancel).await {
            return;
        }
        ctx.resume_from = Some(ctx.now() - TimeDelta::from_std(pause).unwrap_or_default());
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_string()
    }
}
