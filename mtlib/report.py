"""Tables and the generated report: what the notebooks show and `make report` writes (figures: `figures`).

`python -m mtlib report --execute` runs every notebook with papermill (reports/notebooks/), then
writes reports/results.md from the runs' metrics.json files; without --execute it only rewrites
results.md from the runs already there.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from .config import field_defaults
from .data import TASK_NAMES
from .evaluate import atomic_write_text
from .notebook import shown

ROOT = Path(__file__).resolve().parent.parent
TASK_PAIRS = (("sst", "para"), ("sst", "sts"), ("para", "sts"))
METRICS = ("sst_acc", "para_acc", "sts_pearson", "overall")

# The report's dev numbers (Chada & Jolly, tables in section 5.4): SST acc, Quora acc, STS Pearson, overall.
PAPER = {
    "Baseline": (0.494, 0.386, 0.325, 0.402),
    "Gradient Surgery (GS)": (0.444, 0.380, -0.003, 0.274),
    "Cosine Similarity (CS)": (0.497, 0.753, 0.600, 0.617),
    "CS + GS": (0.494, 0.785, 0.635, 0.638),
    "CS + GS, no dropout": (0.510, 0.781, 0.739, 0.677),
    "Novel: CS + GS": (0.517, 0.814, 0.762, 0.698),
    "Novel: CS + GS, no dropout": (0.528, 0.821, 0.776, 0.708),
}
# (notebook, papermill parameters, run label) executed by `make report` for every seed, in order. "{seed}" in a
# parameter is the seed's folder. The last one is claim (e'): CS+GS without dropout for as many encoder-training
# steps as the novel pipeline takes on the cpu profile (534 + 700 + 378 single-task + 700 multitask = 2,312).
PLAN = (
    ("00_data", {}, "00_data"),
    ("01_baseline", {}, "01_baseline"),
    ("02_gradient_surgery", {"baseline_dir": "runs/01_baseline/{seed}/baseline"}, "02_gradient_surgery"),
    ("03_cosine_similarity", {}, "03_cosine_similarity"),
    ("04_cs_gs", {}, "04_cs_gs"),
    ("04_cs_gs", {"dropout": 0}, "04_cs_gs-no-dropout"),
    ("05_novel", {}, "05_novel"),
    ("05_novel", {"dropout": 0}, "05_novel-no-dropout"),
    ("04_cs_gs", {"dropout": 0, "epochs": 3, "steps_per_epoch": 771}, "04_cs_gs-no-dropout-novel-steps"),
)
SEEDS = (0, 1, 2)
ONCE = ("00_data",)          # labels that train nothing: executed for the first seed only
# the seed whose figures go to <reports_dir>/figures (README, results.md); every other seed's lie beside its runs, so
# that seeds added in a later sitting (`make report SEEDS="1"`) never overwrite them
FIGURE_SEED = SEEDS[0]
# Notebooks that loop over seeds themselves (-p seeds [...]): executed once, after PLAN, with all the seeds asked for,
# into <reports_dir>/notebooks/<label>.ipynb and <reports_dir>/runs/<label>/<row>/seed<k>/.
AFTER = (("06_gradient_methods", {"figures_dir": "figures"}, "06_gradient_methods"), ("07_beyond", {}, "07_beyond"))
# Runs of an AFTER notebook that a rung of PLAN already trains with the same config: (label, method) <- (label, run
# folder in seed<k>). 06's `sum` is 03's CS rung and its `pcgrad` 04's CS + GS. `execute` copies a finished one into
# the folder of the notebook it is about to run, either way (06 from the rungs, or a rung from a 06 that ran first);
# the notebook's run() loads a copy only if its config.json matches (resume=true), and trains it again otherwise, so
# a copy never stands in for a different run.
SAME_RUNS = {("06_gradient_methods", "sum"): ("03_cosine_similarity", "cs"),
             ("06_gradient_methods", "pcgrad"): ("04_cs_gs", "cs_gs")}
RUNG_TABLES = ((1, "Multitask fine-tuning (rungs 1-4)"), (2, "Novel approach (rung 5)"))
# results.md rows: (table, row name, run label, run folder inside <label>/seed<k>/)
ROWS = (
    (1, "Baseline", "01_baseline", "baseline"),
    (1, "Gradient Surgery (GS)", "02_gradient_surgery", "pcgrad_sum"),
    (1, "GS, mean reduction (not in the report)", "02_gradient_surgery", "pcgrad_mean"),
    (1, "Cosine Similarity (CS)", "03_cosine_similarity", "cs"),
    (1, "CS + GS", "04_cs_gs", "cs_gs"),
    (1, "CS + GS, no dropout", "04_cs_gs-no-dropout", "cs_gs"),
    (1, "CS + GS, no dropout, novel's step count (not in the report)", "04_cs_gs-no-dropout-novel-steps", "cs_gs"),
    (2, "Novel: CS + GS", "05_novel", "novel"),
    (2, "Novel: CS + GS, no dropout", "05_novel-no-dropout", "novel"),
)
# The report's claims, each a paired difference (row a - row b, same seeds) of one metric, and the sign claimed:
# +1 (a is higher), -1 (a is lower), 0 (they differ).
CLAIMS = (
    ("a", "GS on the baseline hurts STS", "Gradient Surgery (GS)", "Baseline", "sts_pearson", -1),
    ("b", "the cosine head helps STS", "Cosine Similarity (CS)", "Baseline", "sts_pearson", +1),
    ("b", "the cosine head helps the mean", "Cosine Similarity (CS)", "Baseline", "overall", +1),
    ("c", "CS+GS beats CS", "CS + GS", "Cosine Similarity (CS)", "overall", +1),
    ("d", "no dropout beats dropout 0.1 (CS+GS)", "CS + GS, no dropout", "CS + GS", "overall", +1),
    ("d", "no dropout beats dropout 0.1 (novel)", "Novel: CS + GS, no dropout", "Novel: CS + GS", "overall", +1),
    ("e", "novel beats CS+GS (dropout 0.1)", "Novel: CS + GS", "CS + GS", "overall", +1),
    ("e", "novel beats CS+GS (no dropout)", "Novel: CS + GS, no dropout", "CS + GS, no dropout", "overall", +1),
    ("e'", "novel beats CS+GS at an equal step count (no dropout)", "Novel: CS + GS, no dropout",
     "CS + GS, no dropout, novel's step count (not in the report)", "overall", +1),
    ("f", "PCGrad's mean reduction changes STS (vs sum)", "GS, mean reduction (not in the report)",
     "Gradient Surgery (GS)", "sts_pearson", 0),
    ("f", "PCGrad's mean reduction changes the mean (vs sum)", "GS, mean reduction (not in the report)",
     "Gradient Surgery (GS)", "overall", 0),
)


def at_root(path: str | os.PathLike) -> Path:
    """A relative path is taken from the repository root, wherever the notebook kernel was started."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


# ------------------------------------------------------------------ reading a run back
def steps(out_dir: str | Path, stage: str | None = None) -> pd.DataFrame:
    """Per-step telemetry of a run (losses, gradient cosines and norms) as a DataFrame."""
    rows = [json.loads(line) for line in open(Path(out_dir) / "metrics.jsonl", encoding="utf-8")]
    df = pd.DataFrame([r for r in rows if r["type"] == "step" and (stage is None or r["stage"] == stage)])
    return df.reset_index(drop=True).rename_axis("global_step").reset_index()


def epochs(out_dir: str | Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in open(Path(out_dir) / "metrics.jsonl", encoding="utf-8")]
    return pd.DataFrame([r for r in rows if r["type"] == "epoch"])


