"""The report's tables and prose: what the notebooks show and results.md holds (`write_results`), from the runs
that `runs` reads and the statistics of `stats`."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd

from ..config import field_defaults
from ..data import TASK_NAMES
from ..files import atomic_write_text
from ..notebook import shown
from .paper import HEADS, METRICS, PAPER, ROWS, RUNG_TABLES, SAME_RUNS, SINGLE, TASK_PAIRS
from .ensemble import dev_sizes, ensemble_cells, seed_ensemble
from .units import split_key
from .runs import (ablation_runs, cpu_use, finished_runs, gradient_frame, log_path, method_folder, method_runs,
                   method_telemetry, quiet_run, repo_path, runs_by_seed, seed_runs, shared_machine,
                   single_task_runs, timed_runs)
from .stats import (MIN_SEEDS, claims_table, dev_se, holm, interval_text, mean_std, paired_interval, paired_p,
                    paired_text, resolved, resolved_tasks)


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


def mean_beside_report(seeds: list[dict], row: str, name: str) -> pd.DataFrame:
    """A configuration's dev metrics as mean ± sample std over its seeds, beside the report's `row` of PAPER: a mean,
    never the seed that scored best on dev, which would pick seed noise in our favour."""
    ours = {METRIC_NAMES[k]: mean_std([m[k] for m in seeds]) for k in METRICS}
    return pd.DataFrame({f"{name}, mean ± sd over {len(seeds)} seed(s)": ours,
                         f"the report: {row}": {METRIC_NAMES[k]: f"{v:.3f}" for k, v in zip(METRICS, PAPER[row])}}).T


# Each rung's one-line finding (`finding`): the metric its question is about, and the report's row it changes.
FINDING = {
    "Baseline": ("overall", None),
    "Gradient Surgery (GS)": ("sts_pearson", "Baseline"),
    "Cosine Similarity (CS)": ("sts_pearson", "Baseline"),
    "CS + GS": ("overall", "Cosine Similarity (CS)"),
    "CS + GS, no dropout": ("overall", "CS + GS"),
    "Novel: CS + GS": ("overall", "CS + GS"),
    "Novel: CS + GS, no dropout": ("overall", "CS + GS, no dropout"),
}
METRIC_NAMES = {"sst_acc": "SST acc", "para_acc": "Quora acc", "sts_pearson": "STS r", "overall": "overall"}


def finding(row: str, run: dict, against: dict | None = None) -> str:
    """A rung's computed one-line finding (markdown): `run`'s value of the metric its question is about (FINDING)
    beside the report's `row` of PAPER, and the change from the row it builds on: ours where `against` (that row's
    run, e.g. 02's baseline from 01) is given, else the report's alone. One run, one seed: results.md tests the
    claims over every seed."""
    metric, base = FINDING[row]
    i, name, ours = METRICS.index(metric), METRIC_NAMES[metric], run[metric]
    paper = PAPER[row][i]
    text = f"**Finding.** {row} reaches {name} {ours:.3f} (the report: {paper:.3f}"
    if base and against is not None:
        d, d_paper = ours - against[metric], paper - PAPER[base][i]
        return text + (f"); our {base} run has {against[metric]:.3f}, a change of {d:+.3f}, "
                       f"{'in the direction of' if (d > 0) == (d_paper > 0) else 'against'} the report's change "
                       f"({d_paper:+.3f}; one seed: the claims table tests direction and size over every seed).")
    return text + (f", from {PAPER[base][i]:.3f} in its {base} row)." if base else ").")


def pcgrad_findings(f: pd.DataFrame, skip: int = 10, noise: list[dict] | None = None) -> dict:
    """Numbers behind the report's claim: after the first `skip` steps, are STS gradients near-orthogonal to the
    others, does PCGrad nearly annihilate them, and how do the cosines compare with the noise floor (the cosine
    between one task's gradients on two different batches, `train.gradient_cosines`: a run's gradient_noise.json) and with random signs?"""
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
            floor = same[same["task_a"] == t]["cosine"].abs()
            out[f"noise floor |cos| {t} (same task, other batch)"] = float(floor.median())
            out[f"noise floor |cos| {t}, 25th-75th percentile"] = f"{floor.quantile(0.25):.3f}–{floor.quantile(0.75):.3f}"
        out["noise floor pairs per task"] = int(len(same) // 3)
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
            "|cos| " + ", ".join(f"{TASK_NAMES[t]} {v:.3f} (middle half "
                                 f"{f[f'noise floor |cos| {t}, 25th-75th percentile']})" for t, v in floor.items())
            + f" over {f['noise floor pairs per task']} pairs of batches a task; across tasks {cross:.3f}, {reading}.")
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


def write_results(runs_dir, out) -> Path:
    path = repo_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, results_markdown(runs_dir, out))
    return path


def results_markdown(runs_dir: str | Path, out: str | Path | None = None) -> str:
    """One device's results page: the report's two dev tables, ours (mean ± std over seeds) beside theirs, and the
    claims table, generated from the runs' metrics.json under `runs_dir` (reports/runs/<device key>)."""
    rows = {name: seed_runs(runs_dir, label, sub) for _, name, label, sub in ROWS}
    lines = [f"# Results on `{Path(runs_dir).name}` (generated by `make tables`; do not edit)", "",
             "Dev-set numbers. Ours: mean ± standard deviation over the seeds that finished (n), each the epoch the "
             "run's final stage kept (`select`: its last by default; its best on dev where the run set `select=best` "
             "or predates that default, which matters only for runs of several epochs: the README's ladder shows "
             "their last epoch, with the selected one beside) "
             f"(`{Path(runs_dir).as_posix()}/<notebook>/seed<k>/*/metrics.json`). The report's: Chada "
             "& Jolly's tables (section 5.4). `overall` is the mean of the three metrics, as in the report. Every Quora "
             "number is optimistic and not comparable with the report's (Caveats, at the end: the split, and an "
             "encoder that saw Quora duplicates).", ""]
    majority = next((m["majority"] for r in rows.values() for m in r.values() if "majority" in m), None)
    if majority:
        lines += [f"Read every row against the majority class on dev: always answering the most common training "
                  f"label scores SST {majority['sst_acc']:.3f} and Quora {majority['para_acc']:.3f}.", ""]
    meta = []
    rungs = any(rows.values())        # a folder of another machine's runs may hold 06 or 07 alone
    # the rungs proper (01-05, not the control): without them, 02, 06 and the claims are not said to be missing
    ladder = any(rows[name] for _, name, label, _ in ROWS if label != "control")
    if not ladder:
        lines += ["No run of the report's rungs (01-05) in this folder, so neither their tables nor the claims: "
                  "`make report` on this device trains them.", ""]
    for table, title in (RUNG_TABLES if rungs else ()):
        if not ladder and not any(rows[name] for t, name, _, _ in ROWS if t == table):
            continue                  # the control alone: its table, not the rungs' empty ones
        start = len(lines)
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
            ours = [mean_std([m[k] for m in runs.values()]) for k in METRICS]
            lines.append(f"| {name} | " + " | ".join(ours) + f" | {len(runs)} | " + " | ".join(_paper(name))
                         + f" | {wall_text(list(runs.values()))} |")
            lines += _ensemble_line(name, repo_path(runs_dir) / label, f"seed*/{sub}")
            meta += [_run_line(name, seed, f"{label}/seed{seed}/{sub}", m) for seed, m in runs.items()]
        if any(": ensemble of " in line for line in lines[start:]):
            lines += ["", ENSEMBLE_NOTE]
        lines.append("")
    lines += (single_task_markdown(runs_dir) + merges_markdown(runs_dir) + methods_markdown(runs_dir, meta, say_missing=ladder)
              + _beyond_markdown(runs_dir, meta) + pcgrad_seeds_markdown(runs_dir, say_missing=ladder))
    if ladder:
        lines += claims_markdown(claims_table(rows))
    lines += ["", "## Runs", "", "| model | seed | folder | device | precision | encoder | profile | dropout | lr | batch "
              "| epochs × steps | mtlib commit | wall (min) | CPU use | finished |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *meta, "",
              "`wall (min)` in the tables above is the mean ± std over the runs whose wall time is the code's speed: a "
              "resumed run's counts only its last process, and a run with CPU use below 95% shared the machine, so "
              "both are left out, and so are runs of unknown CPU use where a row has runs known to be quiet (the "
              "table says how many). `CPU use`: the run's CPU seconds over wall seconds × "
              "threads (recorded since mtlib 983957f; runs that had the 2-core machine to themselves measure 96-98%).",
              "", *speed_note(runs_dir),
              "## Caveats", "",
              "- **Quora is not the official split.** The shared data's Quora train/dev/test files are a split of the "
              "official `quora-dev.csv` (20,214 pairs), so Quora numbers are not comparable with the report's, which "
              "trained on the official 141k-pair train set.",
              f"- **The encoder saw Quora.** {encoder_caveat(runs_dir)} The report fine-tuned BERT-base.",
              "- **Schedule.** The `cpu` profile (mtlib/config.py says why each value) trains one epoch capped at 700 "
              "steps at the learning rate `make sweep` chose on dev (reports/lr-sweep.md); the report trained 3 "
              "full epochs at 1e-5 (the `paper` profile).",
              "- The report's tables label the Quora column 'Correl' and STS 'Acc'; the metrics are Quora accuracy "
              "and STS Pearson r, as here.", ""]
    return "\n".join(_once(lines, ENSEMBLE_NOTE))


