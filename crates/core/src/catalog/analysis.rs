//! Events of the analysis service: roll-ups, the predictor, the model registry.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use super::*;

pub fn rollup_backfill(sentiment_minutes: usize, price_minutes: usize) -> EventDraft {
    activity(ROLLUP_BACKFILL, format!("backfilled {sentiment_minutes} sentiment and {price_minutes} price minutes"))
}

pub fn rollup_failed(problem: impl Display) -> EventDraft {
    error(ROLLUP_FAILED, problem.to_string())
}

pub fn rollup_indexes(problem: impl Display) -> EventDraft {
    warning(ROLLUP_INDEXES, format!("could not create the roll-up indexes: {problem}"))
}

pub fn rollup_recovered() -> EventDraft {
    activity(ROLLUP_RECOVERED, "roll-ups are working again")
}

pub fn predict_tick(model: &str, version: &str, at: DateTime<Utc>, written: usize, duplicates: usize) -> EventDraft {
    activity(
        PREDICT_TICK,
        format!("tick {}: {written} predictions by {model} {version} ({duplicates} already made)", rfc3339(&at)),
    )
    .with("model", model)
    .with("version", version)
    .with("tick", rfc3339(&at))
    .with("written", written)
    .with("duplicates", duplicates)
}

pub fn predict_skipped(at: DateTime<Utc>, reason: &str) -> EventDraft {
    warning(PREDICT_SKIPPED, format!("tick {}: no predictions: {reason}", rfc3339(&at))).with("tick", rfc3339(&at))
}

pub fn predict_missed(count: usize, first: DateTime<Utc>, last: DateTime<Utc>) -> EventDraft {
    warning(
        PREDICT_MISSED,
        format!(
            "{count} tick(s) from {} to {} passed while the predictor was down; they are not made afterwards",
            rfc3339(&first),
            rfc3339(&last)
        ),
    )
    .with("count", count)
}

pub fn predict_model_loaded(model: &str, version: &str, sha256: &str) -> EventDraft {
    activity(PREDICT_MODEL_LOADED, format!("predicting with {model} {version}"))
        .with("model", model)
        .with("version", version)
        .with("sha256", sha256)
}

pub fn predict_model_stale(model: &str, loaded: Option<&str>, problem: impl Display) -> EventDraft {
    let keep = loaded
        .map_or("no model is loaded yet: no predictions until it answers".to_string(), |v| format!("keeping {v}"));
    warning(PREDICT_MODEL_STALE, format!("cannot check the registry for {model} ({problem}); {keep}"))
        .with("model", model)
        .with("version", loaded.unwrap_or_default())
}

pub fn predict_model_refused(model: &str, problem: impl Display, kept: Option<&str>) -> EventDraft {
    let keep = kept.map_or("no model is loaded".to_string(), |v| format!("keeping {v}"));
    error(PREDICT_MODEL_REFUSED, format!("refused the promoted {model}: {problem}; {keep}")).with("model", model)
}

pub fn predict_failed(problem: impl Display) -> EventDraft {
    error(PREDICT_FAILED, problem.to_string())
}

pub fn model_published(model: &str, version: &str, key: &str, promoted: bool, why: &str) -> EventDraft {
    activity(
        MODEL_PUBLISHED,
        format!(
            "{model} {version} uploaded to {key}; {}",
            if promoted { "promoted".to_string() } else { format!("not promoted: {why}") }
        ),
    )
    .with("model", model)
    .with("version", version)
    .with("promoted", promoted)
}

pub fn analysis_fallback(what: impl Into<String>) -> EventDraft {
    warning(ANALYSIS_FALLBACK, what)
}

pub fn model_promoted(model: &str, version: &str, by: &str) -> EventDraft {
    activity(MODEL_PROMOTED, format!("{model} {version} is now the promoted model ({by})"))
        .with("model", model)
        .with("version", version)
}