def compare(runs: dict[str, dict], paper_rows: dict[str, str] | None = None) -> pd.DataFrame:
    """Our dev metrics per run, with the report's numbers beside them where a row name is given."""
    table = []
    for name, m in runs.items():
        row = {"run": name, **{k: m[k] for k in METRICS}, "best epoch": f"{m['final_stage']} {m['best_epoch']}",
               "wall (min)": m["wall_s"] / 60}
        paper = PAPER.get((paper_rows or {}).get(name, name))
        if paper:
            row.update({f"report {k}": v for k, v in zip(METRICS, paper)})
        table.append(row)
    return pd.DataFrame(table).set_index("run").round(3)


def gradient_frame(out_dir: str | Path, stage: str = "multitask", window: int = 25) -> pd.DataFrame:
    """Cosines of the raw task gradients (and their rolling means) and the fraction of each task's
    gradient norm that survives projection, per step of `stage`."""
    s = steps(out_dir, stage)
    for a, b in TASK_PAIRS:
        s[f"cos_{a}_{b}_smooth"] = s[f"cos_{a}_{b}"].rolling(window, min_periods=1).mean()
    for t in ("sst", "para", "sts"):
        s[f"kept_{t}"] = s[f"norm_after_{t}"] / s[f"norm_before_{t}"].clip(lower=1e-12)
        s[f"kept_{t}_smooth"] = s[f"kept_{t}"].rolling(window, min_periods=1).mean()
    return s


def pcgrad_findings(f: pd.DataFrame, skip: int = 10, noise: list[dict] | None = None) -> dict:
    """Numbers behind the report's claim: after the first `skip` steps, are STS gradients near-orthogonal to the
    others, does PCGrad nearly annihilate them, and how do the cosines compare with the noise floor (the cosine
    between one task's gradients on two different batches, `pipelines.gradient_noise`) and with random signs?"""
    late = f.iloc[skip:] if len(f) > skip else f
    out = {f"median |cos {a}-{b}|": float(late[f"cos_{a}_{b}"].abs().median()) for a, b in TASK_PAIRS}
    out.update({f"median kept {t}": float(late[f"kept_{t}"].median()) for t in ("sst", "para", "sts")})
    out.update({f"5th percentile kept {t}": float(late[f"kept_{t}"].quantile(0.05)) for t in ("sst", "para", "sts")})
    out.update({f"median |g_{t}|": float(late[f"norm_before_{t}"].median()) for t in ("sst", "para", "sts")})
    out["share of steps with a conflict"] = float((late["conflicts"] > 0).mean())
    # if each pair's sign were a coin flip, a step would show at least one conflict with this probability
    out["same share if signs were random"] = 1 - 0.5 ** len(TASK_PAIRS)
    if noise:
        n = pd.DataFrame(noise)
        same = n[n["task_a"] == n["task_b"]]
        for t in ("sst", "para", "sts"):
            out[f"noise floor |cos| {t} (same task, other batch)"] = float(same[same["task_a"] == t]["cosine"].abs().median())
        out["cross-task |cos| on the same model"] = float(n[n["task_a"] != n["task_b"]]["cosine"].abs().median())
    out["near-orthogonal (median |cos| of STS pairs < 0.1)"] = bool(
        max(out["median |cos sst-sts|"], out["median |cos para-sts|"]) < 0.1)
    out["STS annihilated (median kept < 0.5)"] = bool(out["median kept sts"] < 0.5)
    return out


def pcgrad_conclusion(findings: dict, runs: dict[str, dict], frames: dict[str, pd.DataFrame],
                      baseline: dict | None = None) -> str:
    """The 02 notebook's conclusion, written from the numbers (markdown); its headline comes first."""
    f = findings
    cos_sts = max(f["median |cos sst-sts|"], f["median |cos para-sts|"])
    lines, headline = [], None
    if baseline is not None:
        d = runs["sum"]["overall"] - baseline["overall"]
        d_sts = runs["sum"]["sts_pearson"] - baseline["sts_pearson"]
        paper = PAPER["Gradient Surgery (GS)"][3] - PAPER["Baseline"][3]
        hurts = d_sts < -0.02
        headline = ("PCGrad hurts STS here, as in the report" if hurts else
                    "PCGrad does not hurt STS here: the report's failure is not reproduced (one seed; "
                    "results.md tests it over all seeds)")
        lines.append(
            f"- **Does GS hurt the baseline?** PCGrad changes dev overall by {d:+.3f} and STS r by {d_sts:+.3f} "
            f"({runs['sum']['sts_pearson']:.3f} vs {baseline['sts_pearson']:.3f}); the report saw {paper:+.3f} overall.")
    lines += [
        f"- **Near-orthogonal STS gradients:** after the first steps the median |cos| between the STS gradient and "
        f"the others is {f['median |cos sst-sts|']:.3f} (SST) and {f['median |cos para-sts|']:.3f} (Quora); "
        f"SST–Quora {f['median |cos sst-para|']:.3f}. Near-orthogonal (threshold 0.1; max of the two "
        f"{cos_sts:.3f}): " + ("**yes**" if f["near-orthogonal (median |cos| of STS pairs < 0.1)"] else "**no**") + "."]
    if "cross-task |cos| on the same model" in f:
        floor = {t: f[f"noise floor |cos| {t} (same task, other batch)"] for t in ("sst", "para", "sts")}
        cross = f["cross-task |cos| on the same model"]
        reading = ("below every task's own floor: two tasks' gradients are closer to orthogonal than two batches of "
                   "one task are, so the tasks are unrelated rather than opposed" if cross < min(floor.values()) else
                   "within the range of the floors: the tasks disagree no more than two batches of one task do"
                   if cross <= max(floor.values()) else
                   "above every floor: the tasks' gradients are more aligned, or more opposed, than batch noise explains")
        lines.append(
            "- **Noise floor:** two gradients of the *same* task on different batches (final model) have median "
            "|cos| " + ", ".join(f"{TASK_NAMES[t]} {v:.3f}" for t, v in floor.items())
            + f"; across tasks {cross:.3f}, {reading}.")
    lines += [
        f"- **Conflicts:** at least one pair conflicts on {f['share of steps with a conflict']:.0%} of steps; with "
        f"random signs it would be {f['same share if signs were random']:.0%}, so a conflict count alone says little "
        "when the cosines are this small.",
        f"- **Annihilation:** PCGrad keeps a median {f['median kept sts']:.1%} of the STS gradient's norm (5th "
        f"percentile {f['5th percentile kept sts']:.1%}; SST {f['median kept sst']:.1%}, Quora "
        f"{f['median kept para']:.1%}). 'PCGrad nearly annihilates STS' is "
        + ("**supported**" if f["STS annihilated (median kept < 0.5)"] else "**not supported**: a projection "
           "against a near-orthogonal gradient removes little") + ".",
        f"- **Gradient scale:** the median raw gradient norms are SST {f['median |g_sst|']:.3g}, Quora "
        f"{f['median |g_para|']:.3g}, STS {f['median |g_sts|']:.3g}: the "
        f"{TASK_NAMES[max(('sst', 'para', 'sts'), key=lambda t: f[f'median |g_{t}|'])]} gradient is the largest "
        "and steers the summed update most.",
    ]
    if {"sum", "mean"} <= set(runs):
        ratio = frames["mean"]["norm_combined"].median() / frames["sum"]["norm_combined"].median()
        d = runs["mean"]["sts_pearson"] - runs["sum"]["sts_pearson"]
        lines.append(
            f"- **mean vs sum reduction:** averaging makes the combined encoder gradient {ratio:.2f}x as long "
            f"(median); STS r moves by {d:+.3f} ({runs['mean']['sts_pearson']:.3f} vs {runs['sum']['sts_pearson']:.3f}). "
            "AdamW divides each update by the running RMS of the gradient, so a constant rescaling changes its step "
            "very little; results.md tests claim (f) over all seeds.")
    return "\n".join(([f"**{headline}.**", ""] if headline else []) + lines)


