"""Tables, plots and the generated report: what the notebooks show and `make report` writes.

`python -m mtlib report --execute` runs every notebook with papermill (reports/notebooks/), then
writes reports/results.md from the runs' metrics.json files; without --execute it only rewrites
results.md from the runs already there.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from .evaluate import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
TASK_PAIRS = (("sst", "para"), ("sst", "sts"), ("para", "sts"))
TASK_NAMES = {"sst": "SST", "para": "Quora", "sts": "STS"}
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
# (notebook, papermill parameters, run label) executed by `make report`, in order.
PLAN = (
    ("01_baseline", {}, "01_baseline"),
    ("02_gradient_surgery", {"baseline_dir": "runs/01_baseline/baseline"}, "02_gradient_surgery"),
    ("03_cosine_similarity", {}, "03_cosine_similarity"),
    ("04_cs_gs", {}, "04_cs_gs"),
    ("04_cs_gs", {"dropout": 0}, "04_cs_gs-no-dropout"),
    ("05_novel", {}, "05_novel"),
    ("05_novel", {"dropout": 0}, "05_novel-no-dropout"),
)
# results.md rows: (table, row name, run folder under reports/runs)
ROWS = (
    (1, "Baseline", "01_baseline/baseline"),
    (1, "Gradient Surgery (GS)", "02_gradient_surgery/pcgrad_sum"),
    (1, "GS, mean reduction (not in the report)", "02_gradient_surgery/pcgrad_mean"),
    (1, "Cosine Similarity (CS)", "03_cosine_similarity/cs"),
    (1, "CS + GS", "04_cs_gs/cs_gs"),
    (1, "CS + GS, no dropout", "04_cs_gs-no-dropout/cs_gs"),
    (2, "Novel: CS + GS", "05_novel/novel"),
    (2, "Novel: CS + GS, no dropout", "05_novel-no-dropout/novel"),
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


# ------------------------------------------------------------------ plots
def _save(fig, figures_dir: str | Path | None, name: str) -> None:
    if figures_dir:
        folder = at_root(figures_dir)
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")


def plot_training(out_dir: str | Path, title: str, figures_dir=None, name: str = "training", window: int = 20):
    """Smoothed training losses per task and dev metrics after every epoch."""
    import matplotlib.pyplot as plt
    s, e = steps(out_dir), epochs(out_dir)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for task in ("sst", "para", "sts"):
        col = f"loss_{task}"
        if col in s:
            axes[0].plot(s["global_step"], s[col].rolling(window, min_periods=1).mean(), label=TASK_NAMES[task])
    axes[0].set(title=f"{title}: training loss (rolling mean of {window})", xlabel="step", yscale="log")
    axes[0].legend()
    e = e.reset_index(drop=True)
    for metric in METRICS:
        if metric in e:
            axes[1].plot(e.index, e[metric], marker="o", label=metric)
    axes[1].set_xticks(e.index, [f"{st}\n{ep}" for st, ep in zip(e["stage"], e["epoch"])], fontsize=7)
    axes[1].set(title=f"{title}: dev metrics after each epoch", ylim=(-0.05, 1))
    axes[1].legend(fontsize=8)
    _save(fig, figures_dir, name)
    return fig


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


def plot_gradients(frames: dict[str, pd.DataFrame], figures_dir=None, name: str = "gradients"):
    """Row per run: pairwise cosines (raw, faint; smoothed, solid) and the fraction kept by PCGrad."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(frames), 2, figsize=(12, 3.4 * len(frames)), squeeze=False)
    for (label, f), (ax_cos, ax_kept) in zip(frames.items(), axes):
        for a, b in TASK_PAIRS:
            line, = ax_cos.plot(f.index, f[f"cos_{a}_{b}"], alpha=0.2)
            ax_cos.plot(f.index, f[f"cos_{a}_{b}_smooth"], color=line.get_color(),
                        label=f"{TASK_NAMES[a]}–{TASK_NAMES[b]}")
        ax_cos.axhline(0, color="black", lw=0.7)
        ax_cos.set(title=f"{label}: cosine between task gradients (shared encoder)", xlabel="step")
        ax_cos.legend(fontsize=8)
        for t in ("sst", "para", "sts"):
            ax_kept.plot(f.index, f[f"kept_{t}_smooth"], label=TASK_NAMES[t])
        ax_kept.set(title=f"{label}: |projected g| / |g| (rolling mean)", xlabel="step", ylim=(0, 1.05))
        ax_kept.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, figures_dir, name)
    return fig