def _once(lines: list[str], note: str) -> list[str]:
    """`lines` with `note` kept where it first appears (each table that needs it adds it); each later copy goes, with
    the blank line after it."""
    out, seen, skip_blank = [], False, False
    for line in lines:
        if skip_blank and line == "":
            skip_blank = False
            continue
        skip_blank = line == note and seen
        if skip_blank:
            continue
        seen = seen or line == note
        out.append(line)
    return out


ENSEMBLE_NOTE = ("*ensemble of N seeds*: the seeds' probabilities averaged (SST's softmax, Quora's sigmoid, the STS "
                 "score; `python -m mtlib ensemble`, docs/ensembles.md), scored on dev; in brackets, its change from "
                 "the seeds' mean.")


def _ensemble_line(name: str, folder: Path, pattern: str) -> list[str]:
    """Under a row whose every seed saved its probabilities: the ensemble of its seeds (mean probabilities), each
    metric with its change from the seeds' mean in brackets; nothing where a seed predates probabilities.npz."""
    runs = finished_runs(folder, pattern)
    found = seed_ensemble([f for f, _ in runs.values()])
    if found is None:
        return []
    cells = ensemble_cells(found, [m for _, m in runs.values()])
    return [f"| {name}: ensemble of {len(runs)} seeds | " + " | ".join(cells) + f" | {len(runs)} | "
            + " | ".join(["—"] * 4) + " | |"]


