#!/usr/bin/env python3
"""Independent computation of the daily study on a research archive, with pandas/scipy.

Reads the archive as published datasets are laid out (tweets/<TICKER>/<YYYY-MM-DD> of
Twitter v1.1 JSON lines, prices/<TICKER>.csv as Yahoo Finance writes it) and its
sessions.csv, and computes what `cashtag-analysis study --interval 1d --measure
vader_mean` reports per ticker, without any of cashtag's code:

- a day's sentiment: the mean VADER compound (vaderSentiment 3.3.2) of the ticker's
  tweets from the previous session's close up to this session's close (the first day:
  the 24 hours before its close), retweets left out; missing on a day without tweets;
- a day's return: ln(adj_close_t / adj_close_{t-1}) over consecutive sessions;
- level: Pearson (and Spearman) of sentiment_t with return_{t+1}; change: of
  sentiment_t - sentiment_{t-1}; volume: tweets_t with |return_{t+1}|; pooled: the
  within-ticker demeaned level pairs of every ticker;
- buy and hold: per session, the mean over tickers of the next session's return (what
  a backtest at horizon 1d scores as buy-and-hold at that tick);
- tweets in another language than English are left out; a tweet in two tickers' folders
  counts for both; a ticker without a price row before its listing has no return there;
- the primary test: Granger (sentiment → return) with L = 4 lags, an F-test on the rows
  with the return and every lag of both present (ordinary least squares with a
  constant, numpy); `observations` counts those rows; a ticker is tested with at least
  30 posts and 30 observations; Benjamini–Hochberg over the tested tickers' p-values;
  the pooled level correlation over the tested tickers.

Usage: cargo run -p cashtag-sim --example daily_archive -- /tmp/archive [history|sparse]
       python daily_study.py /tmp/archive > reference.json (sparse: sparse_reference.json)
(requirements.txt beside this file).
"""
import json
import math
import os
import sys

import numpy as np
import pandas as pd
from scipy import stats
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


LAGS = 4


def granger(y, x, lags):
    """p-value of the F-test that x's lags 1..lags add to y's own lags (with a constant),
    on the rows where y and every lag of both are present; and the number of rows."""
    n = len(y)
    rows = [t for t in range(lags, n)
            if np.isfinite(y[t]) and all(np.isfinite(y[t - k]) and np.isfinite(x[t - k]) for k in range(1, lags + 1))]
    m = len(rows)
    if m <= 2 * lags + 1:
        return None, m
    yy = np.array([y[t] for t in rows])
    own = np.array([[1.0] + [y[t - k] for k in range(1, lags + 1)] for t in rows])
    both = np.array([[1.0] + [y[t - k] for k in range(1, lags + 1)] + [x[t - k] for k in range(1, lags + 1)] for t in rows])
    ssr = lambda a: float(np.sum((yy - a @ np.linalg.lstsq(a, yy, rcond=None)[0]) ** 2))
    restricted, full = ssr(own), ssr(both)
    dof = m - 2 * lags - 1
    f = ((restricted - full) / lags) / (full / dof)
    return float(stats.f.sf(f, lags, dof)), m


