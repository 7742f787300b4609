//! The loop against the real MongoDB-wire server, Redis and the S3 emulator: simulated
//! trades and posts stored as the fetchers store them, rolled up, a model trained from
//! the database and published; then the predictor through a whole early-close session
//! on a manual clock — predictions exactly at the ticks and never outside the session,
//! a model promoted mid-day used from the next tick, S3 cut off (predictions go on with
//! the loaded model, one event), a refused model (the previous one stays), a restart
//! (nothing duplicated, missed ticks reported and not made) — and every prediction
//! resolved after its target with the outcome the trades say.

use std::time::Duration;

use bson::{Document, doc};
use cashtag_bus::{Bus, ControlCommand, ControlState, Identity};
use cashtag_calendar::Calendar;
use cashtag_core::{Clock, Record, catalog, collections};
use cashtag_models::features::{FEATURES, Horizon, decision_times};
use cashtag_models::predictor::{PredictConfig, Predictor, net_pnl};
use cashtag_models::registry::Registry;
use cashtag_models::train::{TrainRequest, build_samples, load_rows, sessions, train};
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index};
use cashtag_sinks::Sink;
use cashtag_sinks::mongo::MongoSink;
use cashtag_testkit::fault::{Fault, FaultProxy};
use cashtag_testkit::{aws_endpoint, eventually, mongo_uri, redis_url, unique};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

const TICKERS: [&str; 4] = ["AAPL", "MSFT", "NVDA", "SPY"];

async fn store_sim(db: &mongodb::Database, from: DateTime<Utc>, to: DateTime<Utc>) {
    let sim = Sim::new(SimParams {
        seed: 5,
        strength: 1.0,
        trades_per_minute: 2.0,
        posts_per_minute: 0.7,
        ..Default::default()
    });
    let scorer = Scorer::new();
    let mut recs = sim.records(&TICKERS, minute_index(from)..minute_index(to));
    recs.retain(|r| !matches!(r, Record::Quote(_)));
    for r in &mut recs {
        if let Record::Post(p) = r {
            let t: Vec<&str> = p.tickers.iter().map(|t| t.as_str()).collect();
            p.sentiment = Some(scorer.score_post(&p.text, &t, None));
        }
    }
    let mut sink = MongoSink::new(db.client(), db.name());
    for chunk in recs.chunks(20_000) {
        sink.write(chunk).await.map_err(|e| e.reason).unwrap();
    }
}

fn request(l2: f64) -> TrainRequest {
    TrainRequest {
        name: "loop".into(),
        from: "2026-11-19".parse().unwrap(),
        to: "2026-11-25".parse().unwrap(),
        tickers: TICKERS.iter().map(|t| t.to_string()).collect(),
        market: Some("SPY".into()),
        horizon: Horizon::Minutes(20),
        every: TimeDelta::minutes(20),
        lookback: TimeDelta::minutes(20),
        features: FEATURES.to_vec(),
        l2,
        folds: 3,
        alpha: 0.05,
        previous_close: None,
        notes: vec![],
    }
}

async fn registry(endpoint: &str, bucket: &str) -> Registry {
    let s3 = cashtag_stores::s3::client_with_deadline("us-east-1", endpoint, Duration::from_secs(2)).await;
    Registry::new(s3, bucket, "models")
}

async fn events(bus: &Bus, code: &str) -> Vec<cashtag_core::Event> {
    bus.events().flush(Duration::from_secs(3)).await;
    bus.peek_events(10_000).await.unwrap().into_iter().filter(|e| e.code == code).collect()
}

