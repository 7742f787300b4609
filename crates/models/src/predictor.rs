//! The predictor: at each tick of the regular session, the promoted model's p(up) for
//! every watched ticker with data, written once; and the resolver, which fills in how
//! each prediction turned out once its target has passed.
//!
//! - Ticks are the model's decision times (every `models.every_minutes` from the open,
//!   while the target is within the session), on the NYSE calendar, and only while the
//!   manager's control state is on.
//! - The registry is re-read at every tick: a newly promoted model is used from the next
//!   tick; when S3 cannot be reached the loaded model is kept (one `predict.model_stale`
//!   until S3 answers again); a corrupt, wrong-schema or missing model is refused
//!   (`predict.model_refused`) and the previous one stays.
//! - Features come from the raw posts and trades before the tick (the roll-up
//!   computation, not its stored output, so the predictor never waits for the roll-up
//!   service), exactly as training computed them. What the database holds `delay` after
//!   the tick is what counts: a post stored later is in the roll-ups a model is trained
//!   on but was not seen live (a small train/serve skew, kept small by the delay).
//! - `_id` is (model, version, ticker, made_at): a restart or a second replica inserts
//!   nothing twice; ticks that passed while the predictor was down are reported
//!   (`predict.missed`), never made afterwards.

use std::collections::BTreeMap;

use bson::{Document, doc};
use cashtag_analysis_core::series::{Rows, add_price_doc, add_sentiment_doc};
use cashtag_calendar::{Calendar, Session};
use cashtag_core::{Clock, Emitter, catalog, collections};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::ModelError;
use crate::artifact::ModelFile;
use crate::features::{FEATURES, Horizon, decision_times, features_at, price_as_of};
use crate::registry::{Pointer, Registry};

/// How the predictor trades and resolves.
#[derive(Debug, Clone)]
pub struct PredictConfig {
    pub name: String,
    pub every: TimeDelta,
    pub margin: f64,
    pub cost_bps: f64,
    pub market: Option<String>,
    pub delay: TimeDelta,
    pub unresolved_after: TimeDelta,
    pub instance: String,
}

/// The rule's position for p(up): +1 long, −1 short, 0 flat.
pub fn position(p: f64, margin: f64) -> i32 {
    if p > 0.5 + margin {
        1
    } else if p < 0.5 - margin {
        -1
    } else {
        0
    }
}

pub fn decision_name(pos: i32) -> &'static str {
    match pos {
        1 => "long",
        -1 => "short",
        _ => "flat",
    }
}

/// The P&L of a position over a log return, net of `cost_bps` per side (entry and exit).
pub fn net_pnl(pos: i32, ret: f64, cost_bps: f64) -> f64 {
    f64::from(pos) * ret - f64::from(pos.abs()) * 2.0 * cost_bps / 1e4
}

pub fn prediction_id(model: &str, version: &str, ticker: &str, made_at: DateTime<Utc>) -> String {
    format!("{model}:{version}:{ticker}:{}", cashtag_core::time::rfc3339(&made_at))
}

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    pub written: usize,
    pub duplicates: usize,
    pub skipped: Option<String>,
}

/// Prometheus counters of the predictor.
#[derive(Clone)]
pub struct PredictMetrics {
    pub ticks: prometheus::IntCounter,
    pub predictions: prometheus::IntCounter,
    pub resolved: prometheus::IntCounter,
    pub unresolved: prometheus::IntCounter,
    pub model_refusals: prometheus::IntCounter,
    pub registry_errors: prometheus::IntCounter,
}

impl PredictMetrics {
    pub fn register(t: &cashtag_telemetry::Telemetry) -> PredictMetrics {
        PredictMetrics {
            ticks: t.counter("predict_ticks_total", "ticks at which the predictor ran"),
            predictions: t.counter("predict_predictions_total", "predictions written"),
            resolved: t.counter("predict_resolved_total", "predictions resolved with their outcome"),
            unresolved: t.counter("predict_unresolved_total", "predictions marked unresolved (no target price)"),
            model_refusals: t
                .counter("predict_model_refusals_total", "promoted models refused (corrupt, wrong schema, missing)"),
            registry_errors: t.counter("predict_registry_errors_total", "registry reads that failed (S3 unreachable)"),
        }
    }
}

pub struct Predictor {
    pub db: Database,
    pub registry: Registry,
    /// Where the predictor's events go.
    pub events: Emitter,
    pub calendar: Calendar,
    pub config: PredictConfig,
    pub metrics: Option<PredictMetrics>,
    loaded: Option<(Pointer, ModelFile)>,
    stale: bool,
    /// The pointer's digest last refused, so one bad pointer raises one event.
    refused: Option<String>,
}

