//! Training and backtesting on simulated markets: with sentiment planted to lead returns
//! the model beats every baseline out of sample (p < 0.01), is promotable, and the
//! backtest makes money after costs; with no effect it is (nearly always) not promotable
//! — its rate over seeds stays near α — and the backtest does not make money beyond chance.
//!
//! The minute rows are built as the roll-ups build them (posts scored by the finance
//! scorer, closes from the simulated prices), without the database in between; the
//! database path has its own test (`registry.rs`).

use cashtag_analysis_core::series::{MinuteRow, Rows};
use cashtag_calendar::{Calendar, Session};
use cashtag_core::SentimentLabel;
use cashtag_models::features::{FEATURES, Horizon, Sample};
use cashtag_models::train::{TrainRequest, build_samples, train};
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index, minute_start};
use chrono::{TimeDelta, Utc};

fn rows(sim: &Sim, scorer: &Scorer, tickers: &[String], sessions: &[Session]) -> Rows {
    let mut out = Rows::new();
    for t in tickers {
        let r = out.entry(t.clone()).or_default();
        for s in sessions {
            for m in minute_index(s.open - TimeDelta::minutes(60))..minute_index(s.close) {
                let mut row = MinuteRow::default();
                if m >= minute_index(s.open) {
                    row.close = Some(sim.price(t, m));
                }
                for p in sim.posts(t, m, &[]) {
                    let f = scorer.finance(&p.text, &[t.as_str()]);
                    row.posts += 1.0;
                    row.authors += 1.0;
                    row.finance_sum += f.score;
                    match f.label {
                        SentimentLabel::Bullish => row.bullish += 1.0,
                        SentimentLabel::Bearish => row.bearish += 1.0,
                        SentimentLabel::Neutral => {}
                    }
                }
                r.insert(minute_start(m), row);
            }
        }
    }
    out
}

fn spec() -> cashtag_models::BacktestSpec {
    cashtag_models::BacktestSpec { retrain_every: 1, min_train_sessions: 3, margin: 0.02, cost_bps: 1.0, trials: 1 }
}

fn request(tickers: &[String], from: &str, to: &str) -> TrainRequest {
    TrainRequest {
        name: "test".into(),
        from: from.parse().unwrap(),
        to: to.parse().unwrap(),
        tickers: tickers.to_vec(),
        market: Some("SPY".into()),
        horizon: Horizon::Minutes(20),
        every: TimeDelta::minutes(20),
        lookback: TimeDelta::minutes(20),
        features: FEATURES.to_vec(),
        l2: 1.0,
        folds: 5,
        alpha: 0.05,
        previous_close: None,
        notes: vec![],
    }
}

fn data(params: SimParams, n: usize, from: &str, to: &str) -> (TrainRequest, Vec<Session>, Vec<Sample>) {
    let sim = Sim::new(params);
    let scorer = Scorer::new();
    let mut tickers: Vec<String> = (0..n).map(|i| format!("T{i:02}")).collect();
    tickers.push("SPY".into());
    let sessions = Calendar::nyse().sessions(from.parse().unwrap(), to.parse().unwrap());
    let rows = rows(&sim, &scorer, &tickers, &sessions);
    let req = request(&tickers, from, to);
    let samples = build_samples(&rows, &tickers, Some("SPY"), &sessions, &req.sample_spec());
    (req, sessions, samples)
}

#[test]
fn a_planted_effect_is_found_promoted_and_makes_money() {
    let params = SimParams { seed: 11, strength: 1.0, posts_per_minute: 2.0, ..Default::default() };
    let (req, sessions, samples) = data(params, 8, "2026-10-05", "2026-10-23");
    let m = train(&req, &sessions, &samples, "v1".into(), Utc::now()).unwrap();
    println!("{}", cashtag_models::train::summary(&m));
    let cv = &m.cv;
    assert!(cv.beats_baselines, "{:?}", cv.reasons);
    assert!(cv.binomial_p < 0.01, "p = {}", cv.binomial_p);
    for (name, b) in &cv.baselines {
        assert!(cv.model.roc_auc > b.roc_auc, "AUC {} vs {name} {}", cv.model.roc_auc, b.roc_auc);
    }
    let sent = m.features.iter().position(|f| f.name == "sent_level").unwrap();
    assert!(m.coefficients[sent] > 0.0, "positive sentiment → up: {:?}", m.coefficients);
    let bt = cashtag_models::backtest(&req, &sessions, &samples, &spec()).unwrap();
    println!("{}", cashtag_models::track::verdict(&bt.record, 0.05));
    assert!(
        bt.record.pnl > 0.0 && bt.record.pnl > bt.record.buy_and_hold,
        "P&L {} vs {}",
        bt.record.pnl,
        bt.record.buy_and_hold
    );
    assert!(bt.record.sharpe.probabilistic > 0.99, "{:?}", bt.record.sharpe);
    assert!(cashtag_models::track::verdict(&bt.record, 0.05).starts_with("Yes"));
}

#[test]
fn no_effect_is_rarely_promoted() {
    let seeds = 10;
    let mut promoted = 0;
    let mut money = 0;
    for seed in 0..seeds {
        let params = SimParams { seed: 100 + seed, strength: 0.0, posts_per_minute: 1.0, ..Default::default() };
        let (req, sessions, samples) = data(params, 5, "2026-10-05", "2026-10-16");
        let m = train(&req, &sessions, &samples, format!("v{seed}"), Utc::now()).unwrap();
        println!(
            "seed {seed}: p {:.3} acc {:.4} auc {:.4} promoted {}",
            m.cv.binomial_p, m.cv.model.accuracy, m.cv.model.roc_auc, m.cv.beats_baselines
        );
        promoted += usize::from(m.cv.beats_baselines);
        let bt = cashtag_models::backtest(&req, &sessions, &samples, &spec()).unwrap();
        money += usize::from(cashtag_models::track::verdict(&bt.record, 0.05).starts_with("Yes"));
    }
    println!("no effect: {promoted} of {seeds} promoted, {money} of {seeds} backtests say Yes");
    // α = 0.05: about one in twenty; two of ten would already be unlikely (p ≈ 0.09).
    assert!(promoted <= 2, "{promoted} of {seeds} no-effect models promoted");
    assert!(money <= 2, "{money} of {seeds} no-effect backtests say it makes money");
}