# ------------------------------------------------------------------ results.md
def finished_runs(folder: str | Path, pattern: str) -> dict[int, tuple[Path, dict]]:
    """{seed: (run folder, metrics.json)} of the finished runs under `folder` whose metrics.json matches `pattern`
    (a glob whose one `seed*` part names the seed: "seed*/<sub>" for a rung's row, "seed*" for 06's and 07's)."""
    found = {}
    for path in at_root(folder).glob(f"{pattern}/metrics.json"):
        seed = next(p for p in path.relative_to(at_root(folder)).parts if p.startswith("seed"))
        found[int(seed.removeprefix("seed"))] = (path.parent, json.loads(path.read_text()))
    return dict(sorted(found.items()))


def seed_runs(runs_dir: str | Path, label: str, sub: str) -> dict[int, dict]:
    """{seed: metrics.json} of the finished runs of one row (<runs_dir>/<label>/seed<k>/<sub>/metrics.json)."""
    return {k: m for k, (_, m) in finished_runs(at_root(runs_dir) / label, f"seed*/{sub}").items()}


def interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a `level` t-interval (n-1 degrees of freedom) of the values; NaN bounds when n < 2."""
    import numpy as np
    from scipy import stats
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


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


def _mean_std(values: list[float], digits: int = 3) -> str:
    """"0.459 ± 0.001": mean ± sample std (one value: the value; none: "")."""
    s = pd.Series(values, dtype=float)
    if s.empty:
        return ""
    return f"{s.mean():.{digits}f}" + (f" ± {s.std(ddof=1):.{digits}f}" if len(s) > 1 else "")


def results_markdown(runs_dir: str | Path = "reports/runs", out: str | Path = "reports/results.md") -> str:
    """The report's two dev tables, ours (mean ± std over seeds) beside theirs, and the claims table, generated
    from the runs' metrics.json."""
    rows = {name: seed_runs(runs_dir, label, sub) for _, name, label, sub in ROWS}
    default = Path(runs_dir) == Path("reports/runs") and Path(out) == Path("reports/results.md")
    command = "make report" if default else f"python -m mtlib report --runs {runs_dir} --out {out}"
    lines = [f"# Results (generated by `{command}`; do not edit)", "",
             "Dev-set numbers. Ours: mean ± standard deviation over the seeds that finished (n), each the best dev "
             f"epoch of the run's final stage (`{Path(runs_dir).as_posix()}/<notebook>/seed<k>/*/metrics.json`). The report's: Chada "
             "& Jolly's tables (section 5.4). `overall` is the mean of the three metrics, as in the report.", ""]
    majority = next((m["majority"] for r in rows.values() for m in r.values() if "majority" in m), None)
    if majority:
        lines += [f"Read every row against the majority class on dev: always answering the most common training "
                  f"label scores SST {majority['sst_acc']:.3f} and Quora {majority['para_acc']:.3f}.", ""]
    meta = []
    rungs = any(rows.values())        # a folder of another machine's runs may hold 06 or 07 alone
    if not rungs:
        lines += ["No run of the report's rungs (01-05) in this folder, so neither their tables nor the claims: "
                  f"`python -m mtlib report --execute --reports {Path(runs_dir).parent.as_posix()}` trains them.", ""]
    for table, title in (RUNG_TABLES if rungs else ()):
        lines += [f"## {title}", "",
                  "| model | SST acc | Quora acc | STS r | overall | n | report SST | report Quora | report STS "
                  "| report overall | wall (min) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for t, name, label, sub in ROWS:
            if t != table:
                continue
            runs = rows[name]
            if not runs:
                lines.append(f"| {name} | not run | | | | 0 | " + " | ".join(_paper(name)) + " | |")
                continue
            ours = [_mean_std([m[k] for m in runs.values()]) for k in METRICS]
            lines.append(f"| {name} | " + " | ".join(ours) + f" | {len(runs)} | " + " | ".join(_paper(name))
                         + f" | {wall_text(list(runs.values()))} |")
            meta += [_run_line(name, seed, f"{label}/seed{seed}/{sub}", m) for seed, m in runs.items()]
        lines.append("")
    lines += (single_task_markdown(runs_dir) + merges_markdown(runs_dir) + methods_markdown(runs_dir, meta)
              + _beyond_markdown(runs_dir, meta) + pcgrad_seeds_markdown(runs_dir, say_missing=rungs))
    if rungs:
        lines += claims_markdown(claims_table(rows))
    lines += ["", "## Runs", "", "| model | seed | folder | device | precision | encoder | profile | dropout | lr | batch "
              "| epochs × steps | mtlib commit | wall (min) | CPU use | finished |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *meta, "",
              "`wall (min)` in the tables above is the mean ± std over the runs whose wall time is the code's speed: a "
              "resumed run's counts only its last process, and a run with CPU use below 95% shared the machine, so "
              "both are left out (the table says how many). `CPU use`: the run's CPU seconds over wall seconds × "
              "threads (recorded since mtlib 983957f; runs that had the 2-core machine to themselves measure 96-98%).",
              "",
              "## Caveats", "",
              "- **Quora is not the official split.** The shared data's Quora train/dev/test files are a split of the "
              "official `quora-dev.csv` (20,214 pairs), so Quora numbers are not comparable with the report's, which "
              "trained on the official 141k-pair train set.",
              "- **The encoder saw Quora.** The default encoder, all-MiniLM-L6-v2, was pre-trained on sentence pairs "
              "that include Quora duplicate questions, so its Quora (and likely STS) numbers are optimistic. The "
              "report fine-tuned BERT-base.",
              "- **Schedule.** The `cpu` profile (mtlib/config.py says why each value) trains one epoch capped at 700 "
              "steps at the learning rate `make sweep` chose on dev (reports/lr-sweep.md); the report trained 3 "
              "full epochs at 1e-5 (the `paper` profile).",
              "- The report's tables label the Quora column 'Correl' and STS 'Acc'; the metrics are Quora accuracy "
              "and STS Pearson r, as here.", ""]
    return "\n".join(lines)


def claims_markdown(claims: pd.DataFrame) -> list[str]:
    """results.md's claims table: each claim's paired difference, interval and verdict."""
    lines = ["## The report's claims, tested", "",
             "Each claim is a paired difference over the seeds both rows share (same seed: same data order and "
             "initial heads), with its mean and a 95% t-interval (n − 1 degrees of freedom). **holds**: the interval "
             "excludes zero on the claimed side; **reversed**: it excludes zero on the other side; **not resolved**: "
             "it contains zero (or n < 2).", "",
             "| claim | metric | difference | n | mean | 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
    for r in claims.itertuples():
        ci = "" if math.isnan(r.lo) else f"[{r.lo:+.3f}, {r.hi:+.3f}]"
        mean = "" if math.isnan(r.mean) else f"{r.mean:+.3f}"
        lines.append(f"| {r.claim} | {r.metric} | {r.difference} | {r.n} | {mean} | {ci} | {r.verdict} |")
    return lines


def merges_markdown(runs_dir: str | Path) -> list[str]:
    """Every `python -m mtlib merges` result under runs_dir (merges.json): the novel pipeline's three single-task
    models merged each way, on dev before any multitask step, one row per merge and a column per run (seed)."""
    found = sorted(at_root(runs_dir).rglob("merges.json"))
    if not found:
        return []
    frames = []
    for path in found:
        m = json.loads(path.read_text())
        c = m["config"]
        run = f"{shown(path.parent.resolve())} (dropout {c['dropout']}, seed {c['seed']})"
        frames.append(pd.DataFrame(m["rows"]).assign(run=run, device=m["device"]))
    t = pd.concat(frames, ignore_index=True)
    lines = ["## Merging the single-task models (rung 5, before any multitask step)", "",
             "`python -m mtlib merges <novel run>` rebuilds a finished novel run's three single-task models from its "
             "stage checkpoints and merges their encoders each way (each head from its own model), then scores the "
             "merged model on dev: the point each merge starts the multitask stage from. `uniform` is the report's "
             "average; task arithmetic adds λ · Σ task vectors to the encoder before fine-tuning; TIES keeps each task "
             "vector's top `density` entries by magnitude, elects a sign per entry and averages the agreeing ones. "
             f"Device: {', '.join(sorted(set(t['device'])))}.", ""]
    for run, g in t.groupby("run", sort=False):
        lines += [f"**{run}**", "", "| merge | λ | density | SST acc | Quora acc | STS r | overall |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in g.iterrows():
            lam = "" if r["merge"] == "uniform" else f"{r['lambda']:g}"
            density = f"{r['density']:g}" if r["merge"] == "ties" else ""
            lines.append(f"| {r['merge']} | {lam} | {density} | " + " | ".join(f"{r[k]:.3f}" for k in METRICS) + " |")
        lines.append("")
    return lines


SINGLE = {"single_sst": "sst_acc", "single_para": "para_acc", "single_sts": "sts_pearson"}
HEADS = ("encoder", "profile", "lr", "dropout", "para_head", "sts_head", "sts_loss", "sts_features", "pooling")


def single_task_runs(runs_dir: str | Path) -> dict[str, dict[int, dict]]:
    """{"05_novel-no-dropout/seed<k>/novel": {seed: metrics.json}} of every novel run of a notebook's folder (01-07)
    whose first stage trained the three single-task models."""
    root, found = at_root(runs_dir), {}
    for path in sorted(root.glob("0[1-7]_*/**/metrics.json")):
        m = json.loads(path.read_text())
        if {s["name"] for s in m.get("stages", [])} >= set(SINGLE):
            parts = path.parent.relative_to(root).parts
            seed = next((p for p in parts if re.fullmatch(r"seed\d+", p)), None)
            if seed is not None:
                row = "/".join("seed<k>" if p == seed else p for p in parts)
                found.setdefault(row, {})[int(seed[4:])] = m
    return found


def single_task_markdown(runs_dir: str | Path) -> list[str]:
    """results.md's section: the single-task models of the same encoder, which every novel run trains first (one
    model per task from the same weights, one pass, that run's heads), beside the run's multitask model and, where
    the heads and schedule are the same, 07's best multitask model: per task, paired by seed."""
    groups = single_task_runs(runs_dir)
    if not groups:
        return []
    best = {m["config"]["seed"]: m for m in ablation_runs(at_root(runs_dir) / "07_beyond").get("best", [])}
    lines = ["## Single-task models of the same encoder", "",
             "Every novel run first trains one model per task from the same weights (one pass, capped as the run's "
             "profile caps it, the run's heads): the single-task models a multitask model has to beat. Each group: "
             "their dev scores (mean ± std over seeds), the run's final multitask model, and its difference per "
             "task, paired by seed (95% t-interval); where 07's best configuration has the same heads, encoder and "
             "schedule, its multitask model too.", "",
             "| runs | model | seeds | SST acc | Quora acc | STS r |", "|---|---|---|---|---|---|"]
    for row, runs in groups.items():
        single = {k: {SINGLE[s["name"]]: s["best"][SINGLE[s["name"]]] for s in m["stages"] if s["name"] in SINGLE}
                  for k, m in runs.items()}
        c = _config(next(iter(runs.values())))
        heads = f"Quora {c['para_head']}, STS {c['sts_head']}, dropout {c['dropout']}"
        models = [(f"single-task models ({heads})", single), ("this run's multitask model", runs)]
        if best and all(_config(next(iter(best.values())))[k] == c[k] for k in HEADS):
            models.append(("07's best multitask model (same heads)", best))
        for name, by_seed in models:
            lines.append(f"| `{row}` | {name} | {len(by_seed)} | "
                         + " | ".join(_mean_std([m[k] for m in by_seed.values()]) for k in SINGLE.values()) + " |")
            if by_seed is not single:
                diffs = [paired_interval({s: m[k] for s, m in by_seed.items()}, {s: m[k] for s, m in single.items()})
                         for k in SINGLE.values()]
                lines.append(f"| `{row}` | − single-task, paired | {diffs[0]['n']} | "
                             + " | ".join(_interval_text(d) for d in diffs) + " |")
    return lines + [""]


def _config(m: dict) -> dict:
    """A run's config with every knob it lacks (added since it ran) at the default, which keeps the old behaviour."""
    return {**field_defaults(), **m["config"]}


def _interval_text(p: dict) -> str:
    """"+0.004 [+0.002, +0.005]" (n >= 2), "+0.004" (n = 1), "" (no seed in common)."""
    if p["n"] == 0:
        return ""
    return f"{p['mean']:+.3f}" + (f" [{p['low']:+.3f}, {p['high']:+.3f}]" if p["low"] is not None else "")


def pcgrad_seeds_markdown(runs_dir: str | Path, say_missing: bool = True) -> list[str]:
    """results.md's section for 02's gradient analysis over every seed of the PCGrad (sum) run: one row per seed of
    `pcgrad_findings` (noise floor where the run kept gradient_noise.json), and the report's two explanations
    (near-orthogonal STS gradients, STS annihilated by the projection) counted over the seeds. Without 02's runs:
    a line that says how to make them, or nothing (`say_missing=False`: a folder without the rungs says so once)."""
    folders = sorted((at_root(runs_dir) / "02_gradient_surgery").glob("seed*/pcgrad_sum/metrics.jsonl"),
                     key=lambda p: int(p.parent.parent.name.removeprefix("seed")))
    lines = ["## 02: PCGrad's gradients, every seed", ""]
    if not folders:
        return lines + ["Not run yet: `python -m mtlib report --execute --only 02_gradient_surgery`.", ""] \
            if say_missing else []
    rows = {}
    for path in folders:
        noise = path.parent / "gradient_noise.json"
        f = pcgrad_findings(gradient_frame(path.parent), noise=json.loads(noise.read_text()) if noise.exists() else None)
        floor = [v for k, v in f.items() if k.startswith("noise floor")]
        rows[path.parent.parent.name.removeprefix("seed")] = {
            **{f"median abs cos {TASK_NAMES[a]}-{TASK_NAMES[b]}": f"{f[f'median |cos {a}-{b}|']:.3f}" for a, b in TASK_PAIRS},
            "noise floor (same task)": f"{min(floor):.3f}–{max(floor):.3f}" if floor else "not kept",
            "cross-task, same model": f"{f['cross-task |cos| on the same model']:.3f}" if floor else "not kept",
            "steps with a conflict": f"{f['share of steps with a conflict']:.0%}",
            **{f"median kept {TASK_NAMES[t]}": f"{f[f'median kept {t}']:.1%}" for t in ("sst", "para", "sts")},
            "near-orthogonal": f["near-orthogonal (median |cos| of STS pairs < 0.1)"],
            "STS annihilated": f["STS annihilated (median kept < 0.5)"]}
    table = pd.DataFrame(rows).T
    n, ortho, gone = len(table), int(table["near-orthogonal"].sum()), int(table["STS annihilated"].sum())
    lines += ["From each seed's per-step telemetry (`02_gradient_surgery/seed<k>/pcgrad_sum/metrics.jsonl`), after "
              "the first 10 steps. The report explained GS's STS failure by STS gradients near-orthogonal to the "
              "others (median |cos| < 0.1) that PCGrad nearly annihilates (median kept < 50%). If every pair's sign "
              f"were a coin flip, {1 - 0.5 ** len(TASK_PAIRS):.0%} of steps would show a conflict. The noise floor "
              "is the median |cos| between one task's gradients on two batches of the final model, beside the median |cos| "
              "between two tasks' gradients on that model (02 keeps both where the run's checkpoint was at hand).", "",
              "| seed | " + " | ".join(table.columns) + " |", "|---|" + "---|" * len(table.columns)]
    lines += [f"| {seed} | " + " | ".join("yes" if v is True else "no" if v is False else str(v) for v in r) + " |"
              for seed, r in zip(table.index, table.itertuples(index=False))]
    lines += ["", f"**Over {n} seed{'s' if n > 1 else ''}:** the STS gradients are near-orthogonal to the others in "
              f"{ortho} of {n}, and PCGrad annihilates STS in {gone} of {n}: "
              + ("the report's explanation holds in every seed" if ortho == gone == n else
                 "the part of the report's explanation that would cost STS (annihilation) fails in every seed"
                 if gone == 0 else "the report's explanation holds in some seeds only")
              + ". Claim (a) below tests whether GS hurts STS at all.", ""]
    return lines


def _beyond_markdown(runs_dir: str | Path, meta: list[str]) -> list[str]:
    """results.md's sections for 07_beyond: its ablation table from the runs that finished so far (the notebook's
    executed copy shows it only once every row and seed is done), then the other configurations tried on dev to
    choose the best one (<runs_dir>/07_explore/<knob-value+...>/seed<k>: the best configuration with those knobs
    changed), beside the best row; each run's line goes to `meta`."""
    root = at_root(runs_dir)
    runs, tried = ablation_runs(root / "07_beyond"), ablation_runs(root / "07_explore")
    lines = ["## Beyond the report (07_beyond)", "",
             "The best configuration of `notebooks/07_beyond.ipynb` (what `make run` trains), then the same with one "
             "improvement set back to the report's choice at a time; Δ overall is each row minus the best row, over the seeds both ran. Issue 12's "
             "targets: SST ≥ 0.50, Quora ≥ 0.86, STS ≥ 0.89, overall ≥ 0.75.", ""]
    lines += (_table_markdown(runs) + _ablation_per_task(runs)) if runs else \
        ["Not run yet: `python -m mtlib report --execute --only 07_beyond`.", ""]
    published = sorted(p.name for p in (root / "07_beyond" / "predictions").glob("*-output.csv"))
    if published:       # what the executed notebook published: the best configuration's best seed on dev
        lines += [f"Leaderboard files of the best configuration's best seed (dev `overall`): "
                  f"{', '.join(f'`{n}`' for n in published)} in `{shown((root / '07_beyond' / 'predictions').resolve())}/`; "
                  f"the executed notebook: `{shown((root.parent / 'notebooks' / '07_beyond.ipynb').resolve())}`.", ""]
    if tried:
        explore = shown((root / "07_explore").resolve())
        lines += ["### Other configurations tried (dev only, to choose the best)", "",
                  "Each row is the best configuration with the knobs its name gives changed "
                  f"(`{explore}/`); Δ overall is against the best row, over the seeds both ran. To repeat one: `python -m mtlib run "
                  f"$BEST <knob>=<value> profile=cpu seed=<k> out_dir={explore}/<row>/seed<k>`, with "
                  "`BEST` from the Makefile (each run's config.json has every value).", ""]
        rows = {**({"best": runs["best"]} if "best" in runs else {}), **tried}
        lines += _table_markdown(rows) + _ablation_per_task(rows)
    for label, found in (("07", runs), ("07, tried", tried)):
        for name, seeds in found.items():
            for m in seeds:
                folder = Path(m["config"]["out_dir"])
                meta.append(_run_line(f"{label}: {name}", m["config"]["seed"],
                                      f"{folder.parent.parent.name}/{folder.parent.name}/{folder.name}", m))
    return lines


def methods_markdown(runs_dir: str | Path, meta: list[str]) -> list[str]:
    """results.md's section for 06: the methods table and its computed conclusion from the runs that finished so far
    (<runs_dir>/06_gradient_methods/<method>/seed<k>; the notebook's executed copy shows it once every run is done);
    each run's line goes to `meta`."""
    from .surgery import METHODS
    out = at_root(runs_dir) / "06_gradient_methods"
    seeds = sorted({int(p.name[4:]) for p in out.glob("*/seed*") if p.name[4:].isdigit()})
    runs = method_runs(out, METHODS, seeds)

    def copied(method: str, seed: int) -> bool:      # a rung's run of this folder stands for it (SAME_RUNS)
        label, sub = SAME_RUNS.get(("06_gradient_methods", method), (None, None))
        return bool(label) and (at_root(runs_dir) / label / f"seed{seed}" / sub / "metrics.json").exists()
    copies = any(copied(m, k) for m, by_seed in runs.items() for k in by_seed)
    lines = ["## Every gradient-combination method (06_gradient_methods)", "",
             "The CS + GS rung (cosine STS head, multitask, dropout 0.1) trained with each `combine` method; "
             + ("`sum` and `pcgrad` are 03's and 04's runs (the same config). " if copies else
                "every method, `sum` and `pcgrad` too, trained for 06 in this folder. ") +
             "Dev metrics are mean ± std over the seeds that "
             "finished; step cost is a run's median step time over its own forward + backward time (the work every "
             "method does alike, so that the machine's speed, which drifts between separate runs, cancels), over "
             "`sum`'s (runs that shared the machine left out where a method has others; section 6 of "
             "`reports/performance.md` has the interleaved cost on identical batches); median cos is the median "
             "pairwise cosine of the raw task gradients over every step, conflicts / step the mean number of pairs "
             "with a negative cosine; update share is each task's part of the combined update, |w_t g_t| (for pcgrad "
             "the projected gradient's norm) over the sum of the three, its median over the steps (under `sum`, the "
             "raw gradients' norms: a method that moves these shares moves what the encoder learns from each task).", ""]
    if not runs:
        return lines + ["Not run yet: `python -m mtlib report --execute --only 06_gradient_methods`.", ""]
    table = methods_table(runs, out).reset_index()
    lines += (["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
              + ["| " + " | ".join(_cell(v) for v in r) + " |" for r in table.itertuples(index=False)]
              + ["", methods_conclusion(runs), ""])
    meta += [_run_line(f"06: {method}", seed, f"06_gradient_methods/{method}/seed{seed}", m)    # but the rungs' own
             for method, by_seed in runs.items() for seed, m in by_seed.items() if not copied(method, seed)]
    return lines


def _cell(v) -> str:
    """A markdown table cell: floats to 3 decimals, missing values empty."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table_markdown(runs: dict[str, list[dict]]) -> list[str]:
    table = ablation_table(runs).reset_index()
    return (["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
            + ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)] + [""])


def _by_seed(seeds: list[dict]) -> dict[int, dict]:
    """A row's runs ({seed: metrics.json}), those whose config names their seed: what pairs rows by seed."""
    return {m["config"]["seed"]: m for m in seeds if "seed" in m.get("config", {})}


def _ablation_per_task(runs: dict[str, list[dict]]) -> list[str]:
    """Under an ablation table: each row's task metrics that differ from the first row's, paired by seed, with a
    95% interval that excludes zero (a knob may move one task with the mean unmoved); nothing where none does."""
    first = next(iter(runs.values()))
    found = [(name, resolved_tasks(_by_seed(seeds), _by_seed(first))) for name, seeds in runs.items() if seeds is not first]
    lines = [f"- **{name}**: {'; '.join(tasks)}." for name, tasks in found if tasks]
    return ["Task metrics a row moves, paired by seed with the first row (95% interval excludes zero):", "",
            *lines, ""] if lines else []


def _run_line(name: str, seed: int, folder: str, m: dict) -> str:
    """One row of results.md's runs table: where a run lies, what it ran on and with which schedule, how long."""
    c = m["config"]
    return (f"| {name} | {seed} | `{folder}` | {m['device']} | {m['precision']} | {m['encoder']} | {c['profile']} "
            f"| {c['dropout']} | {c['lr']} | {c['batch_size']} | {c['epochs']} × {c['steps_per_epoch'] or 'full'} "
            f"| {m.get('versions', {}).get('mtlib', '')} | {m['wall_s'] / 60:.1f}"
            f"{' (resumed: last process only)' if m.get('resumed') else ''} | {_cpu_use(m)} | {m['finished_at']} |")


def _paper(name: str) -> list[str]:
    return [f"{v:.3f}" for v in PAPER[name]] if name in PAPER else ["—"] * 4


def write_results(runs_dir="reports/runs", out="reports/results.md") -> Path:
    path = at_root(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, results_markdown(runs_dir, out))
    return path


class ReportError(RuntimeError):
    """A notebook failed under papermill, or an unknown run label was asked for."""


def execute(profile: str | None = None, only: list[str] | None = None, reports_dir: str | Path = "reports",
            seeds: tuple[int, ...] = SEEDS, params: dict | None = None) -> float:
    """Run the notebooks of PLAN with papermill, seed by seed, into <reports_dir>/notebooks/<label>-seed<k>.ipynb
    and <reports_dir>/runs/<label>/seed<k>/; returns the wall time (s).

    `params` (Config fields, e.g. {"encoder": "bert-base-uncased", "precision": "fp32"}) go to every notebook; a
    field that a notebook fixes itself (its rung's pipeline, combine, sts_head) or PLAN sets is an error.

    Runs are resumed: a finished run of the same config is loaded, a killed one goes on from its checkpoint, so
    an interrupted `make report` loses at most the steps since the last checkpoint. Figures of FIGURE_SEED (0) go
    to <reports_dir>/figures; every other seed's beside its runs, whichever seeds this call runs.
    """
    labels = [label for _, _, label in PLAN] + [label for _, _, label in AFTER]
    unknown = sorted(set(only or []) - set(labels))
    if unknown:
        raise ReportError(f"unknown run label(s) {', '.join(unknown)}; valid: {', '.join(labels)}")
    common = _common_params(params or {})
    clash = sorted({k for _, p, label in PLAN if not only or label in only for k in p} & set(common))
    if clash:
        from .config import ConfigError
        raise ConfigError(f"{', '.join(clash)} cannot be set for every notebook: PLAN sets it for some runs "
                          "(e.g. 04_cs_gs-no-dropout's dropout); run those labels without it")
    start, reports = time.time(), Path(reports_dir)       # relative paths are taken from the repository root
    at_root(reports / "notebooks").mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for notebook, params, label in PLAN:
            if (only and label not in only) or (label in ONCE and seed != seeds[0]):
                continue
            folder = reports / "runs" / label / f"seed{seed}"
            reuse_runs(reports / "runs", label, (seed,))
            params = {**{k: str(reports / v.format(seed=f"seed{seed}")) if k.endswith("_dir") else v
                         for k, v in params.items()},                  # PLAN's *_dir: in reports
                      "out_dir": str(folder), "seed": seed, "resume": True, "progress": False,
                      "figures_dir": str(reports / "figures" if seed == FIGURE_SEED else folder / "figures"),
                      "figure_prefix": label, **({"profile": profile} if profile else {}), **common}
            _papermill(notebook, reports / "notebooks" / f"{label}-seed{seed}.ipynb", params, f"run {label}, seed {seed}")
    for notebook, params, label in AFTER:
        if only and label not in only:
            continue
        reuse_runs(reports / "runs", label, seeds)
        params = {**{k: str(reports / v) for k, v in params.items()}, "out_dir": str(reports / "runs" / label),
                  "seeds": list(seeds), "resume": True, "progress": False, **({"profile": profile} if profile else {}),
                  **common}
        _papermill(notebook, reports / "notebooks" / f"{label}.ipynb", params, f"seeds {', '.join(map(str, seeds))}")
    return time.time() - start


def reuse_runs(runs: Path, label: str, seeds) -> list[Path]:
    """Copy each finished run that SAME_RUNS pairs with one of `label`'s into `label`'s folder (an AFTER notebook's
    <runs>/<label>/<method>/seed<k>, or a rung's <runs>/<label>/seed<k>/<folder>), where that folder does not exist
    yet; leaves out checkpoints (a finished run resumes from metrics.json alone). Returns the folders written."""
    copied = []
    for (after, method), (rung, folder) in SAME_RUNS.items():
        for seed in seeds if label in (after, rung) else ():
            at_after, at_rung = runs / after / method / f"seed{seed}", runs / rung / f"seed{seed}" / folder
            src, dst = (at_rung, at_after) if label == after else (at_after, at_rung)
            if (src / "metrics.json").exists() and not dst.exists():     # a killed run there: the notebook resumes it
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints"))
                print(f"{dst}: {src}'s run (same config; the notebook loads it only if config.json still matches)")
                copied.append(dst)
    return copied


# What execute() sets per notebook, or the rungs fix: not settable for the whole ladder.
_RESERVED = ("pipeline", "combine", "sts_head", "seed", "out_dir", "resume", "progress", "profile")


def _common_params(params: dict) -> dict:
    """Check `execute`'s params: Config fields only, none that each rung or seed sets itself."""
    from .config import Config, ConfigError
    Config.from_dict({k: v for k, v in params.items() if k not in _RESERVED})   # unknown names, bad values: one line
    reserved = sorted(set(params) & set(_RESERVED))
    if reserved:
        raise ConfigError(f"{', '.join(reserved)} cannot be set for every notebook (each rung or seed sets it; "
                          "--profile and --seeds choose the profile and seeds)")
    return dict(params)


def _papermill(notebook: str, executed: Path, params: dict, what: str) -> None:
    """Execute notebooks/<notebook>.ipynb into `executed`; a failing cell becomes one ReportError line."""
    import papermill as pm
    t0 = time.time()
    print(f"papermill notebooks/{notebook}.ipynb -> {executed} {params}", flush=True)
    try:       # paths relative to the repository root: the executed copy records no machine paths
        os.chdir(ROOT)
        pm.execute_notebook(f"notebooks/{notebook}.ipynb", str(executed), parameters=params, cwd=".",
                            progress_bar=False)
    except pm.PapermillExecutionError as err:
        raise ReportError(f"notebooks/{notebook}.ipynb ({what}) failed in cell [{err.exec_count}]: {err.ename}: "
                          f"{err.evalue.splitlines()[0] if err.evalue else ''}; the full traceback is in {executed}"
                          ) from None
    print(f"  done in {(time.time() - t0) / 60:.1f} min", flush=True)


def main(argv: list[str] | None = None) -> None:
    from .config import parse_params
    ap = argparse.ArgumentParser(prog="python -m mtlib report")
    ap.add_argument("--execute", action="store_true", help="run the notebooks with papermill first")
    ap.add_argument("--profile", default=None, help="smoke, cpu or paper (default: $MTLIB_PROFILE, else auto)")
    ap.add_argument("--only", nargs="*", help="run labels to execute (default: all)")
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS), help="seeds to run (default: 0 1 2)")
    ap.add_argument("--reports", default="reports", help="where --execute writes notebooks/, runs/, figures/ (another "
                    "machine's runs: a folder of their own, e.g. reports/xeon)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="Config fields for every notebook, e.g. --set precision=fp32 encoder=bert-base-uncased")
    ap.add_argument("--runs", default=None, help="the runs results.md is computed from (default: <reports>/runs)")
    ap.add_argument("--out", default=None, help="the results file (default: <reports>/results.md)")
    args = ap.parse_args(argv)
    args.runs = args.runs or f"{args.reports}/runs"
    args.out = args.out or f"{args.reports}/results.md"
    if args.execute:
        wall = execute(args.profile, args.only, args.reports, tuple(args.seeds), parse_params(args.set))
        print(f"notebooks executed in {wall / 60:.1f} min")
    print(write_results(args.runs, args.out))


# ------------------------------------------------------------------ 07: beyond the report (ablation)
# What "removing" an improvement sets, for each knob the 07 notebook can ablate: the report's choice.
WITHOUT = {
    "para_head": dict(para_head="concat"),
    "sts_features": dict(sts_features="concat"),
    "sts_loss": dict(sts_loss="mse"),
    "schedule": dict(schedule="constant"),
    "merge": dict(merge="uniform"),
    "sts_head": dict(sts_head="mlp", sts_loss="mse", sts_features="concat"),   # CoSENT needs the cosine head
    "combine": dict(combine="sum"),
    "dropout": dict(dropout=0.1),
    "ema": dict(ema=0.0),
    "loss_weights": dict(loss_weights=""),
}


def ablation_configs(best: dict, ablate: list[str]) -> dict[str, dict]:
    """{"best": best, "para_head=concat": best with that knob set back to the report's choice (WITHOUT), ...},
    one row per knob in `ablate`, named by what it changes. A knob whose best value is already the report's
    (or that `best` leaves unset) gives no row: it would repeat the best one."""
    unknown = sorted(set(ablate) - set(WITHOUT))
    if unknown:
        raise ValueError(f"cannot ablate {', '.join(unknown)}; choose from {', '.join(WITHOUT)}")
    rows = {"best": dict(best)}
    for knob in ablate:
        if best.get(knob, WITHOUT[knob][knob]) == WITHOUT[knob][knob]:
            continue
        changed = {k: v for k, v in WITHOUT[knob].items() if best.get(k, v) != v or k == knob}
        rows[", ".join(f"{k}={v}" for k, v in changed.items())] = {**best, **changed}
    return rows


def run_folder(name: str) -> str:
    """A folder name for an ablation row: "sts_head=mlp, sts_loss=mse" -> "sts_head-mlp+sts_loss-mse"."""
    return name.replace(", ", "+").replace("=", "-")


def _cpu_fraction(m: dict) -> float | None:
    """A run's CPU seconds over wall seconds x threads (None where not recorded)."""
    return m["cpu_s"] / (m["wall_s"] * m["threads"]) if m.get("cpu_s") and m.get("threads") else None


def _cpu_use(m: dict) -> str:
    return f"{_cpu_fraction(m):.0%}" if _cpu_fraction(m) is not None else ""


def _shared(m: dict) -> bool:
    """Whether a CPU run shared the machine: its CPU seconds below 95% of wall seconds x threads (runs that had
    the 2-core machine to themselves measure 96-98%; one beside the test suite, 72-92%)."""
    use = _cpu_fraction(m)
    return not str(m.get("device", "cpu")).startswith("cuda") and use is not None and use < 0.95


def ablation_table(runs: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per configuration ({name: [metrics.json of each seed]}): each dev metric as mean ± sample std
    over the seeds, the change of `overall` against the first row paired by seed (only the seeds both rows ran, so
    that rows with different seeds are never compared) with its 95% t-interval where two or more seeds pair, and
    the wall time per seed."""
    first_runs = next(iter(runs.values()))
    by_seed = lambda seeds: {k: m["overall"] for k, m in _by_seed(seeds).items()}
    table = []
    for name, seeds in runs.items():
        row = {"configuration": name, "seeds": len(seeds)}
        row.update({k: _mean_std([m[k] for m in seeds]) for k in METRICS})
        row[DELTA] = "" if seeds is first_runs else _paired_text(paired_interval(by_seed(seeds), by_seed(first_runs)))
        row["wall (min)"] = wall_text(seeds)
        table.append(row)
    return pd.DataFrame(table).set_index("configuration")


DELTA = "Δ overall vs best, paired by seed (95% interval)"


def wall_text(runs: list[dict]) -> str:
    """A row's wall time per run (minutes, mean ± std) over the runs that say how fast the code is: a resumed run's
    wall time counts only its last process, and a run that shared the machine (CPU use below 95%) ran slower than
    the code does, so both are left out, and the text says how many."""
    whole = [m for m in runs if not m.get("resumed")]
    alone = [m for m in whole if not _shared(m)]
    left = [f"{n} {what} run{'s' if n > 1 else ''}" for n, what in
            ((len(whole) - len(alone), "shared"), (len(runs) - len(whole), "resumed")) if n]
    if alone:
        return _mean_std([m["wall_s"] / 60 for m in alone], 1) + (f" ({' and '.join(left)} left out)" if left else "")
    if whole:
        return _mean_std([m["wall_s"] / 60 for m in whole], 1) + " (every run shared)"
    return "resumed"


def _paired_text(p: dict) -> str:
    """"+0.004 [-0.005, +0.012] (n=2)", "-0.044 (n=1: no interval)" or "no seed in common"."""
    if p["n"] == 0:
        return "no seed in common"
    return _interval_text(p) + (f" (n={p['n']}: no interval)" if p["low"] is None else f" (n={p['n']})")


def ablation_runs(out: str | Path) -> dict[str, list[dict]]:
    """{row name: [metrics.json of each finished seed]} of an ablation's runs (<out>/<run_folder(name)>/seed<k>),
    the `best` row first: what `ablation_table` reads, from disk."""
    found: dict[str, list[dict]] = {}
    def order(path: Path):                          # best first, then by row name and seed number
        return path.parent.parent.name != "best", path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
    for path in sorted(Path(out).glob("*/seed*/metrics.json"), key=order):
        name = path.parent.parent.name.replace("+", ", ").replace("-", "=")        # run_folder, inverted
        m = json.loads(path.read_text())
        # where it lies now (as `pipelines.run` reports a loaded run): a row's folder is renamed when the best
        # configuration changes and the row it was becomes another
        m["config"]["out_dir"] = shown(path.parent.resolve())
        found.setdefault(name, []).append(m)
    return found


def best_run(seeds: list[dict]) -> dict:
    """The seed's metrics.json with the highest dev `overall` (chosen on dev only)."""
    return max(seeds, key=lambda m: m["overall"])


def publish_predictions(metrics: dict, dest: str | Path) -> list[Path]:
    """Copy a run's leaderboard files (<its out_dir>/predictions/*.csv) into `dest`."""
    src, dest = at_root(metrics["config"]["out_dir"]) / "predictions", at_root(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, dest / f.name)) for f in sorted(src.glob("*-output.csv"))]


# ------------------------------------------------------------------ 06: every gradient-combination method
# What 06 runs by default with the smoke profile (tests): the reference and a QP weighting (GradVac's state has its
# own resume test).
SMOKE_METHODS = ("sum", "upgrad")


def method_runs(out: str | Path, methods, seeds) -> dict[str, dict[int, dict]]:
    """{method: {seed: metrics.json}} of the runs in <out>/<method>/seed<k> that finished."""
    found = {}
    for method in methods:
        for seed in seeds:
            path = Path(out) / method / f"seed{seed}" / "metrics.json"
            if path.exists():
                found.setdefault(method, {})[seed] = json.loads(path.read_text())
    return found


def method_telemetry(out_dir: str | Path, stage: str = "multitask") -> dict:
    """Median step time, the median step time over the step's own forward + backward time (`per_fb`: the work
    every method shares, so the machine's speed cancels), median pairwise cosine of the raw task gradients (all
    pairs, all steps), mean conflicting pairs per step, and each task's median share of the update (`share <task>`:
    |w_t g_t| over the sum of the three, from the logged norm_after_<task>), from a run's metrics.jsonl."""
    s = steps(out_dir, stage)
    cosines = s[[f"cos_{a}_{b}" for a, b in TASK_PAIRS if f"cos_{a}_{b}" in s]].to_numpy().ravel()
    per_fb = (s["step_s"] / (s["t_forward"] + s["t_backward"])).median() if "t_forward" in s else float("nan")
    after = [f"norm_after_{t}" for t in TASK_NAMES]
    share = (s[after].div(s[after].sum(axis=1), axis=0).median().to_numpy() if set(after) <= set(s)
             else [float("nan")] * len(after))
    return {"step_s": float(s["step_s"].median()), "per_fb": float(per_fb),
            "median cos": float(pd.Series(cosines).median()), "conflicts / step": float(s["conflicts"].mean()),
            **{f"share {t}": float(v) for t, v in zip(TASK_NAMES, share)}}


def methods_table(runs: dict[str, dict[int, dict]], out: str | Path, reference: str = "sum") -> pd.DataFrame:
    """One row per method: dev metrics mean ± std over seeds, step cost relative to `reference`, median pairwise
    gradient cosine, conflicts per step and each task's share of the update (means over seeds). Step cost comes
    from separate runs, not interleaved (performance.md has the interleaved cost on identical batches), and a 2-core
    machine's speed drifts between runs by more than any method costs (forward times alone differ by a quarter): so
    each step is timed against its own forward + backward, which every method does alike (`method_telemetry`'s
    per_fb; median step_s where a run predates the phase timings), from the runs that had the machine to themselves
    where there are any."""
    tele = {m: {s: method_telemetry(Path(out) / m / f"seed{s}") for s in by_seed} for m, by_seed in runs.items()}
    key = "per_fb" if all(not math.isnan(t["per_fb"]) for ts in tele.values() for t in ts.values()) else "step_s"

    def step_s(method: str) -> float:
        alone = [s for s, m in runs.get(method, {}).items() if not _shared(m)] or list(runs.get(method, {}))
        return pd.Series([tele[method][s][key] for s in alone], dtype=float).mean()
    ref_step = step_s(reference)
    rows = []
    for method, by_seed in runs.items():
        row = {"method": method, "seeds": len(by_seed)}
        row.update({k: _mean_std([m[k] for m in by_seed.values()]) for k in METRICS})
        t = pd.DataFrame(list(tele[method].values())).mean()
        row["step cost (× sum)"] = round(step_s(method) / ref_step, 3) if pd.notna(ref_step) else None
        row["median cos"] = round(t["median cos"], 3)
        row["conflicts / step"] = round(t["conflicts / step"], 2)
        shares = [t[f"share {task}"] for task in TASK_NAMES]
        row["update share " + " / ".join(TASK_NAMES.values())] = (
            None if any(math.isnan(x) for x in shares) else " / ".join(f"{x:.2f}" for x in shares))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def paired_interval(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> dict:
    """Mean of the paired differences a - b over the seeds both have, with its t-interval (`interval`); the bounds
    are None when fewer than two seeds pair."""
    seeds = sorted(set(a) & set(b))
    mean, lo, hi = interval([a[s] - b[s] for s in seeds], level)
    return {"n": len(seeds), "mean": mean, "low": None if math.isnan(lo) else lo, "high": None if math.isnan(hi) else hi}


def _resolved_per_task(runs: dict[int, dict], reference: dict[int, dict], metric: str) -> str:
    """" Resolved per task: ..." for methods_conclusion (when `metric` is the tasks' mean), or ""."""
    found = resolved_tasks(runs, reference) if metric == "overall" else []
    return f" Resolved per task: {'; '.join(found)}." if found else ""


def resolved_tasks(runs: dict[int, dict], reference: dict[int, dict]) -> list[str]:
    """The task metrics whose paired 95% interval against the reference ({seed: metrics}) excludes zero, as
    "sts_pearson +0.003 [+0.002, +0.005]": a configuration may trade one task for another with the mean unmoved."""
    found = []
    for m in METRICS[:-1]:
        if any(m not in r for r in (*runs.values(), *reference.values())):
            continue
        ci = paired_interval({s: r[m] for s, r in runs.items()}, {s: r[m] for s, r in reference.items()})
        if ci["low"] is not None and verdict(ci["low"], ci["high"], sign=0) == "holds":     # "differs" holds
            found.append(f"{m} {_interval_text(ci)}")
    return found


def methods_conclusion(runs: dict[str, dict[int, dict]], reference: str = "sum", metric: str = "overall") -> str:
    """Which method, if any, beats `reference` on dev `metric`: a paired 95% t-interval over seeds that excludes
    zero (markdown); with each method, the task metrics it moves resolved either way."""
    if reference not in runs:
        return f"- No `{reference}` runs: nothing to compare with."
    base = {s: m[metric] for s, m in runs[reference].items()}
    lines, winners, unresolved = [], [], {}
    for method, by_seed in runs.items():
        if method == reference:
            continue
        ci = paired_interval({s: m[metric] for s, m in by_seed.items()}, base)
        if ci["low"] is None:
            unresolved[method] = ci["n"]
            lines.append(f"- **{method}** vs {reference}: {metric} difference {ci['mean']:+.3f}; not resolved "
                         f"(n={ci['n']}).")
            continue
        verdict = ("**beats**" if ci["low"] > 0 else "**is worse than**" if ci["high"] < 0
                   else "is not distinguishable from")
        if ci["low"] > 0:
            winners.append(method)
        lines.append(f"- **{method}** {verdict} {reference}: {metric} difference {ci['mean']:+.3f}, 95% interval "
                     f"[{ci['low']:+.3f}, {ci['high']:+.3f}] (paired over {ci['n']} seeds)."
                     + _resolved_per_task(by_seed, runs[reference], metric))
    if not lines:
        return f"- Only `{reference}` has runs so far: nothing to compare with it."
    if winners:
        summary = f"**Beats `{reference}` (95% interval above zero): {', '.join(winners)}.**"
    elif unresolved and len(unresolved) == len(lines):
        summary = (f"**Not resolved (n={max(unresolved.values())}):** fewer than two seeds per method give no "
                   "interval; run more `seeds`.")
    else:
        summary = f"**No method beats `{reference}`** with a 95% paired interval that excludes zero."
    return "\n".join([summary, "", *lines])