def claims_markdown(claims: pd.DataFrame) -> list[str]:
    """results.md's claims table: each claim's paired difference, interval and verdict."""
    lines = ["## The report's claims, tested", "",
             "Each claim is a paired difference over the seeds both rows share (same seed: same data order and "
             "initial heads), with its mean and a 95% t-interval (n − 1 degrees of freedom). **holds**: the interval "
             "excludes zero on the claimed side; **reversed**: it excludes zero on the other side; **not resolved**: "
             f"it contains zero, or n < {MIN_SEEDS}, or the seeds' differences have no spread (the cell says which).",
             "",
             "| claim | metric | difference | n | mean | 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
    for r in claims.itertuples():
        ci = "" if math.isnan(r.lo) else f"[{r.lo:+.3f}, {r.hi:+.3f}]"
        mean = "" if math.isnan(r.mean) else f"{r.mean:+.3f}"
        lines.append(f"| {r.claim} | {r.metric} | {r.difference} | {r.n} | {mean} | {ci} | {r.verdict} |")
    lines += ["", "### Against the report's effect size", "",
              "The report's effect is the difference of its own two rows ((e') is not in the report: its effect is the edge (e) "
              "measures here, which its half-width has to resolve). **excluded**: our interval leaves it out "
              "(the report's size does not reproduce in this setting: this encoder, profile and device); "
              "**consistent**: our interval contains it and its half-width is smaller than it; **too wide to tell**: "
              "it contains it, but its half-width (the smallest effect these seeds resolve) exceeds it, or the interval is "
              "degenerate (n < 3, or every seed the same difference) and so tests nothing.", "",
              "| claim | metric | effect | against | ours | half-width | n | size |", "|---|---|---|---|---|---|---|---|"]
    for r in claims.itertuples():
        report = "—" if r.report is None or math.isnan(r.report) else f"{r.report:+.3f}"
        half = "" if math.isnan(r.half) else f"{r.half:.3f}"
        mean = "" if math.isnan(r.mean) else f"{r.mean:+.3f}"
        lines.append(f"| {r.claim} | {r.metric} | {report} | {r.against} | {mean} | {half} | {r.n} | {r.size} |")
    return lines


def merges_markdown(runs_dir: str | Path) -> list[str]:
    """Every `python -m mtlib merges` result under runs_dir (merges.json): the novel pipeline's three single-task
    models merged each way, on dev before any multitask step, one row per merge and a column per run (seed)."""
    found = sorted(repo_path(runs_dir).rglob("merges.json"))
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


def single_task_markdown(runs_dir: str | Path) -> list[str]:
    """results.md's section: the single-task models of the same encoder, which every novel run trains first (one
    model per task from the same weights, one pass, that run's heads), beside the run's multitask model and, where
    the heads and schedule are the same, 07's best multitask model: per task, paired by seed."""
    groups = single_task_runs(runs_dir)
    if not groups:
        return []
    best = {m["config"]["seed"]: m for m in ablation_runs(repo_path(runs_dir) / "07_beyond").get("best", [])}
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
                         + " | ".join(mean_std([m[k] for m in by_seed.values()]) for k in SINGLE.values()) + " |")
            if by_seed is not single:
                diffs = [paired_interval({s: m[k] for s, m in by_seed.items()}, {s: m[k] for s, m in single.items()})
                         for k in SINGLE.values()]
                lines.append(f"| `{row}` | − single-task, paired | {diffs[0]['n']} | "
                             + " | ".join(interval_text(d) for d in diffs) + " |")
    return lines + [""]


def _config(m: dict) -> dict:
    """A run's config with every knob it lacks (added since it ran) at the default, which keeps the old behaviour."""
    return {**field_defaults(saved=True), **m["config"]}