async fn predictions(db: &mongodb::Database) -> Vec<Document> {
    db.collection::<Document>(collections::PREDICTIONS)
        .find(doc! {})
        .sort(doc! {"made_at": 1, "ticker": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn train_publish_predict_resolve_through_an_early_close_day() {
    let client = cashtag_stores::mongo::connect(&mongo_uri(), "test").await.unwrap();
    let db = client.database(&unique("loop"));
    let cal = Calendar::nyse();
    // Five sessions of history (Thanksgiving closed), and the early-close day after it.
    let train_sessions = sessions(&cal, "2026-11-19".parse().unwrap(), "2026-11-25".parse().unwrap()).unwrap();
    let day = cal.session("2026-11-27".parse().unwrap()).unwrap();
    assert_eq!(day.close - day.open, TimeDelta::minutes(210), "13:00 close");
    for s in train_sessions.iter().chain([&day]) {
        store_sim(&db, s.open - TimeDelta::minutes(30), s.close).await;
    }
    cashtag_analysis_core::rollup::ensure_indexes(&db).await.unwrap();
    for s in &train_sessions {
        cashtag_analysis_core::rollup::rollup_range(&db, s.open - TimeDelta::minutes(30), s.close).await.unwrap();
    }

    // Train from the database; publish v1 (promoted) and keep v2 for later.
    let req = request(1.0);
    let rows = load_rows(&db, &req.tickers, Some("SPY"), &train_sessions, req.lookback, req.horizon).await.unwrap();
    let samples = build_samples(&rows, &req.tickers, Some("SPY"), &train_sessions, &req.sample_spec());
    assert_eq!(samples.len(), 3 * 5 * 18, "3 tickers × 5 sessions × 18 ticks (9:50 … 15:30)");
    let v1 = train(&req, &train_sessions, &samples, "v1".into(), Utc::now()).unwrap();
    let v2 = train(&request(50.0), &train_sessions, &samples, "v2".into(), Utc::now()).unwrap();
    assert_ne!(v1.coefficients, v2.coefficients);
    assert_eq!(v1.training_sha256, v2.training_sha256, "same data, same hash");

    let endpoint = aws_endpoint();
    let bucket = unique("models");
    let direct = registry(&endpoint, &bucket).await;
    let s3 = cashtag_stores::s3::client("us-east-1", &endpoint).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    direct.publish(&v1, Some("train")).await.unwrap();
    assert!(direct.publish(&v1, None).await.is_err(), "a version is never overwritten");

    // The predictor reads S3 through a proxy that can cut it off.
    let upstream = cashtag_testkit::server_addr(&endpoint);
    let proxy = FaultProxy::start(upstream);
    let prefix = unique("t-predict");
    let identity = Identity { service: "predict".into(), instance: "p1".into() };
    let clock = Clock::manual(day.open - TimeDelta::minutes(30));
    let bus = Bus::open(&redis_url(), &prefix, identity, clock.clone(), 100_000).unwrap();
    bus.publish_control(&ControlState { cmd: ControlCommand::Start, reason: "test".into(), at: Utc::now() })
        .await
        .unwrap();
    let config = PredictConfig {
        name: "loop".into(),
        every: TimeDelta::minutes(20),
        margin: 0.02,
        cost_bps: 1.0,
        market: Some("SPY".into()),
        delay: TimeDelta::seconds(5),
        unresolved_after: TimeDelta::minutes(60),
        instance: "p1".into(),
    };
    let tickers: Vec<String> = TICKERS.iter().map(|t| t.to_string()).collect();
    let (_tx, watch) = tokio::sync::watch::channel(tickers.clone());
    let through_proxy = registry(&proxy.url_for(&endpoint, upstream), &bucket).await;
    let start = |shutdown: CancellationToken| {
        let p = Predictor::new(db.clone(), through_proxy.clone(), bus.emitter(), cal.clone(), config.clone());
        tokio::spawn(p.run(clock.clone(), watch.clone(), bus.watch_sources_on(), shutdown))
    };
    let expected = decision_times(&day, TimeDelta::minutes(20), Horizon::Minutes(20));
    assert_eq!(expected.len(), 9, "9:50 … 12:30: the 12:50 tick's target is after the 13:00 close");

    let made_at = |d: &Document| d.get_datetime("made_at").unwrap().to_chrono();
    let at_tick = |t: DateTime<Utc>| {
        let db = db.clone();
        async move {
            eventually(Duration::from_secs(30), || {
                let db = db.clone();
                async move {
                    let n = db
                        .collection::<Document>(collections::PREDICTIONS)
                        .count_documents(doc! {"made_at": bson::DateTime::from_chrono(t)})
                        .await
                        .unwrap();
                    (n == 3).then_some(())
                }
            })
            .await
            .unwrap_or_else(|| panic!("no 3 predictions at {t}"));
        }
    };
    let mut shutdown = CancellationToken::new();
    let mut task = start(shutdown.clone());
    for (i, t) in expected.iter().enumerate() {
        match i {
            // Mid-day: v2 is promoted after the third tick; it is used from the fourth.
            3 => {
                direct.publish(&v2, Some("promote")).await.unwrap();
            }
            // S3 cut off: the loaded model goes on.
            5 => proxy.set(Fault::Blackhole),
            // S3 back, with a pointer to a version that does not exist: refused, v2 stays.
            6 => {
                proxy.set(Fault::Pass);
                let mut p = direct.pointer("loop").await.unwrap().unwrap();
                p.version = "v9".into();
                s3.put_object()
                    .bucket(&bucket)
                    .key(direct.pointer_key("loop"))
                    .body(serde_json::to_vec(&p).unwrap().into())
                    .send()
                    .await
                    .unwrap();
            }
            // A restart: the predictor stops before the 8th tick and comes back after it
            // (to a good pointer again).
            7 => {
                direct.promote("loop", "v2", "test").await.unwrap();
                shutdown.cancel();
                task.await.unwrap();
                clock.set(*t + TimeDelta::minutes(10));
                shutdown = CancellationToken::new();
                task = start(shutdown.clone());
                continue;
            }
            _ => {}
        }
        clock.set(*t + TimeDelta::seconds(5));
        at_tick(*t).await;
    }
    // Through the close and past the last target: everything resolves, nothing new.
    for m in 0..120 {
        clock.set(day.close - TimeDelta::minutes(30) + TimeDelta::minutes(m));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resolved = eventually(Duration::from_secs(30), || {
        let db = db.clone();
        async move {
            let all = predictions(&db).await;
            all.iter().all(|p| p.get_document("outcome").is_ok()).then_some(all)
        }
    })
    .await
    .expect("every prediction resolved after its target");
    shutdown.cancel();
    task.await.unwrap();

    // Exactly at the ticks, except the one missed while down; never outside the session.
    let mut made: Vec<DateTime<Utc>> = resolved.iter().map(made_at).collect();
    made.dedup();
    let mut want = expected.clone();
    want.remove(7);
    assert_eq!(made, want);
    assert_eq!(resolved.len(), 8 * 3, "three tickers (SPY is the market proxy, not predicted)");
    assert!(resolved.iter().all(|p| p.get_str("ticker").unwrap() != "SPY"));
    for p in &resolved {
        let i = expected.iter().position(|t| *t == made_at(p)).unwrap();
        assert_eq!(p.get_str("version").unwrap(), if i < 3 { "v1" } else { "v2" }, "tick {i}");
        assert_eq!(p.get_datetime("target_at").unwrap().to_chrono(), made_at(p) + TimeDelta::minutes(20));
    }
    let refused = events(&bus, catalog::PREDICT_MODEL_REFUSED).await;
    assert_eq!(refused.len(), 1, "one event for the bad pointer: {refused:?}");
    assert_eq!(events(&bus, catalog::PREDICT_MODEL_STALE).await.len(), 1, "one event for S3 away");
    let missed = events(&bus, catalog::PREDICT_MISSED).await;
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].fields.get("count").and_then(|v| v.as_u64()), Some(1));
    assert_eq!(events(&bus, catalog::PREDICT_MODEL_LOADED).await.len(), 3, "v1, v2, and v2 again after the restart");

    // A second replica at a tick already made writes nothing.
    let mut replica =
        Predictor::new(db.clone(), registry(&endpoint, &bucket).await, bus.emitter(), cal.clone(), config.clone());
    let r = replica.tick(expected[4], &tickers).await.unwrap();
    assert_eq!((r.written, r.duplicates), (0, 3));
    assert_eq!(predictions(&db).await.len(), 24);

    // The outcomes are what the trades say (read once; the last trade before an instant).
    let mut trades: Vec<(String, DateTime<Utc>, i64, f64)> = db
        .collection::<Document>(collections::TRADES)
        .find(doc! {"ts": {"$gte": bson::DateTime::from_chrono(day.open - TimeDelta::minutes(30))}})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            let seq = d.get_i64("seq").or_else(|_| d.get_i32("seq").map(i64::from)).unwrap_or(0);
            (
                d.get_str("ticker").unwrap().to_string(),
                d.get_datetime("ts").unwrap().to_chrono(),
                seq,
                d.get_f64("price").unwrap(),
            )
        })
        .collect();
    trades.sort_by_key(|a| (a.1, a.2));
    let last_before =
        |ticker: String, t: DateTime<Utc>| trades.iter().rev().find(|x| x.0 == ticker && x.1 < t).map(|x| x.3).unwrap();
    for p in &resolved {
        let ticker = p.get_str("ticker").unwrap().to_string();
        let t = made_at(p);
        let reference = last_before(ticker.clone(), t);
        let target = last_before(ticker.clone(), t + TimeDelta::minutes(20));
        assert_eq!(p.get_f64("reference_price").unwrap(), reference, "{ticker} {t}");
        let o = p.get_document("outcome").unwrap();
        let ret = (target / reference).ln();
        assert!((o.get_f64("log_return").unwrap() - ret).abs() < 1e-15);
        let pos = p.get_i32("position").unwrap();
        assert!((o.get_f64("pnl").unwrap() - net_pnl(pos, ret, 1.0)).abs() < 1e-15);
        assert_eq!(o.get_bool("hit").unwrap(), (p.get_f64("p_up").unwrap() > 0.5) == (ret > 0.0));
        let spy = (last_before("SPY".into(), t + TimeDelta::minutes(20)) / last_before("SPY".into(), t)).ln();
        assert!((o.get_f64("excess_return").unwrap() - (ret - spy)).abs() < 1e-12);
    }

    // A prediction whose price never arrives is marked unresolved, with the reason, once
    // `unresolved_after` has passed — not before.
    db.collection::<Document>(collections::PREDICTIONS)
        .insert_one(doc! {
            "_id": "loop:v2:ZZZZ:x", "model": "other", "version": "v2", "ticker": "ZZZZ", "position": 1, "p_up": 0.9,
            "made_at": bson::DateTime::from_chrono(expected[8]), "reference_price": 10.0,
            "target_at": bson::DateTime::from_chrono(expected[8] + TimeDelta::minutes(20)), "outcome": bson::Bson::Null,
        })
        .await
        .unwrap();
    assert_eq!(replica.resolve(expected[8] + TimeDelta::minutes(30)).await.unwrap(), (0, 0), "still waiting");
    assert_eq!(replica.resolve(expected[8] + TimeDelta::minutes(90)).await.unwrap(), (0, 1));
    let late = db
        .collection::<Document>(collections::PREDICTIONS)
        .find_one(doc! {"_id": "loop:v2:ZZZZ:x"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        late.get_document("outcome").unwrap().get_str("unresolved").unwrap(),
        "no trade of ZZZZ between made_at and target_at"
    );

    // evaluate: the day's live track record from the stored predictions.
    let stored =
        cashtag_models::predictor::load_predictions(&db, Some("loop"), day.open, day.close + TimeDelta::hours(1))
            .await
            .unwrap();
    let (outcomes, unresolved) = cashtag_models::track::outcomes_from_predictions(&stored);
    assert_eq!((outcomes.len(), unresolved), (24, 0));
    let record = cashtag_models::track::track_record(&outcomes, unresolved, 1.0, 252.0 * 18.0, 2);
    let hits = outcomes.iter().filter(|o| (o.p > 0.5) == (o.ret > 0.0)).count();
    assert_eq!(record.scores.hits, hits);
    println!("{}", cashtag_models::track::verdict(&record, 0.05));
}