def pcgrad_findings(f: pd.DataFrame, skip: int = 10) -> dict:
    """Numbers behind the report's claim: after the first `skip` steps, are STS gradients near-orthogonal
    to the others, and does PCGrad nearly annihilate them?"""
    late = f.iloc[skip:] if len(f) > skip else f
    out = {f"median |cos {a}-{b}|": float(late[f"cos_{a}_{b}"].abs().median()) for a, b in TASK_PAIRS}
    out.update({f"median kept {t}": float(late[f"kept_{t}"].median()) for t in ("sst", "para", "sts")})
    out.update({f"median |g_{t}|": float(late[f"norm_before_{t}"].median()) for t in ("sst", "para", "sts")})
    out["share of steps with a conflict"] = float((late["conflicts"] > 0).mean())
    out["near-orthogonal (median |cos| of STS pairs < 0.1)"] = bool(
        max(out["median |cos sst-sts|"], out["median |cos para-sts|"]) < 0.1)
    out["STS annihilated (median kept < 0.5)"] = bool(out["median kept sts"] < 0.5)
    return out


def pcgrad_conclusion(findings: dict, runs: dict[str, dict], frames: dict[str, pd.DataFrame],
                      baseline: dict | None = None) -> str:
    """The 02 notebook's conclusion, written from the numbers (markdown)."""
    f = findings
    cos_sts = max(f["median |cos sst-sts|"], f["median |cos para-sts|"])
    lines = []
    if baseline is not None:
        d = runs["sum"]["overall"] - baseline["overall"]
        paper = PAPER["Gradient Surgery (GS)"][3] - PAPER["Baseline"][3]
        lines.append(
            f"- **Does GS hurt the baseline?** PCGrad changes dev overall by {d:+.3f} ({runs['sum']['overall']:.3f} vs "
            f"{baseline['overall']:.3f}; STS r {runs['sum']['sts_pearson']:.3f} vs {baseline['sts_pearson']:.3f}); "
            f"the report saw {paper:+.3f}. " + ("Here, as in the report, it hurts." if d < -0.02 else
                                                 "Here it does not: the report's failure is not reproduced."))
    lines += [
        f"- **Near-orthogonal STS gradients:** after the first steps the median |cos| between the STS gradient and "
        f"the others is {f['median |cos sst-sts|']:.3f} (SST) and {f['median |cos para-sts|']:.3f} (Quora); "
        f"SST–Quora {f['median |cos sst-para|']:.3f}. The report's claim is "
        + ("**supported**" if f["near-orthogonal (median |cos| of STS pairs < 0.1)"] else "**not supported**")
        + f" (threshold 0.1; max of the two is {cos_sts:.3f}).",
        f"- **Annihilation:** PCGrad keeps a median {f['median kept sts']:.1%} of the STS gradient's norm "
        f"(SST {f['median kept sst']:.1%}, Quora {f['median kept para']:.1%}); conflicts occur on "
        f"{f['share of steps with a conflict']:.0%} of steps. 'PCGrad nearly annihilates STS' is "
        + ("**supported**" if f["STS annihilated (median kept < 0.5)"] else "**not supported**: a projection "
           "against a near-orthogonal gradient removes little") + ".",
        f"- **Gradient scale:** the median raw gradient norms are SST {f['median |g_sst|']:.3g}, Quora "
        f"{f['median |g_para|']:.3g}, STS {f['median |g_sts|']:.3g}: the "
        f"{TASK_NAMES[max(('sst', 'para', 'sts'), key=lambda t: f[f'median |g_{t}|'])]} gradient is the largest "
        "and steers the summed update most.",
    ]
    if {"sum", "mean"} <= set(runs):
        ratio = frames["mean"]["norm_combined"].median() / frames["sum"]["norm_combined"].median()
        d = runs["mean"]["overall"] - runs["sum"]["overall"]
        lines.append(
            f"- **mean vs sum reduction:** averaging makes the combined encoder gradient {ratio:.2f}x as long "
            f"(median), yet dev overall moves by {d:+.3f} ({runs['mean']['overall']:.3f} vs "
            f"{runs['sum']['overall']:.3f}). AdamW divides each update by the running RMS of the gradient, so a "
            "constant rescaling of the gradient changes its step very little: the hypothesis that averaging cuts "
            "the encoder's step to a third is " + ("**not supported**" if abs(d) < 0.02 else "**supported**")
            + " (threshold |difference| 0.02).")
    return "\n".join(lines)


