//! cashtag's model against scikit-learn (fixture from parity/generate.py): a model file
//! holding scikit-learn's scaler and coefficients predicts `predict_proba` to 1e-9, and
//! cashtag's own fit finds scikit-learn's scaler and coefficients for C = 1/λ.

use cashtag_models::artifact::ModelFile;
use cashtag_models::cv::Evaluation;
use cashtag_models::features::FEATURES;
use cashtag_models::logit::{Logit, Scaler};
use cashtag_models::metrics::score;
use serde_json::Value;

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

fn vector(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn model_file(fit: &Logit) -> ModelFile {
    let empty = score(&[]);
    let cv = Evaluation {
        blocks: vec![],
        model: empty.clone(),
        baselines: vec![],
        binomial_p: 1.0,
        alpha: 0.05,
        beats_baselines: false,
        reasons: vec![],
    };
    let m = ModelFile::from_fit(
        fit,
        FEATURES,
        cashtag_models::artifact::Meta {
            name: "parity".into(),
            version: "1".into(),
            created_at: chrono::Utc::now(),
            horizon: cashtag_models::features::Horizon::Minutes(20),
            every_minutes: 20,
            lookback_minutes: 20,
            training: cashtag_models::artifact::TrainingWindow {
                from: "2026-11-02".parse().unwrap(),
                to: "2026-11-02".parse().unwrap(),
                tickers: vec![],
                market: None,
                samples: 0,
                up: 0,
            },
            training_sha256: String::new(),
            cv,
            notes: vec![],
        },
    );
    // Through the file format and back, as a predictor would read it.
    ModelFile::parse(&m.to_bytes()).unwrap()
}

#[test]
fn probabilities_and_fit_match_scikit_learn() {
    let r: Value = serde_json::from_str(include_str!("../parity/reference.json")).unwrap();
    let names: Vec<&str> = r["features"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, FEATURES.iter().map(|f| f.name).collect::<Vec<_>>(), "the fixture's features are cashtag's");
    let sk = Logit {
        scaler: Scaler { mean: vector(&r["scaler_mean"]), scale: vector(&r["scaler_scale"]) },
        coefficients: vector(&r["coefficients"]),
        intercept: r["intercept"].as_f64().unwrap(),
        l2: r["l2"].as_f64().unwrap(),
        iterations: 0,
    };
    let file = model_file(&sk);
    let expected = vector(&r["predict_proba"]);
    for (row, want) in matrix(&r["x_test"]).iter().zip(&expected) {
        let got = file.prob(row);
        assert!((got - want).abs() < 1e-9, "p {got} vs scikit-learn {want}");
    }
    // cashtag's own fit on the same data.
    let x = matrix(&r["x"]);
    let y: Vec<bool> = r["y"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() == 1).collect();
    let ours = Logit::fit(&x, &y, sk.l2);
    for (a, b) in ours.scaler.mean.iter().zip(&sk.scaler.mean).chain(ours.scaler.scale.iter().zip(&sk.scaler.scale)) {
        assert!((a - b).abs() < 1e-12 * b.abs().max(1.0), "scaler {a} vs {b}");
    }
    for (a, b) in ours.coefficients.iter().zip(&sk.coefficients).chain([(&ours.intercept, &sk.intercept)]) {
        assert!((a - b).abs() < 1e-7, "coefficient {a} vs scikit-learn {b}");
    }
    let ours_file = model_file(&ours);
    for (row, want) in matrix(&r["x_test"]).iter().zip(&expected) {
        assert!((ours_file.prob(row) - want).abs() < 1e-7);
    }
}
