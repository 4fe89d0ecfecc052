"""The report's statistics: t-intervals over seeds, paired by seed, the verdict on a claim, and their text."""
from __future__ import annotations

import math

import pandas as pd

from .paper import CLAIMS, METRICS, PAPER


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
    are None when fewer than two seeds pair, and "why" says why the interval can resolve nothing (`degenerate`), or
    is None where it can."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    mean, lo, hi = interval(diffs, level)
    return {"n": len(seeds), "mean": mean, "low": None if math.isnan(lo) else lo, "high": None if math.isnan(hi) else hi,
            "why": degenerate(diffs) if seeds else "no seed in common"}


def resolved(p: dict) -> int:
    """Where a `paired_interval` excludes zero as a test may say (an interval, not degenerate): +1 above zero, -1
    below; 0 where it resolves nothing."""
    if p["low"] is None or p["why"]:
        return 0
    return 1 if p["low"] > 0 else -1 if p["high"] < 0 else 0


MIN_SEEDS = 3          # fewer paired seeds resolve nothing: a 2-seed t-interval (1 degree of freedom) is no test
SAME = 1e-9            # differences this close are one value: .52 - .50 and .62 - .60 differ in the last float bit,
                       # while a dev metric moves in steps of one example in thousands (1e-4 and more)


def degenerate(diffs) -> str | None:
    """Why an interval over these paired differences can resolve nothing, or None: fewer than MIN_SEEDS seeds, or
    no spread at all (every seed the same difference, so the t-interval is a point, not evidence)."""
    if len(diffs) < MIN_SEEDS:
        return f"n < {MIN_SEEDS}"
    if max(diffs) - min(diffs) <= SAME:
        return "zero spread: every seed gives the same difference"
    return None


def verdict(lo: float, hi: float, sign: int, diffs=None) -> str:
    """The direction verdict from a paired difference's interval: `holds`, `reversed` or `not resolved` (sign 0:
    the claim is 'differs'). With `diffs` (the paired differences), a degenerate interval is never resolved and
    says why."""
    if math.isnan(lo) or math.isnan(hi):     # fewer than two seeds
        return "not resolved (n < 2)"
    why = degenerate(diffs) if diffs is not None else None
    if why:
        return f"not resolved ({why})"
    excludes_zero = lo > 0 or hi < 0
    if sign == 0:
        return "holds" if excludes_zero else "not resolved"
    if not excludes_zero:
        return "not resolved"
    return "holds" if (lo > 0) == (sign > 0) else "reversed"


def size_verdict(lo: float, hi: float, effect: float | None, diffs=None) -> str:
    """Our interval against the report's effect: `excluded` (the interval leaves it out: the report's size does not
    reproduce here), `too wide to tell` (it contains it, but its half-width exceeds the effect, so these seeds
    could not have told it from zero) or `consistent` (it contains it, and is narrow enough to have seen it).
    With `diffs`, a degenerate interval (`degenerate`) excludes nothing: "does not reproduce" needs a real test."""
    if effect is None or math.isnan(effect):
        return "no effect in the report"
    if math.isnan(lo) or math.isnan(hi):
        return "too wide to tell (n < 2)"
    why = degenerate(diffs) if diffs is not None else None
    if why:
        return f"too wide to tell ({why})"
    if not lo <= effect <= hi:
        return "excluded (ours smaller)" if abs(hi if effect > 0 else lo) < abs(effect) else "excluded (ours larger)"
    return "too wide to tell" if (hi - lo) / 2 > abs(effect) else "consistent"


def claims_table(rows: dict[str, dict[int, dict]]) -> pd.DataFrame:
    """Every claim of CLAIMS as a paired difference over the seeds both rows have: its 95% interval and half-width
    (the smallest effect these seeds resolve), the direction verdict, the report's effect (its own two rows'
    difference, where both are in it) and the size verdict against it."""
    out, diffs_of = [], []
    for tag, text, a, b, metric, sign in CLAIMS:
        seeds = sorted(set(rows.get(a, {})) & set(rows.get(b, {})))
        diffs = [rows[a][k][metric] - rows[b][k][metric] for k in seeds]
        diffs_of.append(diffs)
        mean, lo, hi = interval(diffs)
        i = METRICS.index(metric)
        effect = PAPER[a][i] - PAPER[b][i] if a in PAPER and b in PAPER else None
        out.append({"claim": f"({tag}) {text}", "metric": metric, "difference": f"{a} − {b}", "n": len(seeds),
                    "mean": mean, "lo": lo, "hi": hi, "half": (hi - lo) / 2,
                    "verdict": verdict(lo, hi, sign, diffs) if seeds else "not run", "report": effect,
                    "size": size_verdict(lo, hi, effect, diffs) if seeds else "not run", "against": "the report"})
    table = pd.DataFrame(out)
    # (e') is not in the report: the effect its half-width must resolve is the edge (e) measures here (no dropout)
    e = table[table["claim"].str.startswith("(e) ") & table["claim"].str.contains("no dropout")]
    for i in table.index[table["claim"].str.startswith("(e') ")]:
        if len(e) and e.iloc[0]["n"] and table.at[i, "n"]:
            table.at[i, "report"], table.at[i, "against"] = e.iloc[0]["mean"], "our (e), no dropout"
            table.at[i, "size"] = size_verdict(table.at[i, "lo"], table.at[i, "hi"], e.iloc[0]["mean"], diffs_of[i])
    return table


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down correction: which of these hypotheses are rejected with the family-wise error held at
    `alpha`. The i-th smallest p (i from 0) is tested at alpha / (m - i), stopping at the first that fails."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def paired_p(a: dict[int, float], b: dict[int, float]) -> float:
    """Two-sided p of the paired t-test over the seeds both have (NaN where it is degenerate)."""
    from scipy import stats
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    return float("nan") if degenerate(diffs) else float(stats.ttest_1samp(diffs, 0.0).pvalue)


def resolved_tasks(runs: dict[int, dict], reference: dict[int, dict]) -> list[str]:
    """The task metrics whose paired 95% interval against the reference ({seed: metrics}) excludes zero, as
    "sts_pearson +0.003 [+0.002, +0.005]": a configuration may trade one task for another with the mean unmoved."""
    found = []
    for m in METRICS[:-1]:
        if any(m not in r for r in (*runs.values(), *reference.values())):
            continue
        a, b = {s: r[m] for s, r in runs.items()}, {s: r[m] for s, r in reference.items()}
        ci = paired_interval(a, b)
        if resolved(ci):
            found.append(f"{m} {interval_text(ci)}")
    return found


def dev_se(metric: str, value: float, n: int) -> float:
    """The standard error that the dev set's size alone puts on a score (about how far a fresh sample of n examples
    would move it): an accuracy's binomial sqrt(p (1 - p) / n); Pearson r's (1 - r^2) / sqrt(n - 3), Fisher's z
    interval carried back to r. A target missed by less is not missed beyond what dev's size can tell."""
    if metric == "sts_pearson":
        return (1 - value ** 2) / math.sqrt(n - 3)
    return math.sqrt(value * (1 - value) / n)


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
