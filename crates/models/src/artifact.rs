//! The model file: a versioned JSON document of cashtag's own schema, everything needed to
//! predict (features, scaler, coefficients) and to judge the model (training window, data
//! hash, walk-forward scores against the baselines).
//!
//! `p(up) = sigmoid(intercept + Σ coefficients[j] · (x[j] − scaler.mean[j]) / scaler.scale[j])`
//! with `x` the features in `features` order — scikit-learn's `StandardScaler` followed by
//! `LogisticRegression.predict_proba(...)[:, 1]`, which `scripts/model_parity.py` checks.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::cv::Evaluation;
use crate::features::{FEATURES, FeatureDef, Horizon};
use crate::logit::{Logit, Scaler, sigmoid};

pub const SCHEMA: &str = "cashtag.model";
pub const SCHEMA_VERSION: u32 = 1;
pub const KIND: &str = "logistic_regression";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub name: String,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingWindow {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tickers: Vec<String>,
    pub market: Option<String>,
    pub samples: usize,
    pub up: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub schema: String,
    pub schema_version: u32,
    pub kind: String,
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub horizon: Horizon,
    /// Decisions every this many minutes from the open.
    pub every_minutes: i64,
    pub lookback_minutes: i64,
    pub label: String,
    pub features: Vec<FeatureSpec>,
    pub scaler: Scaler,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// The penalty λ of Σ logloss + λ/2·‖w‖² (scikit-learn's C = 1/λ).
    pub l2: f64,
    pub training: TrainingWindow,
    /// SHA-256 of the training samples (ticker, instants, features, returns), so two
    /// models can be told to come from the same data.
    pub training_sha256: String,
    pub cv: Evaluation,
    /// How the model was made where that differs from the defaults: a feature dropped (no
    /// market proxy), thresholded labels, the 1d window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What a `1d` model's feature window is (its `lookback_minutes` is only the longest one).
pub const DAY_WINDOW: &str = "1d: each decision at a session's close uses the window from the previous session's close \
to its own (L = that span; a weekend's is three days), the same day as the 1d study's";

pub const LABEL: &str = "1 if ln(p(target) / p(t)) > 0 else 0, p(x) = the close of the last minute that starts before x; \
target = t + horizon within the regular session (1d: from a session's close to the next session's close)";

impl ModelFile {
    /// Checks everything a predictor relies on.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::BadModel(format!("{} {}: {m}", self.name, self.version)));
        if self.schema != SCHEMA || self.schema_version != SCHEMA_VERSION {
            return bad(format!(
                "schema {} v{} is not {SCHEMA} v{SCHEMA_VERSION} (a newer cashtag wrote it, or it is not a model)",
                self.schema, self.schema_version
            ));
        }
        if self.kind != KIND {
            return bad(format!("kind {:?} is not {KIND}", self.kind));
        }
        let k = self.features.len();
        if k == 0 || self.coefficients.len() != k || self.scaler.mean.len() != k || self.scaler.scale.len() != k {
            return bad(format!(
                "{k} features, {} coefficients, {} means, {} scales",
                self.coefficients.len(),
                self.scaler.mean.len(),
                self.scaler.scale.len()
            ));
        }
        for f in &self.features {
            if !FEATURES.iter().any(|d| d.name == f.name) {
                return bad(format!("unknown feature {:?}", f.name));
            }
        }
        let numbers = self.coefficients.iter().chain(&self.scaler.mean).chain(std::iter::once(&self.intercept));
        if numbers.clone().any(|v| !v.is_finite()) || self.scaler.scale.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return bad("a coefficient, mean or scale is not a finite number (scales must be > 0)".into());
        }
        if self.every_minutes <= 0 || self.lookback_minutes <= 0 {
            return bad("every_minutes and lookback_minutes must be positive".into());
        }
        Ok(())
    }

    /// The definitions of the model's features, in its order.
    pub fn feature_defs(&self) -> Vec<FeatureDef> {
        self.features.iter().filter_map(|f| FEATURES.iter().find(|d| d.name == f.name).copied()).collect()
    }

    /// P(up) given the full feature vector (all of [`FEATURES`]).
    pub fn prob(&self, all_features: &[f64]) -> f64 {
        let x = crate::features::project(all_features, &self.feature_defs());
        let z: f64 = x
            .iter()
            .zip(&self.scaler.mean)
            .zip(&self.scaler.scale)
            .zip(&self.coefficients)
            .map(|(((v, m), s), w)| (v - m) / s * w)
            .sum::<f64>()
            + self.intercept;
        sigmoid(z)
    }

    pub fn from_fit(fit: &Logit, defs: &[FeatureDef], meta: Meta) -> ModelFile {
        ModelFile {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            kind: KIND.into(),
            name: meta.name,
            version: meta.version,
            created_at: meta.created_at,
            horizon: meta.horizon,
            every_minutes: meta.every_minutes,
            lookback_minutes: meta.lookback_minutes,
            label: LABEL.into(),
            features: defs
                .iter()
                .map(|d| FeatureSpec { name: d.name.into(), definition: d.definition.into() })
                .collect(),
            scaler: fit.scaler.clone(),
            coefficients: fit.coefficients.clone(),
            intercept: fit.intercept,
            l2: fit.l2,
            training: meta.training,
            training_sha256: meta.training_sha256,
            cv: meta.cv,
            notes: meta.notes,
        }
    }

    /// Parses and validates a model file.
    pub fn parse(bytes: &[u8]) -> Result<ModelFile, ModelError> {
        let m: ModelFile = serde_json::from_slice(bytes)
            .map_err(|e| ModelError::BadModel(format!("not a cashtag model file: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("serializes");
        v.push(b'\n');
        v
    }
}

/// What a model file says besides its fit.
pub struct Meta {
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub horizon: Horizon,
    pub every_minutes: i64,
    pub lookback_minutes: i64,
    pub training: TrainingWindow,
    pub training_sha256: String,
    pub cv: Evaluation,
    pub notes: Vec<String>,
}

/// The SHA-256 (hex) of the training samples, in a canonical byte layout.
pub fn samples_sha256(samples: &[crate::features::Sample]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in samples {
        h.update(s.ticker.as_bytes());
        h.update([0]);
        h.update(s.t.timestamp().to_le_bytes());
        h.update(s.target.timestamp().to_le_bytes());
        for v in s.features.iter().chain([&s.price, &s.ret, &s.market_ret]) {
            h.update(v.to_bits().to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// The SHA-256 (hex) of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