#[test]
fn a_held_out_window_judges_a_model_fitted_once_on_an_earlier_one() {
    let params = SimParams { seed: 11, strength: 1.0, posts_per_minute: 2.0, ..Default::default() };
    let (req, sessions, samples) = data(params, 8, "2026-10-05", "2026-10-23");
    let (train, test) = ((0, 10), (11, sessions.len()));
    let bt = cashtag_models::holdout(&req, &sessions, &samples, train, test, &spec()).unwrap();
    let e = &bt.evaluation;
    println!("{}", cashtag_models::train::scores_table(e));
    assert_eq!(e.blocks.len(), 1, "fitted once");
    assert_eq!(e.blocks[0].train, samples.iter().filter(|s| s.session < 10).count(), "every training sample");
    assert_eq!(e.model.n, samples.iter().filter(|s| s.session >= 11).count(), "every test sample, no other");
    assert!(e.model.mcc > 0.1 && e.model.roc_auc > 0.55, "the planted effect holds out of sample: {:?}", e.model);
    assert!(e.beats_baselines, "{:?}", e.reasons);
    // One definition of the last-move baseline: its accuracy in the scores is the hit rate
    // of the rule in the track record, on the same rows.
    let scored = e.baselines.iter().find(|(n, _)| n == "last_move").unwrap().1.accuracy;
    let traded = bt.record.baselines.iter().find(|b| b.name == "last_move").unwrap().hit_rate;
    assert_eq!(scored, traded);
    // The test window's labels do not reach the fit: turning them around turns the hits
    // (of the moves that have a direction: an unchanged price is "not up" either way).
    let (moved, _) = cashtag_models::features::thresholded(samples, 1e-12);
    let e = cashtag_models::holdout(&req, &sessions, &moved, train, test, &spec()).unwrap().evaluation;
    let flipped: Vec<Sample> = moved
        .iter()
        .cloned()
        .map(|mut s| {
            if s.session >= 11 {
                s.ret = -s.ret;
            }
            s
        })
        .collect();
    let f = cashtag_models::holdout(&req, &sessions, &flipped, train, test, &spec()).unwrap();
    assert_eq!(f.evaluation.model.hits + e.model.hits, e.model.n, "the same forecasts, opposite labels");
    // The test window must come after the training window.
    assert!(cashtag_models::holdout(&req, &sessions, &moved, (5, 12), (11, 14), &spec()).is_err());
}

#[test]
fn the_last_move_baseline_is_one_rule_in_the_walk_forward_and_the_track_record() {
    for seed in [3, 4, 5] {
        let params = SimParams { seed, strength: 0.0, posts_per_minute: 1.0, ..Default::default() };
        let (req, sessions, samples) = data(params, 5, "2026-10-05", "2026-10-16");
        let bt = cashtag_models::backtest(&req, &sessions, &samples, &spec()).unwrap();
        let scored = bt.evaluation.baselines.iter().find(|(n, _)| n == "last_move").unwrap().1.accuracy;
        let traded = bt.record.baselines.iter().find(|b| b.name == "last_move").unwrap().hit_rate;
        assert_eq!(scored, traded, "seed {seed}");
    }
}

#[test]
fn without_market_prices_the_market_feature_is_dropped_and_the_model_says_so() {
    let params = SimParams { seed: 11, strength: 1.0, posts_per_minute: 2.0, ..Default::default() };
    let sim = Sim::new(params);
    let tickers: Vec<String> = (0..5).map(|i| format!("T{i:02}")).collect();
    let sessions = Calendar::nyse().sessions("2026-10-05".parse().unwrap(), "2026-10-16".parse().unwrap());
    // The proxy SPY is asked for, but has no rows.
    let rows = rows(&sim, &Scorer::new(), &tickers, &sessions);
    let mut req = request(&tickers, "2026-10-05", "2026-10-16");
    let samples = build_samples(&rows, &tickers, Some("SPY"), &sessions, &req.sample_spec());
    let note = req.without_missing_market(&samples).unwrap().expect("a note");
    assert!(note.contains("SPY has no prices"), "{note}");
    assert!(req.market.is_none() && !req.features.iter().any(|f| f.name == "ret_market"));
    assert!(!req.fit_spec().price_features().iter().any(|f| f.name == "ret_market"));
    let m = train(&req, &sessions, &samples, "v1".into(), Utc::now()).unwrap();
    assert!(!m.features.iter().any(|f| f.name == "ret_market"), "{:?}", m.features);
    assert!(m.notes.iter().any(|n| n.contains("ret_market dropped")), "{:?}", m.notes);
    // With the proxy's prices the feature stays.
    let mut with = request(&tickers, "2026-10-05", "2026-10-16");
    let mut all = tickers.clone();
    all.push("SPY".into());
    let rows = self::rows(&sim, &Scorer::new(), &all, &sessions);
    let samples = build_samples(&rows, &tickers, Some("SPY"), &sessions, &with.sample_spec());
    assert_eq!(with.without_missing_market(&samples).unwrap(), None);
    assert!(with.features.iter().any(|f| f.name == "ret_market"));
}