def pcgrad_seeds_markdown(runs_dir: str | Path, say_missing: bool = True) -> list[str]:
    """results.md's section for 02's gradient analysis over every seed of the PCGrad (sum) run: one row per seed of
    `pcgrad_findings` (noise floor where the run kept gradient_noise.json), and the report's two explanations
    (near-orthogonal STS gradients, STS annihilated by the projection) counted over the seeds. Without 02's runs:
    a line that says how to make them, or nothing (`say_missing=False`: a folder without the rungs says so once)."""
    found = (repo_path(runs_dir) / "02_gradient_surgery").glob("seed*/pcgrad_sum")
    folders = sorted((d for d in found if log_path(d)), key=lambda d: int(d.parent.name.removeprefix("seed")))
    lines = ["## 02: PCGrad's gradients, every seed", ""]
    if not folders:
        return lines + [f"Not run yet: `{report_command(runs_dir, '02_gradient_surgery')}`.", ""] \
            if say_missing else []
    rows = {}
    for folder in folders:
        noise = folder / "gradient_noise.json"
        f = pcgrad_findings(gradient_frame(folder), noise=json.loads(noise.read_text()) if noise.exists() else None)
        kept = "noise floor pairs per task" in f
        rows[folder.parent.name.removeprefix("seed")] = {
            **{f"median abs cos {TASK_NAMES[a]}-{TASK_NAMES[b]}": f"{f[f'median |cos {a}-{b}|']:.3f}" for a, b in TASK_PAIRS},
            **{f"noise floor {TASK_NAMES[t]} (middle half)": f"{f[f'noise floor |cos| {t} (same task, other batch)']:.3f} "
               f"({f[f'noise floor |cos| {t}, 25th-75th percentile']})" if kept else "not kept" for t in ("sst", "para", "sts")},
            "pairs per task": f["noise floor pairs per task"] if kept else "",
            "cross-task, same model": f"{f['cross-task |cos| on the same model']:.3f}" if kept else "not kept",
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
              "is the median |cos| between one task's gradients on two batches of the final model (and the middle half of those "
              "pairs), beside the median |cos| between two tasks' gradients on that model; the run computes both as its "
              "last step (`noise_batches`: disjoint pairs of batches, so each pair is an independent draw).", "",
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


def report_command(runs_dir: str | Path, label: str) -> str:
    """The command that trains a notebook's runs into this folder: its encoder set where it is not the default."""
    encoder = split_key(repo_path(runs_dir).name)[1]
    return f"python -m mtlib report --execute --only {label}" + (f" --set encoder={encoder}" if encoder else "")


def encoder_of(runs_dir: str | Path) -> str:
    """The encoder of a store folder: <device key>+<encoder>'s, else the default."""
    from ..config import DEFAULT_ENCODER
    return split_key(repo_path(runs_dir).name)[1] or DEFAULT_ENCODER


def encoder_caveat(runs_dir: str | Path) -> str:
    """The results page's caveat on what its encoder saw in pre-training (`pipelines.quora_note`'s knowledge)."""
    from ..config import DEFAULT_ENCODER
    from ..encoders import SAW_QUORA
    name = encoder_of(runs_dir)
    if name in SAW_QUORA:
        role = "the default encoder" if name == DEFAULT_ENCODER else "this page's encoder"
        return (f"{name}, {role}, was "
                "pre-trained on sentence pairs that include Quora duplicate questions, so its Quora (and likely STS) "
                "numbers are optimistic.")
    return f"{name}, this page's encoder, may have been pre-trained on Quora duplicates: its Quora numbers may be optimistic."


# The targets 07's best is read against, per encoder: the project's first (all-MiniLM-L6-v2), and issue 30's for the
# BERT-base-size encoder, above the report's best row (.528 / .821 / .776) on every task: for one model (the mean over
# 3 seeds) and for the ensemble of those seeds.
TARGETS = {"": ("The project's first targets:", {"model": {"sst_acc": .50, "para_acc": .86, "sts_pearson": .89,
                                                           "overall": .75}}),
           "all-mpnet-base-v2": ("The targets at this scale, above the report's best row on every task:",
                                 {"model": {"sst_acc": .53, "para_acc": .87, "sts_pearson": .89},
                                  "ensemble": {"sst_acc": .54, "para_acc": .88, "sts_pearson": .90}})}
SHORT = {"sst_acc": "SST", "para_acc": "Quora", "sts_pearson": "STS", "overall": "overall"}


def targets(runs_dir: str | Path) -> str:
    """The sentence naming the targets of a folder's encoder (none set: says so)."""
    encoder = split_key(repo_path(runs_dir).name)[1]
    if encoder not in TARGETS:
        return f"No targets are set for {encoder}."
    intro, sets = TARGETS[encoder]
    said = lambda found: ", ".join(f"{SHORT[k]} ≥ {v:.2f}" for k, v in found.items())
    if "ensemble" not in sets:
        return f"{intro} {said(sets['model'])}."
    return f"{intro} {said(sets['model'])} (3-seed means of one model); its 3-seed ensemble {said(sets['ensemble'])}."


def target_verdicts(runs_dir: str | Path, rows: dict[str, list[dict]]) -> list[str]:
    """Each row ({name: its runs}) read against its folder's targets, computed: per metric the row's mean over its
    seeds (at least MIN_SEEDS) and, where set, its seeds' ensemble, each met or missed by how much, a miss set against
    the standard error of dev's size (`stats.dev_se`; the seeds share one dev set, so their mean keeps it)."""
    encoder = split_key(repo_path(runs_dir).name)[1]
    if encoder not in TARGETS:
        return []
    sets, lines = TARGETS[encoder][1], []

    def read(found: dict, want: dict, n: dict) -> str:
        cells = []
        for k in want:
            gap = want[k] - found[k]
            said = "met" if gap <= 0 else f"missed by {gap:.{3 if gap >= .0005 else 4}f}"      # never "by 0.000"
            if gap > 0 and k in n:
                se = dev_se(k, found[k], n[k])
                said += f", {'within' if gap < se else 'beyond'} dev's SE of {se:.3f}"
            cells.append(f"{SHORT[k]} {found[k]:.3f} ({said})")
        return ", ".join(cells)
    for name, runs in rows.items():
        if len(runs) < MIN_SEEDS:
            continue
        n = dev_sizes(repo_path(runs[0]["config"]["out_dir"]))
        means = {k: sum(m[k] for m in runs) / len(runs) for k in sets["model"]}
        text = f"- **`{name}` against the targets** ({len(runs)} seeds): {read(means, sets['model'], n)}"
        found = seed_ensemble([repo_path(m["config"]["out_dir"]) for m in runs]) if "ensemble" in sets else None
        if found and "refused" not in found:
            text += f"; its ensemble: {read(found, sets['ensemble'], n)}"
        lines.append(text + ".")
    if any("dev's SE" in line for line in lines):
        lines += ["", "*dev's SE*: the standard error that the dev set's size alone puts on the score (accuracy: "
                  "sqrt(p(1 - p)/n); Pearson r: (1 - r²)/sqrt(n - 3)); a gap within it is less than another dev "
                  "sample of that size could move the score, so dev cannot tell such a miss from a hit."]
    return lines + [""] if lines else []


def chosen_among(runs_dir: str | Path, encoder: str | None = None) -> int:
    """How many configurations were scored on dev before 07's best was chosen: 07's ablation rows (the best among
    them) and the exploration grid's rows, on every device of the store that holds `runs_dir` (one choice for all
    devices) whose encoder is `runs_dir`'s (<device key>+<encoder>), or `encoder`'s ("" for the default)."""
    found = set()
    encoder = split_key(repo_path(runs_dir).name)[1] if encoder is None else encoder
    for key in (p for p in repo_path(runs_dir).parent.iterdir() if p.is_dir() and split_key(p.name)[1] == encoder):
        found |= set(ablation_runs(key / "07_beyond")) | set(ablation_runs(key / "07_explore"))
    return len(found)


def chosen_text(runs_dir: str | Path) -> str:
    """How 07's best configuration of a folder was chosen: on dev among N with the folder's encoder, or, in another
    encoder's folder (<device key>+<encoder>), with the default encoder, where 07 chose it; that encoder's own grid
    (its 07_explore rows) can choose another row, which its results page shows beside this one."""
    from ..config import DEFAULT_ENCODER
    if not split_key(repo_path(runs_dir).name)[1]:
        return f"chosen on dev among {chosen_among(runs_dir)}"
    return f"chosen with {DEFAULT_ENCODER} on dev among {chosen_among(runs_dir, encoder='')}"


def grid_file(runs_dir: str | Path) -> str:
    """The exploration grid of a folder's encoder: reports/explore-07.txt, or reports/explore-07-<encoder>.txt's
    shortest match for another encoder's folder (explore-07-mpnet.txt for +all-mpnet-base-v2)."""
    encoder = split_key(repo_path(runs_dir).name)[1]
    if encoder:
        for path in sorted(repo_path("reports").glob("explore-07-*.txt"), key=lambda p: len(p.name)):
            if path.stem.removeprefix("explore-07-") in encoder:
                return f"reports/{path.name}"
    return "reports/explore-07.txt"


def _beyond_markdown(runs_dir: str | Path, meta: list[str]) -> list[str]:
    """results.md's sections for 07_beyond: its ablation table from the runs that finished so far (the notebook's
    executed copy shows it only once every row and seed is done), then the other configurations tried on dev to
    choose the best one (<runs_dir>/07_explore/<knob-value+...>/seed<k>: the best configuration with those knobs
    changed), beside the best row; each run's line goes to `meta`."""
    root = repo_path(runs_dir)
    runs, tried = ablation_runs(root / "07_beyond"), ablation_runs(root / "07_explore")
    lines = ["## Beyond the report (07_beyond)", "",
             f"The best configuration of `notebooks/07_beyond.ipynb` (what `make run` trains; {chosen_text(root)} "
             f"configurations, the rows below and those tried), then the same with one "
             "improvement set back to the report's choice at a time; Δ overall is each row minus the best row, over the "
             f"seeds both ran. {targets(root)}", ""]
    lines += (_table_markdown(runs) + _ablation_per_task(runs)) if runs else \
        [f"Not run yet: `{report_command(root, '07_beyond')}`.", ""]
    published = sorted(p.name for p in (root / "07_beyond" / "predictions").glob("*-output.csv"))
    if published:       # what the executed notebook published: the best configuration's best seed on dev
        lines += [f"Leaderboard files of the best configuration's best seed (dev `overall`): "
                  f"{', '.join(f'`{n}`' for n in published)} in `{shown((root / '07_beyond' / 'predictions').resolve())}/`; "
                  f"the executed notebook: `{shown((root / 'notebooks' / '07_beyond.ipynb').resolve())}`.", ""]
    if tried:
        explore = shown((root / "07_explore").resolve())
        lines += ["### Other configurations tried (dev only, to choose the best)", "",
                  "Each row is the best configuration with the knobs its name gives changed "
                  f"(`{explore}/`); Δ overall is against the best row, over the seeds both ran. The rows and seeds are "
                  f"`{grid_file(root)}`: `make explore` trains each into `{explore}/<row>/seed<k>` on "
                  "its device (a finished run is loaded, not trained again), and `python -m mtlib explore "
                  "--only <row> --print-commands` prints each run's command, `BEST` (`mtlib/report/paper.py`) with the "
                  "row's changes (each run's config.json has every value).", ""]
        rows = {**({"best": runs["best"]} if "best" in runs else {}), **tried}
        lines += _table_markdown(rows, shown_before=("best",)) + _ablation_per_task(rows)
    if "best" in runs and split_key(root.name)[1]:        # another encoder: its grid screens one seed per configuration
        lines += screening_text(runs["best"], tried)
    elif "best" in runs:
        lines += selection_check(runs["best"], {**{k: v for k, v in runs.items() if k != "best"}, **tried})
    if "best" in runs:              # and, at another encoder, its own grid's choice
        chosen = grid_choice(runs["best"], tried)[0] if split_key(root.name)[1] else None
        lines += target_verdicts(root, {"best": runs["best"], **({chosen: tried[chosen]} if chosen else {})})
    for label, found in (("07", runs), ("07, tried", tried)):
        for name, seeds in found.items():
            for m in seeds:
                folder = Path(m["config"]["out_dir"])
                meta.append(_run_line(f"{label}: {name}", m["config"]["seed"],
                                      f"{folder.parent.parent.name}/{folder.parent.name}/{folder.name}", m))
    return lines


# Issue 30's cap on one run of the configuration chosen at another encoder's scale (2 CPU cores, native bf16)
SCREEN_CAP_MIN = 60


def screening_choice(best: list[dict], tried: dict[str, list[dict]], cap: float = SCREEN_CAP_MIN):
    """Another encoder's grid (reports/explore-07-<encoder>.txt) is screened with one seed per configuration: each
    row's seed-0 run beside the best's seed 0. The highest dev `overall` among the runs that took at most `cap`
    minutes is chosen (then trained with 3 seeds). Returns (chosen row, {row: seed-0 overall}, [rows over the cap]);
    chosen is None where no seed-0 run is under the cap."""
    seed0 = {name: next((m for m in seeds if m["config"].get("seed") == 0), None)
             for name, seeds in {"best": best, **tried}.items()}
    seed0 = {name: m for name, m in seed0.items() if m is not None}
    over = [name for name, m in seed0.items() if m.get("wall_s", 0) / 60 > cap]
    eligible = {name: m["overall"] for name, m in seed0.items() if name not in over}
    chosen = max(eligible, key=eligible.get) if eligible else None
    return chosen, {name: m["overall"] for name, m in seed0.items()}, over


def grid_choice(best: list[dict], tried: dict[str, list[dict]]) -> tuple[str | None, int]:
    """(`screening_choice`'s row once it has MIN_SEEDS seeds and is not 07's best itself, else None; how many
    configurations were scored): the row that stands for another encoder's best on its pages and the front page."""
    chosen, scores, _ = screening_choice(best, tried)
    return (chosen if chosen in tried and len(tried[chosen]) >= MIN_SEEDS else None), len(scores)


def screening_text(best: list[dict], tried: dict[str, list[dict]]) -> list[str]:
    """The results page's rule and verdict for another encoder's grid (`screening_choice`)."""
    chosen, scores, over = screening_choice(best, tried)
    rule = ("**How the best at this scale is chosen:** each configuration of the grid is trained once (seed 0) beside "
            "the best's seed 0; the highest dev overall among runs of at most "
            f"{SCREEN_CAP_MIN} minutes is chosen, then trained with 3 seeds, and labelled \"chosen on dev among N\" "
            "(N: the configurations scored, the best included). ")
    if chosen is None:
        return [rule + "No seed-0 run under the cap yet.", ""]
    seeds = len(best) if chosen == "best" else len(tried[chosen])
    verdict = (f"Now, among {len(scores)}: `{chosen}` (seed 0 overall {scores[chosen]:.3f}; {seeds} seed"
               f"{'s' * (seeds != 1)} trained)")
    verdict += f"; over the cap, reported and not chosen: {', '.join(f'`{n}`' for n in over)}." if over else "."
    return [rule + verdict, ""]


# The knobs that set how many steps a run takes: a row that changes one is trained at another budget than the best.
BUDGET = ("pipeline", "epochs", "steps_per_epoch", "single_task_epochs", "frozen_epochs")


def selection_check(best: list[dict], rows: dict[str, list[dict]]) -> list[str]:
    """The rule that keeps 07's best configuration the best, checked against every other row scored on dev (its
    ablation and the exploration grid): a row at the best's step budget (no BUDGET knob changed) would replace it
    where its dev `overall` is higher with a paired 95% interval that resolves (at least MIN_SEEDS seeds with some
    spread). A row at another budget is shown where it resolves higher, but is not eligible: it buys its gain with
    steps. The verdict is computed, so the page says so the day a tried row breaks the rule."""
    budget = {k: _config(best[0]).get(k) for k in BUDGET}
    shown_budget = {k: v for k, v in budget.items() if budget["pipeline"] == "novel" or not k.endswith("_epochs")}
    base = {k: m["overall"] for k, m in runs_by_seed(best).items()}
    higher = {True: [], False: []}                  # at the best's budget, at another
    for name, seeds in rows.items():
        ci = paired_interval({k: m["overall"] for k, m in runs_by_seed(seeds).items()}, base)
        if resolved(ci) > 0:
            same = all(_config(m).get(k) == v for m in seeds for k, v in budget.items())
            higher[same].append(f"`{name}` {interval_text(ci)} (n={ci['n']})")
    rule = ("**How the best is chosen (checked on these runs):** a configuration tried at the best's step budget "
            f"({', '.join(f'{k}={v}' for k, v in shown_budget.items())}) replaces it only where its dev overall is higher, "
            f"paired by seed, with a 95% interval over at least {MIN_SEEDS} seeds that excludes zero; a row that "
            "changes the budget is not eligible. ")
    verdict = (f"**Rows at the best's budget that break the rule: {'; '.join(higher[True])}: the best should change.**"
               if higher[True] else "No row at the best's budget does.")
    more = (f" At another budget, higher and resolved: {'; '.join(higher[False])}." if higher[False] else "")
    return [rule + verdict + more, ""]


def methods_markdown(runs_dir: str | Path, meta: list[str], say_missing: bool = True) -> list[str]:
    """results.md's section for 06: the methods table and its computed conclusion from the runs that finished so far
    (<runs_dir>/06_gradient_methods/<method>/seed<k>; the notebook's executed copy shows it once every run is done);
    each run's line goes to `meta`. Without 06's runs: a line that says how to make them, or nothing
    (`say_missing=False`: a folder without the rungs says so once)."""
    from ..surgery import METHODS
    out = repo_path(runs_dir) / "06_gradient_methods"
    folders = [*out.glob("*/seed*"), *(p for rung, _ in SAME_RUNS.values() for p in out.parent.glob(f"{rung}/seed*"))]
    seeds = sorted({int(p.name[4:]) for p in folders if p.name[4:].isdigit()})
    runs = method_runs(out, METHODS, seeds)

    def copied(method: str, seed: int) -> bool:      # the rung's own run (SAME_RUNS): listed once, as the rung's
        label, sub = SAME_RUNS.get(("06_gradient_methods", method), (None, None))
        return bool(label) and (repo_path(runs_dir) / label / f"seed{seed}" / sub / "metrics.json").exists()
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
        return lines + [f"Not run yet: `{report_command(runs_dir, '06_gradient_methods')}`.", ""] \
            if say_missing else []
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


def _table_markdown(runs: dict[str, list[dict]], shown_before: tuple = ()) -> list[str]:
    """`ablation_table` as markdown; under each row whose seeds saved their probabilities (and not in
    `shown_before`), the ensemble of its seeds, as the ladder's tables have them."""
    table = ablation_table(runs).reset_index()
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for r in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in r) + " |")
        seeds = runs[r[0]]
        found = seed_ensemble([repo_path(m["config"]["out_dir"]) for m in seeds]) if r[0] not in shown_before else None
        if found:
            lines.append(f"| {r[0]}: ensemble of {len(seeds)} seeds | {len(seeds)} | "
                         + " | ".join(ensemble_cells(found, seeds)) + " | | |")
    return lines + [""] + ([ENSEMBLE_NOTE, ""] if any(": ensemble of " in line for line in lines) else [])


