#!/usr/bin/env python3
"""Writes reference.json: scikit-learn's StandardScaler + LogisticRegression on a fixed
data set, so tests/parity.rs can show that

1. given scikit-learn's scaler and coefficients, a cashtag model file predicts the same
   probabilities as `LogisticRegression.predict_proba` (within 1e-9), and
2. cashtag's own fit (IRLS, Σ logloss + λ/2·‖w‖²) finds scikit-learn's coefficients
   for C = 1/λ.

Run from the repository root:
    python -m venv /tmp/parity && /tmp/parity/bin/pip install -r crates/models/parity/requirements.txt
    /tmp/parity/bin/python crates/models/parity/generate.py
"""
import json
import pathlib

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

FEATURES = ["sent_level", "sent_change", "post_volume", "authors", "bullish_share", "ret_recent", "ret_market"]
L2 = 1.0

rng = np.random.default_rng(20261201)
n, k = 400, len(FEATURES)
# Features on the scales cashtag's take: sentiment in [-1, 1], log counts, tiny returns.
x = np.column_stack([
    rng.uniform(-1, 1, n),
    rng.normal(0, 0.3, n),
    np.log1p(rng.poisson(8, n)),
    np.log1p(rng.poisson(6, n)),
    rng.uniform(-1, 1, n),
    rng.normal(0, 0.004, n),
    rng.normal(0, 0.002, n),
])
true_w = np.array([0.9, 0.2, -0.1, 0.05, 0.4, 60.0, -30.0])
p = 1 / (1 + np.exp(-(x - x.mean(0)) @ true_w))
y = (rng.uniform(0, 1, n) < p).astype(int)
x_test = np.column_stack([
    rng.uniform(-1.5, 1.5, 50),
    rng.normal(0, 0.5, 50),
    np.log1p(rng.poisson(8, 50)),
    np.log1p(rng.poisson(6, 50)),
    rng.uniform(-1, 1, 50),
    rng.normal(0, 0.01, 50),
    rng.normal(0, 0.005, 50),
])

scaler = StandardScaler().fit(x)
model = LogisticRegression(C=1 / L2, solver="newton-cg", tol=1e-14, max_iter=10_000).fit(scaler.transform(x), y)
proba = model.predict_proba(scaler.transform(x_test))[:, 1]

out = {
    "generator": f"scikit-learn {sklearn.__version__}, numpy {np.__version__}",
    "features": FEATURES,
    "l2": L2,
    "x": x.tolist(),
    "y": y.tolist(),
    "x_test": x_test.tolist(),
    "scaler_mean": scaler.mean_.tolist(),
    "scaler_scale": scaler.scale_.tolist(),
    "coefficients": model.coef_[0].tolist(),
    "intercept": float(model.intercept_[0]),
    "predict_proba": proba.tolist(),
}
path = pathlib.Path(__file__).with_name("reference.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}: {n} training rows, {len(x_test)} test rows; coefficients {np.round(model.coef_[0], 4)}")