impl Predictor {
    pub fn new(
        db: Database,
        registry: Registry,
        events: Emitter,
        calendar: Calendar,
        config: PredictConfig,
    ) -> Predictor {
        Predictor { db, registry, events, calendar, config, metrics: None, loaded: None, stale: false, refused: None }
    }

    /// The loaded model's version.
    pub fn loaded_version(&self) -> Option<&str> {
        self.loaded.as_ref().map(|(p, _)| p.version.as_str())
    }

    fn count(&self, f: impl Fn(&PredictMetrics) -> &prometheus::IntCounter, n: u64) {
        if let Some(m) = &self.metrics {
            f(m).inc_by(n);
        }
    }

    /// Re-reads the pointer; loads a new model, keeps the old one on any failure.
    pub async fn refresh_model(&mut self) {
        let name = self.config.name.clone();
        match self.registry.latest(&name).await {
            Ok(Some((p, m))) => {
                self.stale = false;
                self.refused = None;
                if self.loaded.as_ref().map(|(q, _)| (&q.version, &q.sha256)) != Some((&p.version, &p.sha256)) {
                    if let Horizon::Day = m.horizon {
                        self.refuse(&p.sha256, "a 1d model decides at the close; the predictor runs intraday models")
                            .await;
                        return;
                    }
                    self.events.emit(catalog::predict_model_loaded(&name, &p.version, &p.sha256));
                    tracing::info!(model = %name, version = %p.version, "model loaded");
                    self.loaded = Some((p, m));
                }
            }
            Ok(None) => {}
            Err(ModelError::S3(e)) => {
                self.count(|m| &m.registry_errors, 1);
                if !self.stale {
                    self.stale = true;
                    let kept = self.loaded_version().map(str::to_string);
                    self.events.emit(catalog::predict_model_stale(&name, kept.as_deref(), &e));
                }
            }
            Err(e) => {
                let key = self.registry.pointer(&name).await.ok().flatten().map(|p| p.sha256).unwrap_or_default();
                self.refuse(&key, &e.to_string()).await;
            }
        }
    }

    async fn refuse(&mut self, key: &str, problem: &str) {
        self.stale = false;
        if self.refused.as_deref() != Some(key) {
            self.refused = Some(key.to_string());
            self.count(|m| &m.model_refusals, 1);
            let kept = self.loaded_version().map(str::to_string);
            self.events.emit(catalog::predict_model_refused(&self.config.name, problem, kept.as_deref()));
        }
    }

    /// The minute rows of `tickers` from the raw collections, for minutes before `t`.
    async fn rows_before(&self, t: DateTime<Utc>, lookback: TimeDelta) -> Result<Rows, ModelError> {
        let from = t - lookback - lookback - TimeDelta::minutes(30);
        let (s, p) = cashtag_analysis_core::rollup::compute(&self.db, from, t).await?;
        let mut rows = Rows::new();
        for d in &s {
            add_sentiment_doc(&mut rows, d);
        }
        for d in &p {
            add_price_doc(&mut rows, d);
        }
        Ok(rows)
    }

    /// One tick: refresh the model, compute features as of `t`, write the predictions.
    pub async fn tick(&mut self, t: DateTime<Utc>, tickers: &[String]) -> Result<TickReport, ModelError> {
        self.count(|m| &m.ticks, 1);
        self.refresh_model().await;
        let Some((pointer, model)) = &self.loaded else {
            let reason = "no promoted model in the registry (train one: `cashtag-analysis train`)".to_string();
            self.events.emit(catalog::predict_skipped(t, &reason));
            return Ok(TickReport { skipped: Some(reason), ..Default::default() });
        };
        let Horizon::Minutes(h) = model.horizon else { unreachable!("1d models are refused") };
        let lookback = TimeDelta::minutes(model.lookback_minutes);
        let rows = self.rows_before(t, lookback).await?;
        let market = self.config.market.as_ref().and_then(|m| rows.get(m));
        let coll = self.db.collection::<Document>(collections::PREDICTIONS);
        let mut report = TickReport::default();
        for ticker in tickers {
            if Some(ticker) == self.config.market.as_ref() {
                continue;
            }
            let Some(r) = rows.get(ticker) else { continue };
            let Some(all) = features_at(r, market, t, lookback) else { continue };
            let Some((_, price)) = price_as_of(r, t) else { continue };
            let p = model.prob(&all);
            let pos = position(p, self.config.margin);
            let features: Document = model
                .feature_defs()
                .iter()
                .map(|d| {
                    let i = FEATURES.iter().position(|f| f.name == d.name).expect("known");
                    (d.name.to_string(), bson::Bson::Double(all[i]))
                })
                .collect();
            let last_move = all[FEATURES.iter().position(|f| f.name == "ret_recent").expect("known")];
            let d = doc! {
                "_id": prediction_id(&model.name, &model.version, ticker, t),
                "model": &model.name, "version": &model.version, "model_sha256": &pointer.sha256,
                "ticker": ticker, "made_at": bson::DateTime::from_chrono(t),
                "target_at": bson::DateTime::from_chrono(t + TimeDelta::minutes(h)),
                "horizon": model.horizon.to_string(),
                "p_up": p, "decision": decision_name(pos), "position": pos, "margin": self.config.margin,
                "reference_price": price, "last_move": last_move, "features": features,
                "instance": &self.config.instance,
                "outcome": bson::Bson::Null,
            };
            match coll.insert_one(d).await {
                Ok(_) => report.written += 1,
                Err(e) if is_duplicate(&e) => report.duplicates += 1,
                Err(e) => return Err(e.into()),
            }
        }
        self.count(|m| &m.predictions, report.written as u64);
        if report.written + report.duplicates == 0 {
            let reason = "no watched ticker has prices before the tick".to_string();
            self.events.emit(catalog::predict_skipped(t, &reason));
            report.skipped = Some(reason);
        } else {
            self.events.emit(catalog::predict_tick(&model.name, &model.version, t, report.written, report.duplicates));
        }
        Ok(report)
    }

