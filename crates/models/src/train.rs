//! `train`: samples from the roll-ups, walk-forward evaluation against the baselines, the
//! final fit on all samples, and the model file.

use cashtag_calendar::{Calendar, Session};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::ModelError;
use crate::artifact::{Meta, ModelFile, TrainingWindow, samples_sha256};
use crate::cv::{Evaluation, FitSpec, cv_blocks, evaluate, fit, walk_forward};
use crate::features::{FeatureDef, Horizon, Sample, SampleSpec, samples};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tickers: Vec<String>,
    /// The market proxy (for `ret_market`), if any.
    pub market: Option<String>,
    pub horizon: Horizon,
    pub every: TimeDelta,
    pub lookback: TimeDelta,
    pub features: Vec<FeatureDef>,
    pub l2: f64,
    pub folds: usize,
    pub alpha: f64,
    /// The close before `from`'s session (the first 1d window's start).
    pub previous_close: Option<DateTime<Utc>>,
    /// What the model file should say about how it was made (features dropped, labels
    /// thresholded).
    pub notes: Vec<String>,
}

impl TrainRequest {
    pub fn sample_spec(&self) -> SampleSpec {
        SampleSpec {
            horizon: self.horizon,
            every: self.every,
            lookback: self.lookback,
            previous_close: self.previous_close,
        }
    }

    pub fn fit_spec(&self) -> FitSpec {
        FitSpec { features: self.features.clone(), l2: self.l2, horizon: self.horizon, market: self.market.is_some() }
    }

    /// The feature window rows must be loaded for.
    pub fn window(&self) -> TimeDelta {
        match self.horizon {
            Horizon::Day => crate::features::DAY_LOOKBACK_MAX,
            Horizon::Minutes(_) => self.lookback,
        }
    }

    /// Without a market proxy that has prices in the samples, `ret_market` would be a
    /// constant 0: it is dropped from the model (and from the price-only baseline), and the
    /// note saying so is returned (and kept for the model file). Refuses a request left
    /// with no feature.
    pub fn without_missing_market(&mut self, samples: &[Sample]) -> Result<Option<String>, ModelError> {
        let i = crate::features::FEATURES.iter().position(|f| f.name == "ret_market").expect("known");
        let priced = samples.iter().any(|s| s.features[i] != 0.0);
        let why = match &self.market {
            Some(m) if !priced => format!("the market proxy {m} has no prices in the window"),
            Some(_) => return Ok(None),
            None => "no market proxy is set (models.market)".to_string(),
        };
        self.market = None;
        let had = self.features.iter().any(|f| f.name == "ret_market");
        self.features.retain(|f| f.name != "ret_market");
        if self.features.is_empty() {
            return Err(ModelError::Input(format!("{why}: ret_market cannot be the only feature")));
        }
        let note = format!(
            "ret_market {}: {why} (it would be a constant 0); the price-only baseline has no market feature either",
            if had { "dropped" } else { "not used" }
        );
        self.notes.push(note.clone());
        Ok(Some(note))
    }
}

/// The roll-ups of `tickers` (and the market proxy) that the samples of `sessions` need.
pub async fn load_rows(
    db: &mongodb::Database,
    tickers: &[String],
    market: Option<&str>,
    sessions: &[Session],
    window: TimeDelta,
    horizon: Horizon,
) -> Result<cashtag_analysis_core::series::Rows, ModelError> {
    let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else {
        return Ok(Default::default());
    };
    let mut all: Vec<String> = tickers.to_vec();
    if let Some(m) = market
        && !all.iter().any(|t| t == m)
    {
        all.push(m.to_string());
    }
    // Two windows before the first open (sentiment change), to the last close.
    let from = first.open - window - window - TimeDelta::days(4);
    let mut rows = cashtag_analysis_core::series::load(db, &all, from, last.close).await?;
    // A day ahead is judged on adjusted closes where daily bars exist (history).
    if horizon == Horizon::Day {
        cashtag_analysis_core::series::add_daily(db, &all, from, last.close, &mut rows).await?;
    }
    Ok(rows)
}

/// The samples of every ticker over `sessions`, in time order.
pub fn build_samples(
    rows: &cashtag_analysis_core::series::Rows,
    tickers: &[String],
    market: Option<&str>,
    sessions: &[Session],
    spec: &SampleSpec,
) -> Vec<Sample> {
    let m = market.and_then(|m| rows.get(m));
    let mut out: Vec<Sample> = tickers
        .iter()
        .filter(|t| Some(t.as_str()) != market)
        .filter_map(|t| rows.get(t).map(|r| samples(t, r, m, sessions, spec)))
        .flatten()
        .collect();
    out.sort_by(|a, b| a.t.cmp(&b.t).then_with(|| a.ticker.cmp(&b.ticker)));
    out
}

