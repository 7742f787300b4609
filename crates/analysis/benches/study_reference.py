"""The study's statistics in pandas + scipy + statsmodels, for the speed comparison.

    python study_reference.py DATA.csv MAX_LAG GRANGER_LAGS SPIKE_Z LOOKBACK WINDOW

Reads the benchmark's data (one row per ticker-minute: ticker, session, sentiment,
posts, ret — ret empty at a session's first minute), and computes what cashtag's
`study::run` computes: per ticker the level, Spearman, change and volume correlations
with the next return, the cross-correlation at lags -K..K, Granger causality both ways
for lags 1..L; Benjamini-Hochberg across tickers and across ticker x lag; the pooled
within-ticker correlations; the event study around post-volume spikes against SPY.
Prints one JSON object: load and statistics times, and numbers to compare.
"""
import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.stattools import grangercausalitytests

warnings.filterwarnings("ignore")
path, K, L, Z, LOOKBACK, W = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

t0 = time.perf_counter()
df = pd.read_csv(path, float_precision="round_trip")
t1 = time.perf_counter()


def lagged(a, b, k):
    """Pairs (a_t, b_{t+k}) with both present."""
    n = len(a)
    if k >= 0:
        x, y = a[: n - k], b[k:]
    else:
        x, y = a[-k:], b[: n + k]
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


market = df[df.ticker == "SPY"]
market_ret = market.ret.to_numpy()
results = {}
abnormal_events = []
pooled_level_x, pooled_level_y = [], []
pooled_xc = {k: ([], []) for k in range(-K, K + 1)}
for ticker, g in df[df.ticker != "SPY"].groupby("ticker", sort=False):
    s = g.sentiment.to_numpy()
    r = g.ret.to_numpy()
    posts = g.posts.to_numpy()
    nxt = np.append(r[1:], np.nan)
    x, y = lagged(s, nxt, 0)
    level = stats.pearsonr(x, y)
    spear = stats.spearmanr(x, y)
    ds = np.insert(np.diff(s), 0, np.nan)
    change = stats.pearsonr(*lagged(ds, nxt, 0))
    volume = stats.pearsonr(*lagged(posts, np.abs(nxt), 0))
    xc = {k: stats.pearsonr(*lagged(s, r, k)) for k in range(-K, K + 1)}
    r0 = np.nan_to_num(r, nan=0.0)
    g_sr = grangercausalitytests(np.column_stack([r0, s]), L)
    g_rs = grangercausalitytests(np.column_stack([s, r0]), L)
    primary = g_sr[L][0]["ssr_ftest"][1]
    ab = np.nan_to_num(r - market_ret, nan=0.0)
    p = pd.Series(posts)
    m = p.rolling(LOOKBACK).mean().shift(1)
    sd = p.rolling(LOOKBACK).std(ddof=1).shift(1)
    spikes = np.flatnonzero(((p > m + Z * np.maximum(sd, 1e-12)) & (p > 0)).to_numpy())
    abnormal_events.append((ab, spikes))
    results[ticker] = {"level_r": float(level.statistic), "level_p": float(level.pvalue), "spearman_r": float(spear.statistic),
                       "change_r": float(change.statistic), "volume_r": float(volume.statistic),
                       "xc": {k: (float(v.statistic), float(v.pvalue)) for k, v in xc.items()},
                       "granger_rs_p": [float(g_rs[l][0]["ssr_ftest"][1]) for l in range(1, L + 1)],
                       "primary_p": float(primary)}
    sd_ = s - np.nanmean(s)
    nd = nxt - np.nanmean(nxt)
    a, b = lagged(sd_, nd, 0)
    pooled_level_x.append(a)
    pooled_level_y.append(b)
    rd = r - np.nanmean(r)
    for k in range(-K, K + 1):
        a, b = lagged(sd_, rd, k)
        pooled_xc[k][0].append(a)
        pooled_xc[k][1].append(b)

tickers = list(results)
q = multipletests([results[t]["primary_p"] for t in tickers], method="fdr_bh")[1]
for t, v in zip(tickers, q):
    results[t]["primary_q"] = float(v)
lag_p = [results[t]["xc"][k][1] for t in tickers for k in range(-K, K + 1)]
lag_q = multipletests(lag_p, method="fdr_bh")[1]
pooled = stats.pearsonr(np.concatenate(pooled_level_x), np.concatenate(pooled_level_y))
pooled_xc = {k: stats.pearsonr(np.concatenate(a), np.concatenate(b)).statistic for k, (a, b) in pooled_xc.items()}
paths = []
for ab, ev in abnormal_events:
    for e in ev:
        if e >= W and e + W < len(ab):
            paths.append(np.cumsum(ab[e - W : e + W + 1]))
paths = np.array(paths)
car = paths.mean(axis=0)
ci = 1.959963984540054 * paths.std(axis=0, ddof=1) / np.sqrt(len(paths))
t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "stats_s": t2 - t1, "rows": len(df), "tickers": results, "pooled_r": float(pooled.statistic),
                  "events": len(paths), "car": car.tolist(), "lag_q_min": float(lag_q.min())}))