    /// Resolves every open prediction whose target has passed by `now`; returns
    /// (resolved, marked unresolved). The price at the target is the close of the last
    /// minute that starts before it, from the trades after the decision — the label's
    /// definition in training.
    pub async fn resolve(&self, now: DateTime<Utc>) -> Result<(usize, usize), ModelError> {
        let coll = self.db.collection::<Document>(collections::PREDICTIONS);
        let due = now - self.config.delay;
        let open: Vec<Document> = coll
            .find(doc! {"outcome": bson::Bson::Null, "target_at": {"$lte": bson::DateTime::from_chrono(due)}})
            .await?
            .try_collect()
            .await?;
        // One read of the raw trades per (decision, target) pair.
        let mut groups: BTreeMap<(DateTime<Utc>, DateTime<Utc>), Vec<Document>> = BTreeMap::new();
        for p in open {
            if let (Ok(made), Ok(target)) = (p.get_datetime("made_at"), p.get_datetime("target_at")) {
                groups.entry((made.to_chrono(), target.to_chrono())).or_default().push(p);
            }
        }
        let (mut resolved, mut unresolved) = (0, 0);
        for ((made, target), docs) in groups {
            let (_, prices) =
                cashtag_analysis_core::rollup::compute(&self.db, made - TimeDelta::minutes(30), target).await?;
            let mut rows = Rows::new();
            for d in &prices {
                add_price_doc(&mut rows, d);
            }
            let after_decision = |ticker: &str, at: DateTime<Utc>| {
                rows.get(ticker).and_then(|r| price_as_of(r, at)).filter(|(m, _)| *m >= made).map(|(_, p)| p)
            };
            let market_ret = self.config.market.as_deref().and_then(|m| {
                let start = rows.get(m).and_then(|r| price_as_of(r, made)).map(|(_, p)| p)?;
                Some((after_decision(m, target)? / start).ln())
            });
            for p in docs {
                let (Ok(id), Ok(ticker), Ok(reference)) =
                    (p.get_str("_id"), p.get_str("ticker"), p.get_f64("reference_price"))
                else {
                    continue;
                };
                let pos = p.get_i32("position").unwrap_or(0);
                let outcome = match after_decision(ticker, target) {
                    Some(price) => {
                        let ret = (price / reference).ln();
                        let p_up = p.get_f64("p_up").unwrap_or(0.5);
                        resolved += 1;
                        doc! {
                            "resolved_at": bson::DateTime::from_chrono(now), "price": price, "log_return": ret,
                            "market_return": market_ret, "excess_return": market_ret.map(|m| ret - m),
                            "up": ret > 0.0, "hit": (p_up > 0.5) == (ret > 0.0),
                            "pnl": net_pnl(pos, ret, self.config.cost_bps), "cost_bps": self.config.cost_bps,
                        }
                    }
                    None if now >= target + self.config.unresolved_after => {
                        unresolved += 1;
                        doc! {
                            "resolved_at": bson::DateTime::from_chrono(now),
                            "unresolved": format!("no trade of {ticker} between made_at and target_at"),
                        }
                    }
                    None => continue,
                };
                coll.update_one(doc! {"_id": id, "outcome": bson::Bson::Null}, doc! {"$set": {"outcome": outcome}})
                    .await?;
            }
        }
        self.count(|m| &m.resolved, resolved as u64);
        self.count(|m| &m.unresolved, unresolved as u64);
        Ok((resolved, unresolved))
    }