def _ablation_per_task(runs: dict[str, list[dict]]) -> list[str]:
    """Under an ablation table: each row's task metrics that differ from the first row's, paired by seed, with a
    95% interval that excludes zero (a knob may move one task with the mean unmoved), each marked by whether it
    survives Holm's correction over every row-and-task comparison made here; nothing where none differs."""
    reference = next(iter(runs.values()))
    first = runs_by_seed(reference)
    others = {name: runs_by_seed(seeds) for name, seeds in runs.items() if seeds is not reference}
    family = [(name, m, paired_p({k: r[m] for k, r in other.items()}, {k: r[m] for k, r in first.items()}))
              for name, other in others.items() for m in METRICS[:-1]
              if all(m in r for r in (*other.values(), *first.values()))]
    tested = [(name, m, p) for name, m, p in family if not math.isnan(p)]   # comparisons that can resolve
    kept = {(name, m) for (name, m, _), keep in zip(tested, holm([p for *_, p in tested])) if keep}
    lines = []
    for name, other in others.items():
        tasks = [f"{t} ({'holds after Holm' if (name, t.split()[0]) in kept else 'uncorrected only'})"
                 for t in resolved_tasks(other, first)]          # "<metric> +0.003 [...]": its first word names it
        lines += [f"- **{name}**: {'; '.join(tasks)}."] if tasks else []
    return [f"Task metrics a row moves, paired by seed with the first row (95% interval excludes zero, at least "
            f"{MIN_SEEDS} seeds with some spread), each marked by whether it survives Holm's correction over the "
            f"{len(tested)} comparisons here that could resolve (family-wise error 5%); an 'uncorrected only' one is "
            "a lead, not a finding:", "", *lines, ""] if lines else []


