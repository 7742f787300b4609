//! The model commands of cashtag-analysis: `train`, `models`, `predict`, `evaluate`,
//! `backtest` — argument parsing and output; the work is in `cashtag-models`.

use std::path::PathBuf;

use cashtag_core::{Settings, Ticker, catalog};
use cashtag_models::ModelError;
use cashtag_models::features::{Horizon, select};
use cashtag_models::predictor::{PredictConfig, PredictMetrics, Predictor, load_predictions};
use cashtag_models::registry::Registry;
use cashtag_models::train::{TrainRequest, build_samples, load_rows, sessions, summary, version_for};
use cashtag_runtime::{Failure, Service};
use chrono::{NaiveDate, TimeDelta};
use clap::{Args, Subcommand};

const PREDICT_PORT: u16 = 9107;

/// What to learn from: the data, the horizon, the features, the fit.
#[derive(Args)]
pub struct ModelData {
    /// First New York session date of the history.
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Last session date (inclusive).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Comma-separated tickers (default: the watchlist without the market proxy).
    #[arg(long, value_delimiter = ',')]
    tickers: Vec<String>,
    /// 20m, 1h … (within the session) or 1d (close to next close).
    #[arg(long, default_value = "20m")]
    horizon: String,
    /// Decision times every this many minutes from the open (default: models.every_minutes;
    /// a 1d decision is taken once, at the close).
    #[arg(long)]
    every: Option<i64>,
    /// Feature window L in minutes (default: the horizon). A 1d decision's window is
    /// always the day since the previous session's close, the 1d study's day.
    #[arg(long)]
    lookback: Option<i64>,
    /// Thresholded labels: a move within ±this many basis points (log return) is neither
    /// up nor down, and such samples are left out of training and of the scores.
    #[arg(long, default_value_t = 0.0)]
    band_bps: f64,
    /// Comma-separated features (default: all).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// Ridge penalty λ (scikit-learn's C = 1/λ).
    #[arg(long, default_value_t = 1.0)]
    l2: f64,
    /// Significance level of the tests (promotion, the verdict).
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: ModelData,
    /// Model name (default: models.name).
    #[arg(long)]
    name: Option<String>,
    /// Walk-forward blocks.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Promote even when the model does not beat the baselines.
    #[arg(long)]
    promote_anyway: bool,
    /// Also write the model file here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Train and report only; upload nothing.
    #[arg(long)]
    no_publish: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every published version (`*` = promoted).
    List {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A version's model file (default: the promoted one).
    Show {
        version: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Make VERSION the model the predictor uses.
    Promote {
        version: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// First New York date of the predictions.
    #[arg(long)]
    from: NaiveDate,
    /// Last date (inclusive).
    #[arg(long)]
    to: NaiveDate,
    /// Model name (default: models.name).
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Output directory (default: <analysis.reports_dir>/evaluate-<model>-<from>-<to>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    data: ModelData,
    /// Held-out evaluation instead of the walk-forward: fit once on --train-from …
    /// --train-to, forecast --test-from … --test-to without retraining (with these four,
    /// no --from/--to).
    #[arg(long, requires_all = ["train_to", "test_from", "test_to"])]
    train_from: Option<NaiveDate>,
    #[arg(long, requires = "train_from")]
    train_to: Option<NaiveDate>,
    #[arg(long, requires = "train_from")]
    test_from: Option<NaiveDate>,
    #[arg(long, requires = "train_from")]
    test_to: Option<NaiveDate>,
    /// Retrain every session (1d) or every five sessions (1w).
    #[arg(long, default_value = "1d")]
    retrain_every: String,
    /// Sessions of history before the first forecast.
    #[arg(long, default_value_t = 5)]
    min_train_sessions: usize,
    /// Output directory (default: <analysis.reports_dir>/backtest-<from>-<to>-<horizon>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

fn input(e: impl std::fmt::Display) -> Failure {
    Failure::from(ModelError::Input(e.to_string()))
}

async fn registry(settings: &Settings) -> Registry {
    let s3 = cashtag_stores::s3::client_with_deadline(
        &settings.aws.region,
        &settings.aws.endpoint,
        std::time::Duration::from_secs(settings.models.s3_timeout_secs),
    )
    .await;
    Registry::new(s3, &settings.models.bucket, &settings.models.prefix)
}

fn market(settings: &Settings) -> Option<String> {
    let m = settings.models.market.trim();
    (!m.is_empty()).then(|| m.to_uppercase())
}

/// The tickers a command works on: `--tickers`, else the watchlist (`--watchlist FILE`,
/// else `CASHTAG_WATCHLIST_FILE`, else the built-in list — which one is said on stderr)
/// without the market proxy.
pub(crate) fn tickers(settings: &Settings, given: &[String], market: Option<&str>) -> Result<Vec<String>, Failure> {
    if given.is_empty() {
        let wl = settings.watchlist.load()?;
        let count = wl.tickers().len();
        if settings.watchlist.file.is_empty() {
            eprintln!(
                "watchlist: the built-in list ({count} tickers; --watchlist FILE or CASHTAG_WATCHLIST_FILE for another)"
            );
        } else {
            eprintln!("watchlist: {} ({count} tickers)", settings.watchlist.file);
        }
        return Ok(wl.tickers().into_iter().map(|t| t.to_string()).filter(|t| Some(t.as_str()) != market).collect());
    }
    given
        .iter()
        .map(|t| {
            t.trim_start_matches('$')
                .parse::<Ticker>()
                .map(|t| t.to_string())
                .map_err(|e| input(format!("--tickers: {e}")))
        })
        .collect()
}

fn request(settings: &Settings, c: &ModelData, name: String, folds: usize) -> Result<TrainRequest, Failure> {
    let horizon = Horizon::parse(&c.horizon)?;
    let (Some(from), Some(to)) = (c.from, c.to) else {
        return Err(input("--from and --to are required"));
    };
    if to < from {
        return Err(input(format!("--to {to} is before --from {from}")));
    }
    if !(c.alpha > 0.0 && c.alpha < 1.0 && c.l2 > 0.0 && c.l2.is_finite()) {
        return Err(input("--alpha must be in (0, 1) and --l2 positive"));
    }
    if !(c.band_bps >= 0.0 && c.band_bps < 10_000.0) {
        return Err(input("--band-bps must be in [0, 10000)"));
    }
    let every = match (horizon, c.every) {
        (Horizon::Day, Some(_)) => {
            return Err(input("--every is for intraday horizons: a 1d decision is taken once a session, at its close"));
        }
        // Once a session (the model file's every_minutes: a regular session's length).
        (Horizon::Day, None) => 390,
        (Horizon::Minutes(_), e) => e.unwrap_or(settings.models.every_minutes as i64),
    };
    let lookback = match (horizon, c.lookback) {
        (Horizon::Day, Some(_)) => {
            return Err(input(
                "--lookback is for intraday horizons: a 1d decision's window is the day since the previous session's close (the 1d study's day)",
            ));
        }
        (Horizon::Day, None) => cashtag_models::features::DAY_LOOKBACK_MAX.num_minutes(),
        (Horizon::Minutes(m), l) => l.unwrap_or(m),
    };
    if every <= 0 || lookback <= 0 {
        return Err(input("--every and --lookback must be positive"));
    }
    let market = market(settings);
    let calendar = cashtag_runtime::calendar(&settings.manager)?;
    let previous_close =
        calendar.sessions(from - TimeDelta::days(10), from.pred_opt().unwrap_or(from)).last().map(|s| s.close);
    Ok(TrainRequest {
        name,
        from,
        to,
        tickers: tickers(settings, &c.tickers, market.as_deref())?,
        market,
        horizon,
        every: TimeDelta::minutes(every),
        lookback: TimeDelta::minutes(lookback),
        features: select(&c.features)?,
        l2: c.l2,
        folds: folds.max(1),
        alpha: c.alpha,
        previous_close,
        notes: Vec::new(),
    })
}

/// The sessions and samples of a request; a missing market proxy drops `ret_market` and
/// thresholded labels leave samples out — both said on stderr, in the request's notes
/// (the model file) and, for the proxy, as an `analysis.fallback` event.
async fn samples(
    settings: &Settings,
    req: &mut TrainRequest,
    band_bps: f64,
) -> Result<(Vec<cashtag_calendar::Session>, Vec<cashtag_models::features::Sample>), Failure> {
    let calendar = cashtag_runtime::calendar(&settings.manager)?;
    let sessions = sessions(&calendar, req.from, req.to)?;
    let db = crate::database(settings).await?;
    let rows = load_rows(&db, &req.tickers, req.market.as_deref(), &sessions, req.window(), req.horizon).await?;
    let all = build_samples(&rows, &req.tickers, req.market.as_deref(), &sessions, &req.sample_spec());
    if let Some(note) = req.without_missing_market(&all)? {
        eprintln!("warning: {note}");
        emit(settings, vec![catalog::analysis_fallback(note)]).await;
    }
    let (all, dropped) = cashtag_models::features::thresholded(all, band_bps / 10_000.0);
    if band_bps > 0.0 {
        let note = format!(
            "thresholded labels: {dropped} samples with a move within ±{band_bps} bp left out of training and scoring"
        );
        eprintln!("{note}");
        req.notes.push(note);
    }
    Ok((sessions, all))
}

/// Emits events from a command (not a service): one bus, best effort, a few seconds at most.
pub(crate) async fn emit(settings: &Settings, drafts: Vec<cashtag_core::event::EventDraft>) {
    let Ok(clock) = settings.clock.clock() else { return };
    if let Ok(bus) = cashtag_bus::Bus::from_settings(settings, "analysis", clock) {
        for d in drafts {
            bus.emit(d);
        }
        bus.events().flush(std::time::Duration::from_secs(3)).await;
    }
}

pub async fn train(settings: &Settings, a: TrainArgs) -> Result<(), Failure> {
    let name = a.name.clone().unwrap_or_else(|| settings.models.name.clone());
    let mut req = request(settings, &a.data, name, a.folds)?;
    let (sessions, all) = samples(settings, &mut req, a.data.band_bps).await?;
    let now = settings.clock.clock()?.now();
    let model = cashtag_models::train::train(&req, &sessions, &all, version_for(now), now)?;
    if let Some(out) = &a.out {
        std::fs::write(out, model.to_bytes()).map_err(|e| input(format!("{}: {e}", out.display())))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&model).expect("serializes"));
    } else {
        print!("{}", summary(&model));
    }
    if a.no_publish {
        return Ok(());
    }
    let promote = model.cv.beats_baselines || a.promote_anyway;
    let by = if model.cv.beats_baselines { "train" } else { "train --promote-anyway" };
    let reg = registry(settings).await;
    let key = reg.publish(&model, promote.then_some(by)).await?;
    let why = model.cv.reasons.join("; ");
    let mut events = vec![catalog::model_published(&model.name, &model.version, &key, promote, &why)];
    if promote {
        events.push(catalog::model_promoted(&model.name, &model.version, by));
    }
    emit(settings, events).await;
    if !a.json {
        println!("uploaded s3://{}/{key}", reg.bucket());
        if promote {
            println!("promoted: {} now points at {}", reg.pointer_key(&model.name), model.version);
        } else {
            println!(
                "not promoted (it does not beat the baselines; --promote-anyway to promote it regardless, or `cashtag-analysis models promote {}`)",
                model.version
            );
        }
    }
    Ok(())
}

pub async fn models(settings: &Settings, c: ModelsCommand) -> Result<(), Failure> {
    let reg = registry(settings).await;
    let or_default = |n: Option<String>| n.unwrap_or_else(|| settings.models.name.clone());
    match c {
        ModelsCommand::List { name, json } => {
            let name = or_default(name);
            let list = reg.list(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).expect("serializes"));
            } else if list.is_empty() {
                println!("no versions of {name} in s3://{}/{}/{name}/", reg.bucket(), settings.models.prefix);
            } else {
                for l in &list {
                    println!(
                        "{} {}  {} bytes  s3://{}/{}",
                        if l.latest { "*" } else { " " },
                        l.version,
                        l.bytes,
                        reg.bucket(),
                        l.key
                    );
                }
                println!("{} version(s) tried", list.len());
            }
        }
        ModelsCommand::Show { version, name } => {
            let name = or_default(name);
            let model = match version.as_deref() {
                None | Some("latest") => match reg.latest(&name).await? {
                    Some((_, m)) => m,
                    None => return Err(Failure::from(ModelError::NotFound(format!("{name} has no promoted version")))),
                },
                Some(v) => reg.model(&name, v).await?.0,
            };
            println!("{}", serde_json::to_string_pretty(&model).expect("serializes"));
        }
        ModelsCommand::Promote { version, name } => {
            let name = or_default(name);
            let p = reg.promote(&name, &version, "promote").await?;
            emit(settings, vec![catalog::model_promoted(&name, &version, "promote")]).await;
            println!("promoted {name} {} (sha256 {})", p.version, p.sha256);
        }
    }
    Ok(())
}

pub async fn predict(settings: &Settings) -> Result<(), Failure> {
    let mut svc = Service::start(
        "predict",
        settings,
        format!("predictions of {} every {} min", settings.models.name, settings.models.every_minutes),
    )?;
    svc.serve(PREDICT_PORT, axum::Router::new()).await?;
    svc.heartbeat(|| serde_json::Value::Null);
    let db = crate::database(settings).await?;
    svc.watch_mongo(&db);
    if let Err(e) = cashtag_analysis_core::rollup::ensure_indexes(&db).await {
        svc.bus.emit(catalog::rollup_indexes(&e));
    }
    let mut predictor = Predictor::new(
        db,
        registry(settings).await,
        svc.bus.emitter(),
        cashtag_runtime::calendar(&settings.manager)?,
        PredictConfig {
            name: settings.models.name.clone(),
            every: TimeDelta::minutes(settings.models.every_minutes as i64),
            margin: settings.models.margin,
            cost_bps: settings.models.cost_bps,
            market: market(settings),
            delay: TimeDelta::seconds(settings.models.delay_secs as i64),
            unresolved_after: TimeDelta::minutes(settings.models.unresolved_after_minutes as i64),
            instance: settings.instance(),
        },
    );
    predictor.metrics = Some(PredictMetrics::register(&svc.telemetry));
    let fallback = settings.watchlist.load()?;
    let watch = svc.bus.watch_watchlist(fallback);
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let shutdown = svc.shutdown.clone();
    tokio::spawn(forward_watchlist(watch, tx, shutdown.clone()));
    predictor.run(svc.clock.clone(), rx, svc.bus.watch_sources_on(), shutdown).await;
    svc.stop("predictor stopped").await;
    Ok(())
}

/// The watched tickers as the manager publishes them (the market proxy among them is
/// never predicted).
async fn forward_watchlist(
    mut watch: tokio::sync::watch::Receiver<cashtag_core::Watchlist>,
    tx: tokio::sync::watch::Sender<Vec<String>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let list: Vec<String> = watch.borrow_and_update().tickers().into_iter().map(|t| t.to_string()).collect();
        tx.send_replace(list);
        tokio::select! {
            r = watch.changed() => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

fn ny_range(
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>), Failure> {
    let end = to.succ_opt().ok_or_else(|| input("date out of range"))?;
    Ok((cashtag_calendar::local(from, chrono::NaiveTime::MIN), cashtag_calendar::local(end, chrono::NaiveTime::MIN)))
}

pub async fn evaluate(settings: &Settings, a: EvaluateArgs) -> Result<(), Failure> {
    let name = a.model.unwrap_or_else(|| settings.models.name.clone());
    let (from, to) = ny_range(a.from, a.to)?;
    let db = crate::database(settings).await?;
    let docs = load_predictions(&db, Some(&name), from, to).await?;
    let (outcomes, unresolved) = cashtag_models::track::outcomes_from_predictions(&docs);
    let trials = match registry(settings).await.list(&name).await {
        Ok(l) => l.len().max(1),
        Err(e) => {
            eprintln!("warning: cannot count the variants tried ({e}); the deflated Sharpe assumes 1");
            1
        }
    };
    let per_year = 252.0 * (390 / settings.models.every_minutes.max(1)) as f64;
    let record = cashtag_models::track::track_record(&outcomes, unresolved, settings.models.cost_bps, per_year, trials);
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(&settings.analysis.reports_dir).join(format!("evaluate-{name}-{}-{}", a.from, a.to))
    });
    let title = format!("Track record of {name}, {} to {} ({} predictions stored)", a.from, a.to, docs.len());
    let results = serde_json::to_value(&record).expect("serializes");
    cashtag_models::track::write(&out, &record, &results, &title, a.alpha, "")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&record).expect("serializes"));
    } else {
        println!("{}", cashtag_models::track::verdict(&record, a.alpha));
        println!("report: {}", out.join("report.html").display());
    }
    Ok(())
}

