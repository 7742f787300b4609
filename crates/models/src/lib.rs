//! cashtag-models: the honest loop — point-in-time features → a model trained and judged
//! walk-forward against baselines → published to S3 → predictions every tick → realized
//! outcomes → a track record after costs.
//!
//! - [`features`]: features at a decision time from data before it, and labels;
//! - [`logit`]: regularized logistic regression (IRLS) on standardized features;
//! - [`cv`]: purged, embargoed walk-forward evaluation and the baselines;
//! - [`metrics`]: forecast scores, binomial tests, Sharpe ratios (probabilistic, deflated);
//! - [`artifact`]: the model file (JSON, versioned schema);
//! - [`train`]: samples from the roll-ups, the evaluation and the final fit;
//! - [`registry`]: publish, list, promote and read models on S3;
//! - [`predictor`]: the service's ticks and the resolver;
//! - [`track`]: the track record of resolved forecasts and its report (`evaluate`,
//!   `backtest`).

pub mod artifact;
pub mod cv;
pub mod features;
pub mod logit;
pub mod metrics;
pub mod predictor;
pub mod registry;
pub mod track;
pub mod train;

use cashtag_calendar::Session;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    NoData(String),
    #[error("{0}")]
    NotFound(String),
    #[error("refused model: {0}")]
    BadModel(String),
    #[error("model registry (S3): {0}")]
    S3(String),
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error(transparent)]
    Analysis(#[from] cashtag_analysis_core::AnalysisError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl cashtag_core::exit::ExitStatus for ModelError {
    /// 3 bad input, 4 no data or no such model, 5 MongoDB, 6 S3, 7 a refused model, 1 other.
    fn exit_code(&self) -> u8 {
        match self {
            ModelError::Input(_) => 3,
            ModelError::NoData(_) | ModelError::NotFound(_) => 4,
            ModelError::Mongo(_) => 5,
            ModelError::S3(_) => 6,
            ModelError::BadModel(_) => 7,
            ModelError::Analysis(e) => e.exit_code(),
            ModelError::Io { .. } => 1,
        }
    }
}

/// A walk-forward backtest over history: retrain every `retrain_every` sessions on the
/// past only, forecast the next block, trade the rule, score it all.
pub struct Backtest {
    pub evaluation: cv::Evaluation,
    pub record: track::TrackRecord,
}

/// How a backtest retrains and trades.
#[derive(Debug, Clone)]
pub struct BacktestSpec {
    /// Retrain every this many sessions.
    pub retrain_every: usize,
    /// Sessions of history before the first forecast.
    pub min_train_sessions: usize,
    pub margin: f64,
    pub cost_bps: f64,
    /// Model variants tried (for the deflated Sharpe ratio).
    pub trials: usize,
}

pub fn backtest(
    req: &train::TrainRequest,
    sessions: &[Session],
    samples: &[features::Sample],
    spec: &BacktestSpec,
) -> Result<Backtest, ModelError> {
    let BacktestSpec { retrain_every, min_train_sessions, margin, cost_bps, trials } = *spec;
    let every = retrain_every.max(1);
    let first = min_train_sessions.max(1);
    if sessions.len() <= first {
        return Err(ModelError::NoData(format!(
            "{} sessions: a backtest needs more than the {first} training sessions before its first forecast",
            sessions.len()
        )));
    }
    let blocks: Vec<(usize, usize)> =
        (first..sessions.len()).step_by(every).map(|a| (a, (a + every).min(sessions.len()))).collect();
    Ok(forecast_blocks(req, sessions, samples, &blocks, 50, margin, cost_bps, trials))
}

/// Forecasts `blocks` (each from the samples whose label was known before it), scores the
/// forecasts against the baselines and trades them.
#[allow(clippy::too_many_arguments)]
fn forecast_blocks(
    req: &train::TrainRequest,
    sessions: &[Session],
    samples: &[features::Sample],
    blocks: &[(usize, usize)],
    min_train: usize,
    margin: f64,
    cost_bps: f64,
    trials: usize,
) -> Backtest {
    let (forecasts, done) = cv::walk_forward(samples, blocks, &req.fit_spec(), min_train);
    let evaluation = cv::evaluate(samples, &forecasts, done, req.alpha);
    let outcomes = track::outcomes_from_forecasts(samples, &forecasts, margin, cost_bps);
    let per_session = match req.horizon {
        features::Horizon::Day => 1.0,
        features::Horizon::Minutes(_) => {
            let full = sessions.iter().map(|s| features::decision_times(s, req.every, req.horizon).len()).max();
            full.unwrap_or(1).max(1) as f64
        }
    };
    let record = track::track_record(&outcomes, 0, cost_bps, 252.0 * per_session, trials);
    Backtest { evaluation, record }
}

/// A held-out evaluation: the model is fitted once on the samples of the sessions
/// `train` (a half-open range of indexes into `sessions`) — less those whose label
/// interval reaches into the test window plus one horizon (purged and embargoed as in the
/// walk-forward) — and forecasts every sample of the sessions `test`, never retrained;
/// the baselines are fitted on the same training samples and scored on the same rows.
pub fn holdout(
    req: &train::TrainRequest,
    sessions: &[Session],
    samples: &[features::Sample],
    train: (usize, usize),
    test: (usize, usize),
    spec: &BacktestSpec,
) -> Result<Backtest, ModelError> {
    if train.1 > test.0 || train.0 >= train.1 || test.0 >= test.1 {
        return Err(ModelError::Input(format!(
            "the training sessions {train:?} must come before the test sessions {test:?}, both non-empty"
        )));
    }
    let kept: Vec<features::Sample> = samples
        .iter()
        .filter(|s| (train.0..train.1).contains(&s.session) || (test.0..test.1).contains(&s.session))
        .cloned()
        .collect();
    let bt = forecast_blocks(req, sessions, &kept, &[test], 1, spec.margin, spec.cost_bps, spec.trials);
    let Some(block) = bt.evaluation.blocks.first() else {
        return Err(ModelError::NoData(
            "no held-out forecast: the training window has no sample with a known label of both directions before the test window, or the test window has no sample".into(),
        ));
    };
    if block.train < 50 {
        return Err(ModelError::NoData(format!(
            "{} training samples before the test window: at least 50 are needed",
            block.train
        )));
    }
    Ok(bt)
}