def _run_line(name: str, seed: int, folder: str, m: dict) -> str:
    """One row of results.md's runs table: where a run lies, what it ran on and with which schedule, how long."""
    c = m["config"]
    return (f"| {name} | {seed} | `{folder}` | {m['device']} | {m['precision']} | {m['encoder']} | {c['profile']} "
            f"| {c['dropout']} | {c['lr']} | {c['batch_size']} | {c['epochs']} × {c['steps_per_epoch'] or 'full'} "
            f"| {m.get('versions', {}).get('mtlib', '')} | {m['wall_s'] / 60:.1f}"
            f"{' (resumed: last process only)' if m.get('resumed') else ''} | {cpu_use(m)} | {m['finished_at']} |")


def _paper(name: str) -> list[str]:
    return [f"{v:.3f}" for v in PAPER[name]] if name in PAPER else ["—"] * 4


def ablation_table(runs: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per configuration ({name: [metrics.json of each seed]}): each dev metric as mean ± sample std
    over the seeds, the change of `overall` against the first row paired by seed (only the seeds both rows ran, so
    that rows with different seeds are never compared) with its 95% t-interval where two or more seeds pair, and
    the wall time per seed."""
    first_runs = next(iter(runs.values()))
    by_seed = lambda seeds: {k: m["overall"] for k, m in runs_by_seed(seeds).items()}
    table = []
    for name, seeds in runs.items():
        row = {"configuration": name, "seeds": len(seeds)}
        row.update({k: mean_std([m[k] for m in seeds]) for k in METRICS})
        row[DELTA] = "" if seeds is first_runs else paired_text(paired_interval(by_seed(seeds), by_seed(first_runs)))
        row["wall (min)"] = wall_text(seeds)
        table.append(row)
    return pd.DataFrame(table).set_index("configuration")


DELTA = "Δ overall vs best, paired by seed (95% interval)"


def speed_note(runs_dir: str | Path) -> list[str]:
    """A paragraph under the Runs table where a rerun on this device key (reports/profile.md) took a tenth more or
    less wall time than its first training: the key's machines differ in speed, so its rows' minutes mix sessions."""
    from .cost import rerun_text, reruns          # here, not at the top: cost imports execute, which imports this module
    key = Path(runs_dir).name
    found = [r for r in reruns(Path(runs_dir).parent) if r["key"] == key and r["config"]
             and abs(r["again"]["wall_s"] / r["first"]["wall_s"] - 1) > 0.1]
    return [f"**This device key's machines differ in speed.** `rerun/{r['run']}` trained again: {rerun_text(r)}. "
            "A row's minutes may mix sessions of different speed: compare minutes only between runs of one session "
            "(`finished` above)." for r in found] + ([""] if found else [])


def wall_text(runs: list[dict]) -> str:
    """A row's wall time per run (minutes, mean ± std) over the runs that say how fast the code is: a resumed run's
    wall time counts only its last process, and a run that shared the machine (CPU use below 95%) ran slower than
    the code does, so both are left out; so are runs made before CPU use was recorded, where the row has runs known
    to be quiet (cost's rule too). The text says how many were left out."""
    whole = [m for m in runs if not m.get("resumed")]
    alone, _ = timed_runs(whole)
    shared = sum(quiet_run(m) is False for m in whole)
    left = [what.format(n=n, s="s" if n > 1 else "") for n, what in
            ((shared, "{n} shared run{s}"), (len(whole) - len(alone) - shared, "{n} run{s} of unknown CPU use"),
             (len(runs) - len(whole), "{n} resumed run{s}")) if n]
    said = ", ".join(left[:-1]) + " and " * (len(left) > 1) + left[-1] if left else ""
    if alone:
        return mean_std([m["wall_s"] / 60 for m in alone], 1) + (f" ({said} left out)" if said else "")
    if whole:
        return mean_std([m["wall_s"] / 60 for m in whole], 1) + " (every run shared)"
    return "resumed"


def publish_predictions(metrics: dict, dest: str | Path) -> list[Path]:
    """Copy a run's leaderboard files (<its out_dir>/predictions/*.csv) into `dest`."""
    src, dest = repo_path(metrics["config"]["out_dir"]) / "predictions", repo_path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, dest / f.name)) for f in sorted(src.glob("*-output.csv"))]