def benjamini_hochberg(p):
    """Adjusted q-values, in the order given."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def main(root):
    sessions = pd.read_csv(os.path.join(root, "sessions.csv"), parse_dates=["close"])
    sessions["close"] = pd.to_datetime(sessions["close"], utc=True)
    closes = sessions["close"].tolist()
    starts = [closes[0] - pd.Timedelta(days=1)] + closes[:-1]
    n = len(closes)
    vader = SentimentIntensityAnalyzer()

    prices = {}
    for f in sorted(os.listdir(os.path.join(root, "prices"))):
        ticker = f[: -len(".csv")].replace("-", ".")
        df = pd.read_csv(os.path.join(root, "prices", f), na_values=["null"])
        adj = df.set_index("Date")["Adj Close"]
        prices[ticker] = np.array([adj.get(str(d), np.nan) for d in sessions["date"]], dtype=float)

    out = {"tickers": {}, "buy_and_hold": {}}
    pooled_x, pooled_y = [], []
    for ticker in sorted(os.listdir(os.path.join(root, "tweets"))):
        rows = []
        folder = os.path.join(root, "tweets", ticker)
        for f in sorted(os.listdir(folder)):
            with open(os.path.join(folder, f), encoding="utf-8") as fh:
                for line in fh:
                    t = json.loads(line)
                    if "retweeted_status" in t or t.get("lang", "en") != "en":
                        continue
                    at = pd.to_datetime(t["created_at"], format="%a %b %d %H:%M:%S %z %Y", utc=True)
                    rows.append((at, "x:" + t["id_str"], vader.polarity_scores(t["text"])["compound"]))
        tw = pd.DataFrame(rows, columns=["at", "key", "compound"])
        tw["minute"] = pd.to_datetime(tw["at"], utc=True).dt.floor("min")
        # Sums in a fixed order — by minute, and by post key within a minute — so that
        # days whose means are equal are equal to the bit here too (Spearman's ties).
        tw = tw.sort_values(["minute", "key"])
        minutes = []
        for minute, g in tw.groupby("minute", sort=True):
            total = 0.0
            for c in g["compound"]:
                total += c
            minutes.append((minute, total, len(g)))
        sent = np.zeros(n)
        posts = np.zeros(n)
        for i in range(n):
            total, count = 0.0, 0
            for minute, s, k in minutes:
                if starts[i] <= minute < closes[i]:
                    total += s
                    count += k
            posts[i] = count
            sent[i] = total / count if count else np.nan
        adj = prices.get(ticker, np.full(n, np.nan))
        ret = np.full(n, np.nan)
        ret[1:] = np.log(adj[1:] / adj[:-1])
        nxt = np.append(ret[1:], np.nan)

        def corr(x, y, kind="pearson"):
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3:
                return None
            r = stats.pearsonr(x[ok], y[ok]) if kind == "pearson" else stats.spearmanr(x[ok], y[ok])
            return {"r": float(r[0]), "p": float(r[1]), "n": int(ok.sum())}

        dsent = np.full(n, np.nan)
        dsent[1:] = sent[1:] - sent[:-1]
        p_granger, observations = granger(ret, sent, LAGS)
        tested = posts.sum() >= 30 and observations >= 30
        out["tickers"][ticker] = {
            "tested": bool(tested),
            "observations": observations,
            "granger_p": p_granger,
            "intervals": int(np.isfinite(ret).sum()),
            "posts": float(posts.sum()),
            "level": corr(sent, nxt),
            "level_spearman": corr(sent, nxt, "spearman"),
            "change": corr(dsent, nxt),
            "volume": corr(posts, np.abs(nxt)),
        }
        if not tested:
            continue
        sdm = sent - np.nanmean(sent)
        ndm = nxt - np.nanmean(nxt)
        ok = np.isfinite(sdm) & np.isfinite(ndm)
        pooled_x.extend(sdm[ok])
        pooled_y.extend(ndm[ok])
    r = stats.pearsonr(pooled_x, pooled_y)
    out["pooled_level"] = {"r": float(r[0]), "p": float(r[1]), "n": len(pooled_x)}
    tested = sorted(t for t, v in out["tickers"].items() if v["tested"])
    q = benjamini_hochberg([out["tickers"][t]["granger_p"] for t in tested])
    out["significant"] = [t for t, qv in zip(tested, q) if qv < 0.05]
    studied = sorted(t for t in out["tickers"] if t in prices)
    for i in range(n - 1):
        moves = [math.log(prices[t][i + 1] / prices[t][i]) for t in studied
                 if np.isfinite(prices[t][i]) and np.isfinite(prices[t][i + 1])]
        if moves:
            out["buy_and_hold"][closes[i].strftime("%Y-%m-%dT%H:%M:%SZ")] = {"mean": float(np.mean(moves)), "n": len(moves)}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