# ------------------------------------------------------------------ results.md
def results_markdown(runs_dir: str | Path = "reports/runs") -> str:
    """The report's two dev tables, ours beside theirs, generated from the runs' metrics.json."""
    runs_dir = at_root(runs_dir)
    lines = ["# Results (generated by `make report`; do not edit)", "",
             "Dev-set numbers. Ours come from `reports/runs/*/metrics.json` (best dev epoch of the final stage);",
             "the report's are Chada & Jolly's tables (section 5.4). `overall` is the mean of the three metrics, "
             "as in the report.", ""]
    meta = []
    for table, title in ((1, "Multitask fine-tuning (rungs 1-4)"), (2, "Novel approach (rung 5)")):
        lines += [f"## {title}", "",
                  "| model | SST acc | Quora acc | STS r | overall | report SST | report Quora | report STS "
                  "| report overall | best epoch | wall (min) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for t, name, folder in ROWS:
            if t != table:
                continue
            path = runs_dir / folder / "metrics.json"
            if not path.exists():
                lines.append(f"| {name} | not run | | | | " + " | ".join(_paper(name)) + " | | |")
                continue
            m = json.loads(path.read_text())
            ours = [f"{m[k]:.3f}" for k in METRICS]
            lines.append(f"| {name} | " + " | ".join(ours) + " | " + " | ".join(_paper(name))
                         + f" | {m['final_stage']} {m['best_epoch']} | {m['wall_s'] / 60:.1f} |")
            c = m["config"]
            meta.append(f"| {name} | `{folder}/metrics.json` | {m['device']} | {m['precision']} | {m['encoder']} "
                        f"| {c['profile']} | {c['seed']} | {c['dropout']} | {c['lr']} | {c['batch_size']} "
                        f"| {c['steps_per_epoch'] or 'full'} | {m['finished_at']} |")
        lines.append("")
    lines += ["## Runs", "", "| model | metrics | device | precision | encoder | profile | seed | dropout | lr "
              "| batch | steps/epoch | finished |", "|---|---|---|---|---|---|---|---|---|---|---|---|", *meta, "",
              "## Caveats", "",
              "- **Quora is not the official split.** The shared data's Quora train/dev/test files are a split of the "
              "official `quora-dev.csv` (20,214 pairs), so Quora numbers are not comparable with the report's, which "
              "trained on the official 141k-pair train set.",
              "- **The encoder saw Quora.** The default encoder, all-MiniLM-L6-v2, was pre-trained on sentence pairs "
              "that include Quora duplicate questions, so its Quora (and likely STS) numbers are optimistic. The "
              "report fine-tuned BERT-base.",
              "- **Schedule.** The `cpu` profile keeps the report's hyper-parameters (lr 1e-5, batch 16, 1+3+1 "
              "epochs) but caps every epoch at `steps_per_epoch` steps so that all runs fit on 2 CPU cores; the "
              "`paper` profile runs full epochs.",
              "- The report's tables label the Quora column 'Correl' and STS 'Acc'; the metrics are Quora accuracy "
              "and STS Pearson r, as here.", ""]
    return "\n".join(lines)


def _paper(name: str) -> list[str]:
    return [f"{v:.3f}" for v in PAPER[name]] if name in PAPER else ["—"] * 4


def write_results(runs_dir="reports/runs", out="reports/results.md") -> Path:
    path = at_root(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, results_markdown(runs_dir))
    return path


class ReportError(RuntimeError):
    """A notebook failed under papermill, or an unknown run label was asked for."""


def execute(profile: str | None = None, only: list[str] | None = None, reports_dir: str | Path = "reports") -> float:
    """Run the notebooks of PLAN with papermill into <reports_dir>/notebooks/ (runs and figures beside them);
    returns the wall time (s)."""
    import papermill as pm
    labels = [label for _, _, label in PLAN]
    unknown = sorted(set(only or []) - set(labels))
    if unknown:
        raise ReportError(f"unknown run label(s) {', '.join(unknown)}; valid: {', '.join(labels)}")
    start, reports = time.time(), Path(reports_dir)       # relative paths are taken from the repository root
    at_root(reports / "notebooks").mkdir(parents=True, exist_ok=True)
    for notebook, params, label in PLAN:
        if only and label not in only:
            continue
        params = {**{k: str(reports / v) if k.endswith("_dir") else v for k, v in params.items()},   # PLAN's *_dir: in reports
                  "out_dir": str(reports / "runs" / label), "figures_dir": str(reports / "figures"),
                  "figure_prefix": label, "progress": False, **({"profile": profile} if profile else {})}
        t0, executed = time.time(), reports / "notebooks" / f"{label}.ipynb"
        print(f"papermill notebooks/{notebook}.ipynb -> {executed} {params}", flush=True)
        try:
            pm.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(at_root(executed)),
                                parameters=params, cwd=str(ROOT), progress_bar=False)
        except pm.PapermillExecutionError as err:
            raise ReportError(f"notebooks/{notebook}.ipynb (run {label}) failed in cell [{err.exec_count}]: "
                              f"{err.ename}: {err.evalue.splitlines()[0] if err.evalue else ''}; the full traceback "
                              f"is in {executed}") from None
        print(f"  done in {(time.time() - t0) / 60:.1f} min", flush=True)
    return time.time() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mtlib report")
    ap.add_argument("--execute", action="store_true", help="run the notebooks with papermill first")
    ap.add_argument("--profile", default=None, help="smoke, cpu or paper (default: $MTLIB_PROFILE, else auto)")
    ap.add_argument("--only", nargs="*", help="run labels to execute (default: all)")
    ap.add_argument("--reports", default="reports", help="where --execute writes notebooks/, runs/, figures/")
    ap.add_argument("--runs", default="reports/runs")
    ap.add_argument("--out", default="reports/results.md")
    args = ap.parse_args(argv)
    if args.execute:
        wall = execute(args.profile, args.only, args.reports)
        print(f"notebooks executed in {wall / 60:.1f} min")
    print(write_results(args.runs, args.out))