pub async fn backtest(settings: &Settings, mut a: BacktestArgs) -> Result<(), Failure> {
    let retrain = match a.retrain_every.as_str() {
        "1d" => 1,
        "1w" => 5,
        other => return Err(input(format!("--retrain-every {other:?}: 1d or 1w"))),
    };
    let held_out = match (a.train_from, a.train_to, a.test_from, a.test_to) {
        (Some(tf), Some(tt), Some(sf), Some(st)) => {
            if a.data.from.is_some() || a.data.to.is_some() {
                return Err(input(
                    "--from/--to are for the walk-forward; a held-out evaluation takes --train-from … --test-to",
                ));
            }
            if tt < tf || st < sf || sf <= tt {
                return Err(input(format!(
                    "--train-from {tf} --train-to {tt} must come before --test-from {sf} --test-to {st}, each in order"
                )));
            }
            a.data.from = Some(tf);
            a.data.to = Some(st);
            Some((tt, sf))
        }
        _ => None,
    };
    let mut req = request(settings, &a.data, "backtest".into(), 1)?;
    let (sessions, all) = samples(settings, &mut req, a.data.band_bps).await?;
    let spec = cashtag_models::BacktestSpec {
        retrain_every: retrain,
        min_train_sessions: a.min_train_sessions,
        margin: settings.models.margin,
        cost_bps: settings.models.cost_bps,
        trials: 1,
    };
    let features = req.features.iter().map(|f| f.name).collect::<Vec<_>>().join(",");
    let (bt, title, default_dir) = match held_out {
        Some((train_to, test_from)) => {
            let split = sessions.iter().position(|s| s.date > train_to).unwrap_or(sessions.len());
            let start = sessions.iter().position(|s| s.date >= test_from).unwrap_or(sessions.len());
            let bt = cashtag_models::holdout(&req, &sessions, &all, (0, split), (start, sessions.len()), &spec)?;
            let title = format!(
                "Held-out evaluation, horizon {}: fitted once on {} to {} ({} samples), tested on {} to {} ({} forecasts) without retraining, {} tickers, features {features}",
                req.horizon,
                req.from,
                train_to,
                bt.evaluation.blocks[0].train,
                test_from,
                req.to,
                bt.evaluation.model.n,
                req.tickers.len(),
            );
            (bt, title, format!("holdout-{}-{train_to}-{test_from}-{}-{}", req.from, req.to, req.horizon))
        }
        None => {
            let bt = cashtag_models::backtest(&req, &sessions, &all, &spec)?;
            let title = format!(
                "Walk-forward backtest {} to {}, horizon {}, retrained every {}, {} tickers, features {features}",
                req.from,
                req.to,
                req.horizon,
                a.retrain_every,
                req.tickers.len(),
            );
            (bt, title, format!("backtest-{}-{}-{}", req.from, req.to, req.horizon))
        }
    };
    let out = a.out.unwrap_or_else(|| PathBuf::from(&settings.analysis.reports_dir).join(default_dir));
    let mut extra = String::from(
        "\n## Against the baselines, same forecasts\n\n| | accuracy | MCC | AUC | Brier | log loss |\n|---|---|---|---|---|---|\n",
    );
    for (n, s) in std::iter::once(("model".to_string(), bt.evaluation.model.clone()))
        .chain(bt.evaluation.baselines.iter().cloned())
    {
        extra.push_str(&format!(
            "| {n} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
            s.accuracy, s.mcc, s.roc_auc, s.brier, s.log_loss
        ));
    }
    for n in &req.notes {
        extra.push_str(&format!("\nNote: {n}\n"));
    }
    let results =
        serde_json::json!({"title": title, "record": bt.record, "evaluation": bt.evaluation, "notes": req.notes});
    cashtag_models::track::write(&out, &bt.record, &results, &title, req.alpha, &extra)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results).expect("serializes"));
    } else {
        println!("{}", cashtag_models::track::verdict(&bt.record, req.alpha));
        println!("{title}");
        print!("{}", cashtag_models::train::scores_table(&bt.evaluation));
        print!("{}", cashtag_models::train::verdict_lines(&bt.evaluation));
        println!("report: {}", out.join("report.html").display());
    }
    Ok(())
}
