//! A model's prediction for one ticker and horizon, and how it turned out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ticker::Ticker;
use crate::time::{ts, ts_opt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub model: String,
    pub model_version: String,
    pub ticker: Ticker,
    /// When the prediction was made (the end of the feature window).
    #[serde(with = "ts")]
    pub made_at: DateTime<Utc>,
    /// The instant whose price the prediction is about.
    #[serde(with = "ts")]
    pub target_at: DateTime<Utc>,
    /// Predicted log-return from `made_at` to `target_at`.
    pub predicted_return: f64,
    /// Probability that the return is positive.
    pub prob_up: f64,
    /// Filled in once `target_at` has passed.
    #[serde(default)]
    pub realized_return: Option<f64>,
    #[serde(default, with = "ts_opt")]
    pub realized_at: Option<DateTime<Utc>>,
}

impl Prediction {
    /// Whether the predicted direction matched the realized one, once known.
    pub fn direction_correct(&self) -> Option<bool> {
        self.realized_return.map(|r| (r > 0.0) == (self.predicted_return > 0.0))
    }
}