# ------------------------------------------------------------------ 06: every gradient-combination method
# What 06 runs by default with the smoke profile (tests): the reference, a QP weighting and the stateful one.
SMOKE_METHODS = ("sum", "upgrad", "gradvac")


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
    """Median step time, median pairwise cosine of the raw task gradients (all pairs, all steps) and mean
    conflicting pairs per step, from a run's metrics.jsonl."""
    s = steps(out_dir, stage)
    cosines = s[[f"cos_{a}_{b}" for a, b in TASK_PAIRS if f"cos_{a}_{b}" in s]].to_numpy().ravel()
    return {"step_s": float(s["step_s"].median()), "median cos": float(pd.Series(cosines).median()),
            "conflicts / step": float(s["conflicts"].mean())}


def methods_table(runs: dict[str, dict[int, dict]], out: str | Path, reference: str = "sum") -> pd.DataFrame:
    """One row per method: dev metrics mean ± std over seeds, step cost relative to `reference` (median step_s,
    separate runs, not interleaved: see performance.md for the interleaved cost), median pairwise gradient
    cosine and conflicts per step (means over seeds)."""
    tele = {m: [method_telemetry(Path(out) / m / f"seed{s}") for s in by_seed] for m, by_seed in runs.items()}
    ref_step = pd.Series([t["step_s"] for t in tele.get(reference, [])], dtype=float).mean()
    rows = []
    for method, by_seed in runs.items():
        row = {"method": method, "seeds": len(by_seed)}
        for k in METRICS:
            v = pd.Series([m[k] for m in by_seed.values()])
            row[k] = f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"
        t = pd.DataFrame(tele[method]).mean()
        row["step cost (× sum)"] = round(t["step_s"] / ref_step, 3) if pd.notna(ref_step) else None
        row["median cos"] = round(t["median cos"], 3)
        row["conflicts / step"] = round(t["conflicts / step"], 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def paired_interval(a: dict[int, float], b: dict[int, float], level: float = 0.95) -> dict:
    """Mean of the paired differences a - b over the seeds both have, with its t-interval (n - 1 df)."""
    from scipy import stats
    seeds = sorted(set(a) & set(b))
    d = pd.Series([a[s] - b[s] for s in seeds], dtype=float)
    n = len(d)
    if n < 2:
        return {"n": n, "mean": float(d.mean()) if n else float("nan"), "low": None, "high": None}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / n ** 0.5)
    return {"n": n, "mean": float(d.mean()), "low": float(d.mean()) - half, "high": float(d.mean()) + half}