def methods_table(runs: dict[str, dict[int, dict]], out: str | Path, reference: str = "sum") -> pd.DataFrame:
    """One row per method: dev metrics mean ± std over seeds, step cost relative to `reference`, median pairwise
    gradient cosine, conflicts per step and each task's share of the update (means over seeds). Step cost comes
    from separate runs, not interleaved (performance.md has the interleaved cost on identical batches), and a 2-core
    machine's speed drifts between runs by more than any method costs (forward times alone differ by a quarter): so
    each step is timed against its own forward + backward, which every method does alike (`method_telemetry`'s
    per_fb; median step_s where a run predates the phase timings), from the runs that had the machine to themselves
    where there are any."""
    tele = {m: {s: method_telemetry(method_folder(out, m, s)) for s in by_seed} for m, by_seed in runs.items()}
    key = "per_fb" if all(not math.isnan(t["per_fb"]) for ts in tele.values() for t in ts.values()) else "step_s"

    def step_s(method: str) -> float:
        alone = [s for s, m in runs.get(method, {}).items() if not shared_machine(m)] or list(runs.get(method, {}))
        return pd.Series([tele[method][s][key] for s in alone], dtype=float).mean()
    ref_step = step_s(reference)
    rows = []
    for method, by_seed in runs.items():
        row = {"method": method, "seeds": len(by_seed)}
        row.update({k: mean_std([m[k] for m in by_seed.values()]) for k in METRICS})
        t = pd.DataFrame(list(tele[method].values())).mean()
        row["step cost (× sum)"] = round(step_s(method) / ref_step, 3) if pd.notna(ref_step) else None
        row["median cos"] = round(t["median cos"], 3)
        row["conflicts / step"] = round(t["conflicts / step"], 2)
        shares = [t[f"share {task}"] for task in TASK_NAMES]
        row["update share " + " / ".join(TASK_NAMES.values())] = (
            None if any(math.isnan(x) for x in shares) else " / ".join(f"{x:.2f}" for x in shares))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def _resolved_per_task(runs: dict[int, dict], reference: dict[int, dict], metric: str) -> str:
    """" Resolved per task: ..." for methods_conclusion (when `metric` is the tasks' mean), or ""."""
    found = resolved_tasks(runs, reference) if metric == "overall" else []
    return f" Resolved per task: {'; '.join(found)}." if found else ""


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
        verdict = {1: "**beats**", -1: "**is worse than**", 0: "is not distinguishable from"}[resolved(ci)]
        if resolved(ci) > 0:
            winners.append(method)
        why = f" ({ci['why']})" if ci["why"] else ""            # n < 3 or zero spread: no test, whatever the bounds
        lines.append(f"- **{method}** {verdict} {reference}{why}: {metric} difference {ci['mean']:+.3f}, 95% interval "
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
