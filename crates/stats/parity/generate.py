"""Generates the statistics parity fixture from the reference implementations.

For a set of cases — random series of many lengths, series with ties, with missing rows
(dropped pairwise before the statistics, as cashtag does), short series, strong and null
dependence — computes scipy.stats.pearsonr, scipy.stats.spearmanr and statsmodels'
grangercausalitytests (ssr F-test, both directions) and writes them as JSON.

    python3 -m venv /tmp/s && /tmp/s/bin/pip install -r parity/requirements.txt
    /tmp/s/bin/python parity/generate.py > parity/reference.json
"""
import json
import sys
import warnings

import numpy as np
from scipy import stats
from statsmodels.tsa.stattools import grangercausalitytests

warnings.filterwarnings("ignore")
rng = np.random.default_rng(20261128)


def case(name, x, y, max_lag):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    xs, ys = x[ok], y[ok]
    out = {"name": name, "x": [None if np.isnan(v) else float(v) for v in x], "y": [None if np.isnan(v) else float(v) for v in y], "max_lag": max_lag}
    pr = stats.pearsonr(xs, ys)
    sr = stats.spearmanr(xs, ys)
    out["pearson"] = [float(pr.statistic), float(pr.pvalue)]
    out["spearman"] = [float(sr.statistic), float(sr.pvalue)]
    for label, (a, b) in {"x_causes_y": (ys, xs), "y_causes_x": (xs, ys)}.items():
        rows = []
        for lag in range(1, max_lag + 1):
            nobs = len(a) - lag
            if nobs <= 2 * lag + 1:
                break
            r = grangercausalitytests(np.column_stack([a, b]), [lag])[lag][0]["ssr_ftest"]
            rows.append({"lag": lag, "f": float(r[0]), "p": float(r[1]), "df_denom": int(r[2]), "df_num": int(r[3])})
        out[label] = rows
    return out


def ar1(n, phi=0.5):
    e = rng.standard_normal(n)
    v = np.zeros(n)
    for i in range(1, n):
        v[i] = phi * v[i - 1] + e[i]
    return v


cases = []
for n in [5, 8, 12, 30, 100, 500, 2000]:
    x = rng.standard_normal(n)
    cases.append(case(f"independent n={n}", x, rng.standard_normal(n), 5))
    x = ar1(n)
    y = np.zeros(n)
    y[2:] = 0.6 * x[:-2] + rng.standard_normal(n - 2)
    cases.append(case(f"x leads y by 2, n={n}", x, y, 5))
for n in [10, 60, 400]:
    x = np.round(rng.standard_normal(n), 0)
    y = np.round(x + rng.standard_normal(n), 1)
    cases.append(case(f"ties n={n}", x, y, 3))
for n in [40, 300]:
    x = ar1(n)
    y = 0.3 * np.roll(x, 1) + rng.standard_normal(n)
    x[rng.choice(n, n // 10, replace=False)] = np.nan
    y[rng.choice(n, n // 10, replace=False)] = np.nan
    cases.append(case(f"missing rows n={n}", x, y, 4))
cases.append(case("short n=4", [1.0, 2.0, 4.0, 3.0], [2.0, 1.0, 3.0, 5.0], 3))
cases.append(case("perfect", list(range(10)), [2 * v + 1 for v in range(10)], 0))
cases.append(case("returns-like", rng.standard_normal(1000) * 1e-3, rng.standard_normal(1000) * 1e-4 + 5e-4, 6))

json.dump({"scipy": __import__("scipy").__version__, "statsmodels": __import__("statsmodels").__version__, "cases": cases}, sys.stdout)
