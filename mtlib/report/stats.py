"""The report's statistics: t-intervals over seeds, paired by seed, the verdict on a claim, and their text."""
from __future__ import annotations

import math

import pandas as pd

from .paper import CLAIMS, METRICS


def interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a `level` t-interval (n-1 degrees of freedom) of the values; NaN bounds when n < 2."""
    import numpy as np
    from scipy import stats
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def paired_interval(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> dict:
    """Mean of the paired differences a - b over the seeds both have, with its t-interval (`interval`); the bounds
    are None when fewer than two seeds pair."""
    seeds = sorted(set(a) & set(b))
    mean, lo, hi = interval([a[s] - b[s] for s in seeds], level)
    return {"n": len(seeds), "mean": mean, "low": None if math.isnan(lo) else lo, "high": None if math.isnan(hi) else hi}


def verdict(lo: float, hi: float, sign: int) -> str:
    """From a paired difference's interval: `holds`, `reversed` or `not resolved` (sign 0: the claim is 'differs')."""
    if math.isnan(lo) or math.isnan(hi):     # fewer than two seeds
        return "not resolved (n < 2)"
    excludes_zero = lo > 0 or hi < 0
    if sign == 0:
        return "holds" if excludes_zero else "not resolved"
    if not excludes_zero:
        return "not resolved"
    return "holds" if (lo > 0) == (sign > 0) else "reversed"


def claims_table(rows: dict[str, dict[int, dict]]) -> pd.DataFrame:
    """Every claim of CLAIMS as a paired difference over the seeds both rows have, with its 95% interval and verdict."""
    out = []
    for tag, text, a, b, metric, sign in CLAIMS:
        seeds = sorted(set(rows.get(a, {})) & set(rows.get(b, {})))
        diffs = [rows[a][k][metric] - rows[b][k][metric] for k in seeds]
        mean, lo, hi = interval(diffs)
        out.append({"claim": f"({tag}) {text}", "metric": metric, "difference": f"{a} − {b}", "n": len(seeds),
                    "mean": mean, "lo": lo, "hi": hi,
                    "verdict": verdict(lo, hi, sign) if seeds else "not run"})
    return pd.DataFrame(out)


def resolved_tasks(runs: dict[int, dict], reference: dict[int, dict]) -> list[str]:
    """The task metrics whose paired 95% interval against the reference ({seed: metrics}) excludes zero, as
    "sts_pearson +0.003 [+0.002, +0.005]": a configuration may trade one task for another with the mean unmoved."""
    found = []
    for m in METRICS[:-1]:
        if any(m not in r for r in (*runs.values(), *reference.values())):
            continue
        ci = paired_interval({s: r[m] for s, r in runs.items()}, {s: r[m] for s, r in reference.items()})
        if ci["low"] is not None and verdict(ci["low"], ci["high"], sign=0) == "holds":     # "differs" holds
            found.append(f"{m} {interval_text(ci)}")
    return found


def mean_std(values: list[float], digits: int = 3) -> str:
    """"0.459 ± 0.001": mean ± sample std (one value: the value; none: "")."""
    s = pd.Series(values, dtype=float)
    if s.empty:
        return ""
    return f"{s.mean():.{digits}f}" + (f" ± {s.std(ddof=1):.{digits}f}" if len(s) > 1 else "")


def interval_text(p: dict) -> str:
    """"+0.004 [+0.002, +0.005]" (n >= 2), "+0.004" (n = 1), "" (no seed in common)."""
    if p["n"] == 0:
        return ""
    return f"{p['mean']:+.3f}" + (f" [{p['low']:+.3f}, {p['high']:+.3f}]" if p["low"] is not None else "")


def paired_text(p: dict) -> str:
    """"+0.004 [-0.005, +0.012] (n=2)", "-0.044 (n=1: no interval)" or "no seed in common"."""
    if p["n"] == 0:
        return "no seed in common"
    return interval_text(p) + (f" (n={p['n']}: no interval)" if p["low"] is None else f" (n={p['n']})")