    /// The ticks of the sessions around `now`, in order.
    pub fn schedule(&self, from: DateTime<Utc>, days: i64, horizon: Horizon) -> Vec<(DateTime<Utc>, Session)> {
        let d = Calendar::local_date(from);
        self.calendar
            .sessions(d - TimeDelta::days(1), d + TimeDelta::days(days))
            .into_iter()
            .flat_map(|s| decision_times(&s, self.config.every, horizon).into_iter().map(move |t| (t, s.clone())))
            .collect()
    }

    /// Ticks of the current session already passed at start, with no prediction made.
    async fn report_missed(&self, now: DateTime<Utc>, horizon: Horizon) -> Result<(), ModelError> {
        let passed: Vec<DateTime<Utc>> = self
            .schedule(now, 0, horizon)
            .into_iter()
            .filter(|(t, s)| *t + self.config.delay < now && s.open <= now && now < s.close)
            .map(|(t, _)| t)
            .collect();
        if passed.is_empty() {
            return Ok(());
        }
        let made: Vec<bson::Bson> = self
            .db
            .collection::<Document>(collections::PREDICTIONS)
            .distinct(
                "made_at",
                doc! {"model": &self.config.name, "made_at": {"$gte": bson::DateTime::from_chrono(passed[0])}},
            )
            .await?;
        let made: Vec<DateTime<Utc>> = made.iter().filter_map(|b| b.as_datetime().map(|d| d.to_chrono())).collect();
        let missed: Vec<DateTime<Utc>> = passed.into_iter().filter(|t| !made.contains(t)).collect();
        if let (Some(first), Some(last)) = (missed.first(), missed.last()) {
            self.events.emit(catalog::predict_missed(missed.len(), *first, *last));
        }
        Ok(())
    }

    /// Runs until `shutdown`: at each tick (plus `delay`) predict when the sources are on,
    /// then resolve what is due.
    pub async fn run(
        mut self,
        clock: Clock,
        tickers: tokio::sync::watch::Receiver<Vec<String>>,
        sources_on: tokio::sync::watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        self.refresh_model().await;
        let horizon =
            self.loaded.as_ref().map_or(Horizon::Minutes(self.config.every.num_minutes()), |(_, m)| m.horizon);
        if let Err(e) = self.report_missed(clock.now(), horizon).await {
            self.events.emit(catalog::predict_failed(format!("checking for missed ticks: {e}")));
        }
        let mut last: Option<DateTime<Utc>> = None;
        loop {
            let now = clock.now();
            // A model's horizon decides which ticks have their target in the session.
            let horizon = self.loaded.as_ref().map_or(horizon, |(_, m)| m.horizon);
            let next = self
                .schedule(now, 10, horizon)
                .into_iter()
                .map(|(t, _)| t)
                .find(|t| *t + self.config.delay >= now && last.is_none_or(|l| *t > l));
            let Some(next) = next else {
                tokio::select! {
                    _ = clock.sleep(TimeDelta::hours(1)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            };
            // Resolve what falls due before the next tick, then wait for it.
            loop {
                let wake = (clock.now() + TimeDelta::minutes(1)).min(next + self.config.delay);
                tokio::select! {
                    _ = clock.sleep_until(wake) => {}
                    _ = shutdown.cancelled() => return,
                }
                if let Err(e) = self.resolve(clock.now()).await {
                    self.events.emit(catalog::predict_failed(format!("resolving: {e}")));
                }
                if clock.now() >= next + self.config.delay {
                    break;
                }
            }
            last = Some(next);
            if !*sources_on.borrow() {
                self.events.emit(catalog::predict_skipped(next, "the manager has the data sources off"));
                continue;
            }
            let list = tickers.borrow().clone();
            match self.tick(next, &list).await {
                Ok(r) => tracing::info!(tick = %next, written = r.written, duplicates = r.duplicates, "tick"),
                Err(e) => self.events.emit(catalog::predict_failed(format!("tick {next}: {e}"))),
            }
        }
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        _ => e.to_string().contains("E11000"),
    }
}

/// Predictions of a model (or every model) made in `[from, to)`.
pub async fn load_predictions(
    db: &Database,
    model: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Document>, ModelError> {
    let mut filter =
        doc! {"made_at": {"$gte": bson::DateTime::from_chrono(from), "$lt": bson::DateTime::from_chrono(to)}};
    if let Some(m) = model {
        filter.insert("model", m);
    }
    Ok(db
        .collection::<Document>(collections::PREDICTIONS)
        .find(filter)
        .sort(doc! {"made_at": 1, "ticker": 1})
        .await?
        .try_collect()
        .await?)
}