/// Walk-forward CV, then the final fit on every sample.
pub fn train(
    req: &TrainRequest,
    sessions: &[Session],
    all: &[Sample],
    version: String,
    now: DateTime<Utc>,
) -> Result<ModelFile, ModelError> {
    if all.len() < 50 {
        return Err(ModelError::NoData(format!(
            "{} samples between {} and {} ({} horizon): at least 50 are needed; roll up more sessions (`cashtag-analysis aggregate`)",
            all.len(),
            req.from,
            req.to,
            req.horizon
        )));
    }
    let up = all.iter().filter(|s| s.up()).count();
    if up == 0 || up == all.len() {
        return Err(ModelError::NoData("every sample has the same label; nothing to learn".into()));
    }
    let blocks = cv_blocks(sessions.len(), req.folds.min(sessions.len().saturating_sub(1)).max(1));
    let (forecasts, done) = walk_forward(all, &blocks, &req.fit_spec(), 20);
    let cv = evaluate(all, &forecasts, done, req.alpha);
    let refs: Vec<&Sample> = all.iter().collect();
    let fitted = fit(&refs, &req.features, req.l2);
    let training = TrainingWindow {
        from: req.from,
        to: req.to,
        tickers: req.tickers.clone(),
        market: req.market.clone(),
        samples: all.len(),
        up,
    };
    Ok(ModelFile::from_fit(
        &fitted,
        &req.features,
        Meta {
            name: req.name.clone(),
            version,
            created_at: now,
            horizon: req.horizon,
            every_minutes: req.every.num_minutes(),
            lookback_minutes: req.lookback.num_minutes(),
            training,
            training_sha256: samples_sha256(all),
            cv,
            notes: match req.horizon {
                Horizon::Day => req.notes.iter().cloned().chain([crate::artifact::DAY_WINDOW.to_string()]).collect(),
                Horizon::Minutes(_) => req.notes.clone(),
            },
        },
    ))
}

/// A version name that sorts by time: `YYYYMMDDTHHMMSS.mmmZ`.
pub fn version_for(now: DateTime<Utc>) -> String {
    now.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// The NYSE sessions of a date range, or an input error.
pub fn sessions(calendar: &Calendar, from: NaiveDate, to: NaiveDate) -> Result<Vec<Session>, ModelError> {
    let s = calendar.sessions(from, to);
    if s.is_empty() {
        return Err(ModelError::Input(format!("no NYSE sessions between {from} and {to}")));
    }
    Ok(s)
}

/// The text report of a training run.
pub fn summary(m: &ModelFile) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let cv = &m.cv;
    let when = match m.horizon {
        Horizon::Day => {
            "horizon 1d (decided at each close from the day since the previous close, resolved at the next close)"
                .to_string()
        }
        Horizon::Minutes(_) => {
            format!("horizon {}, every {} min, lookback {} min", m.horizon, m.every_minutes, m.lookback_minutes)
        }
    };
    let _ = writeln!(
        o,
        "model {} {}: {} samples ({} up) of {} tickers, {} to {}, {when}",
        m.name,
        m.version,
        m.training.samples,
        m.training.up,
        m.training.tickers.len(),
        m.training.from,
        m.training.to,
    );
    for n in m.notes.iter().filter(|n| n.as_str() != crate::artifact::DAY_WINDOW) {
        let _ = writeln!(o, "note: {n}");
    }
    let _ = writeln!(
        o,
        "walk-forward: {} blocks, {} out-of-sample forecasts (purged, embargo {})",
        cv.blocks.len(),
        cv.model.n,
        m.horizon
    );
    o.push_str(&scores_table(cv));
    o.push_str(&verdict_lines(cv));
    o
}

/// The model's and the baselines' scores on the same forecasts, one row each.
pub fn scores_table(cv: &Evaluation) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "accuracy", "mcc", "auc", "brier", "logloss", "rank_ic"
    );
    for (name, s) in std::iter::once(("model", &cv.model)).chain(cv.baselines.iter().map(|(n, s)| (n.as_str(), s))) {
        let _ = writeln!(
            o,
            "{name:<12} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
            s.accuracy, s.mcc, s.roc_auc, s.brier, s.log_loss, s.rank_ic
        );
    }
    o
}

/// The binomial test and whether the model beats the baselines, with the reasons.
pub fn verdict_lines(cv: &Evaluation) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "binomial test of the hit rate against the majority baseline: p = {:.3e}", cv.binomial_p);
    if cv.beats_baselines {
        let _ = writeln!(o, "verdict: beats every baseline out of sample (α = {})", cv.alpha);
    } else {
        let _ = writeln!(o, "verdict: does not beat the baselines:");
        for r in &cv.reasons {
            let _ = writeln!(o, "  - {r}");
        }
    }
    o
}