def methods_conclusion(runs: dict[str, dict[int, dict]], reference: str = "sum", metric: str = "overall") -> str:
    """Which method, if any, beats `reference` on dev `metric`: a paired 95% t-interval over seeds that excludes
    zero (markdown)."""
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
                     f"[{ci['low']:+.3f}, {ci['high']:+.3f}] (paired over {ci['n']} seeds).")
    if winners:
        summary = f"**Beats `{reference}` (95% interval above zero): {', '.join(winners)}.**"
    elif unresolved and len(unresolved) == len(lines):
        summary = (f"**Not resolved (n={max(unresolved.values())}):** fewer than two seeds per method give no "
                   "interval; run more `seeds`.")
    else:
        summary = f"**No method beats `{reference}`** with a 95% paired interval that excludes zero."
    return "\n".join([summary, "", *lines])


def plot_methods(runs: dict[str, dict[int, dict]], table: pd.DataFrame, figures_dir=None, name: str = "methods"):
    """The methods side by side: each dev metric (mean, with every seed as a dot) and the step cost."""
    import matplotlib.pyplot as plt
    import numpy as np
    methods = list(runs)
    fig, (ax, ax_cost) = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(METRICS)
    for k, metric in enumerate(METRICS):
        x = np.arange(len(methods)) + (k - (len(METRICS) - 1) / 2) * width
        values = [[m[metric] for m in runs[meth].values()] for meth in methods]
        bars = ax.bar(x, [np.mean(v) for v in values], width, label=metric, alpha=0.75)
        for xi, v in zip(x, values):
            ax.plot([xi] * len(v), v, ".", color=bars.patches[0].get_facecolor(), mec="black", mew=0.4, ms=5)
    ax.set_xticks(np.arange(len(methods)), methods)
    ax.set(title="dev metrics by gradient-combination method (bars: mean over seeds; dots: seeds)", ylim=(-0.05, 1))
    ax.legend(fontsize=8, ncol=4)
    cost = pd.to_numeric(table["step cost (× sum)"].reindex(methods), errors="coerce")   # NaN without sum runs
    ax_cost.barh(methods, cost, color="gray")
    ax_cost.axvline(1.0, color="black", lw=0.7)
    ax_cost.invert_yaxis()
    ax_cost.set(title="step time / sum (median step_s)", xlabel="× sum")
    fig.tight_layout()
    _save(fig, figures_dir, name)
    return fig
