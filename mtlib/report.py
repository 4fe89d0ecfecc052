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
# One seaborn theme for every figure; one colour per task (losses, metrics, majority-class lines), others for
# the task pairs. Legends and titles use plain names.
THEME = dict(style="whitegrid", context="notebook", palette="colorblind", font_scale=0.85)
METRIC_NAMES = {"sst_acc": "SST accuracy", "para_acc": "Quora accuracy", "sts_pearson": "STS Pearson r",
                "overall": "overall (mean of the three)"}
TASK_METRIC = {"sst": "sst_acc", "para": "para_acc", "sts": "sts_pearson"}
LOSS_NAMES = {"sst": ("SST", "cross-entropy", "loss (nats)"), "para": ("Quora", "binary cross-entropy", "loss (nats)"),
              "sts": ("STS", "mean squared error", "loss (similarity points²)")}
STAGE_NAMES = {"single_sst": "SST only", "single_para": "Quora only", "single_sts": "STS only",
               "merged": "averaged", "multitask": "multitask", "frozen": "frozen encoder"}


def _theme() -> dict[str, tuple]:
    """Apply the theme; the colour of each task, of `overall` and of each task pair."""
    import seaborn as sns
    sns.set_theme(**THEME)
    colours = sns.color_palette(THEME["palette"], 10)
    named = {"sst": colours[0], "para": colours[1], "sts": colours[2], "overall": colours[3]}
    named.update({f"{a}_{b}": colours[i] for (a, b), i in zip(TASK_PAIRS, (4, 5, 7))})   # purple, brown, grey
    return named


def _save(fig, figures_dir: str | Path | None, name: str) -> None:
    if figures_dir:
        folder = at_root(figures_dir)
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")


def stage_spans(s: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(stage, first global step, last global step + 1) of each stage, in training order."""
    if s.empty:
        return []
    change = s["stage"].ne(s["stage"].shift()).cumsum()
    return [(g["stage"].iloc[0], int(g["global_step"].iloc[0]), int(g["global_step"].iloc[-1]) + 1)
            for _, g in s.groupby(change, sort=True)]


def majority_levels(out_dir: str | Path) -> dict[str, float]:
    """Dev accuracy of always predicting the train split's most frequent label (SST, Quora), on the data and row
    caps the run in `out_dir` used; empty when its data folder is not here."""
    import warnings

    from . import data as D
    out = Path(out_dir)
    cfg = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else {}
    data_dir = cfg.get("data_dir")
    if (out / "metrics.json").exists():
        data_dir = json.loads((out / "metrics.json").read_text()).get("data_dir", data_dir)
    levels = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", D.DataWarning)          # the run showed them already
            for task in ("sst", "para"):
                sp = D.load_task(task, data_dir, ("train", "dev"), cfg.get("max_bad_fraction", 0.001))
                levels[task] = D.majority_class(sp["train"].head(cfg.get("max_train")),
                                                sp["dev"].head(cfg.get("max_eval")))[1]
    except D.DataError:
        return {}
    return levels


def plot_training(out_dir: str | Path, title: str, figures_dir=None, name: str = "training", window: int = 20,
                  majority: dict[str, float] | None = None):
    """Top: each task's training loss on its own axis (raw and a rolling mean of `window` steps, within each stage),
    with the stage boundaries. Bottom: dev metrics after every epoch; a stage that trains one task shows that task's
    metric only, `overall` only where all three tasks are evaluated; dashed lines: the majority-class accuracy
    of SST and Quora (`majority_levels`, unless given)."""
    import matplotlib.pyplot as plt
    colour = _theme()
    s, e = steps(out_dir), epochs(out_dir).reset_index(drop=True)
    spans = stage_spans(s)
    tasks = [t for t in ("sst", "para", "sts") if f"loss_{t}" in s]
    fig = plt.figure(figsize=(13, 8), layout="constrained")
    grid = fig.add_gridspec(2, max(len(tasks), 1), height_ratios=(1, 1.15))
    first_ax = None
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(grid[0, i], sharex=first_ax)
        first_ax = first_ax or ax
        col, (label, loss, unit) = f"loss_{task}", LOSS_NAMES[task]
        first = True
        for _, x0, x1 in spans:
            part = s[(s["global_step"] >= x0) & (s["global_step"] < x1)][["global_step", col]].dropna()
            if part.empty:
                continue
            ax.plot(part["global_step"], part[col], color=colour[task], alpha=0.25, lw=0.8,
                    label="per step" if first else None)
            ax.plot(part["global_step"], part[col].rolling(window, min_periods=1).mean(), color=colour[task], lw=1.8,
                    label=f"rolling mean of {window} steps" if first else None)
            first = False
        _mark_stages(ax, spans)
        ax.set(title=f"{label} training loss: {loss}", ylabel=unit,
               xlabel="training step" + (" (all stages)" if len(spans) > 1 else ""),
               xlim=(spans[0][1], spans[-1][2]))
    ax = fig.add_subplot(grid[1, :])
    _plot_dev(ax, e, colour, majority_levels(out_dir) if majority is None else majority)
    fig.suptitle(f"{title}: training losses (faint: each step; solid: rolling mean of {window} steps within a "
                 "stage) and dev metrics", fontsize=12)
    _save(fig, figures_dir, name)
    return fig


def _mark_stages(ax, spans: list[tuple[str, int, int]]) -> None:
    """Vertical lines between stages, each stage's name written up its first step (no two names can collide)."""
    if len(spans) < 2:
        return
    for stage, x0, _ in spans:
        if x0 > spans[0][1]:
            ax.axvline(x0, color="0.3", lw=0.8, ls=":")
        ax.text(x0, 0.97, f" {STAGE_NAMES.get(stage, stage)}", transform=ax.get_xaxis_transform(), rotation=90,
                ha="left", va="top", fontsize=7, color="0.25",
                bbox=dict(facecolor="white", alpha=0.75, edgecolor="none", pad=0.5))


def _plot_dev(ax, e: pd.DataFrame, colour: dict, majority: dict[str, float]) -> None:
    tasks = [t for t in ("sst", "para", "sts") if TASK_METRIC[t] in e]
    x = list(range(len(e)))
    for task in tasks:
        ax.plot(x, e[TASK_METRIC[task]], marker="o", color=colour[task], label=METRIC_NAMES[TASK_METRIC[task]])
    if len(tasks) == 3 and "overall" in e:          # the mean of three, only where all three were evaluated
        full = e[[TASK_METRIC[t] for t in tasks]].notna().all(axis=1)
        ax.plot(x, e["overall"].where(full), marker="s", color=colour["overall"], lw=2.2, label=METRIC_NAMES["overall"])
    for task, level in majority.items():
        ax.axhline(level, color=colour[task], ls="--", lw=1,
                   label=f"{TASK_NAMES[task]} majority-class accuracy ({level:.2f})")
    change = e["stage"].ne(e["stage"].shift())
    for i in [i for i in x if change.iloc[i] and i > 0]:
        ax.axvline(i - 0.5, color="0.3", lw=0.8, ls=":")
    labels = [f"{STAGE_NAMES.get(st, st)}\n" + ("before training" if st == "merged" else f"epoch {ep}")
              for st, ep in zip(e["stage"], e["epoch"])]
    ax.set_xticks(x, labels, fontsize=8, rotation=0 if len(x) <= 10 else 45, ha="center" if len(x) <= 10 else "right")
    low = min(-0.05, float(e[[TASK_METRIC[t] for t in tasks]].min().min()) - 0.05) if tasks else -0.05
    ax.set(title="dev metrics after each epoch", xlabel="stage and epoch", ylim=(low, 1.0), xlim=(-0.5, len(x) - 0.5),
           ylabel="dev score (accuracy or Pearson r)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


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
    """Row per run: pairwise cosines between the task gradients on the shared encoder (raw, faint; rolling mean,
    solid) and the share of each task gradient's norm that survives PCGrad's projections."""
    import matplotlib.pyplot as plt
    colour = _theme()
    fig, axes = plt.subplots(len(frames), 2, figsize=(13, 3.9 * len(frames)), squeeze=False, layout="constrained")
    for (label, f), (ax_cos, ax_kept) in zip(frames.items(), axes):
        for a, b in TASK_PAIRS:
            ax_cos.plot(f.index, f[f"cos_{a}_{b}"], color=colour[f"{a}_{b}"], alpha=0.2, lw=0.8)
            ax_cos.plot(f.index, f[f"cos_{a}_{b}_smooth"], color=colour[f"{a}_{b}"], lw=1.8,
                        label=f"{TASK_NAMES[a]} and {TASK_NAMES[b]}")
        ax_cos.axhline(0, color="black", lw=0.7)
        ax_cos.set(title=f"{label}\ncosine between task gradients (shared encoder)", xlabel="training step",
                   ylabel="cosine similarity (-1 to 1)")
        ax_cos.legend(title="task pair (rolling mean)", fontsize=8, title_fontsize=8, loc="upper right")
        for t in ("sst", "para", "sts"):
            ax_kept.plot(f.index, f[f"kept_{t}_smooth"], color=colour[t], lw=1.8, label=TASK_NAMES[t])
        ax_kept.set(title=f"{label}\nshare of each task gradient's norm kept by PCGrad", xlabel="training step",
                    ylabel="|projected g| / |g| (ratio)", ylim=(0, 1.05))
        if "projections" in f and not f["projections"].any():
            ax_kept.text(0.5, 0.45, "no projections in this run (summed gradients): every share is 1",
                         transform=ax_kept.transAxes, ha="center", fontsize=9, color="0.3")
        ax_kept.legend(title="task (rolling mean)", fontsize=8, title_fontsize=8, loc="lower right")
    _save(fig, figures_dir, name)
    return fig


# ------------------------------------------------------------------ the data (00_data)
OFFICIAL_QUORA_DEV_ROWS = 20_214     # pairs in the official quora-dev.csv of the default project
SPLIT_ORDER = ("train", "dev", "test")


def label_table(splits: dict[str, dict]) -> pd.DataFrame:
    """Rows per label and split (SST and Quora by label name), with each label's share of its split."""
    from .data import LABEL_COLUMN, LABEL_NAMES
    rows = []
    for task in ("sst", "para"):
        for split, sp in splits[task].items():
            if sp.labels is None:
                continue
            counts = pd.Series(sp.labels).value_counts()
            for label, name in enumerate(LABEL_NAMES[task]):
                n = int(counts.get(label, 0))
                rows.append({"task": TASK_NAMES[task], "split": split, "label": f"{label} {name}", "rows": n,
                             "share": n / len(sp)})
    table = pd.DataFrame(rows).pivot_table(index=["task", "label"], columns="split", values=["rows", "share"],
                                           sort=False)
    return table.reindex(columns=[c for c in table.columns if c[1] in SPLIT_ORDER]).round(3)


def majority_table(splits: dict[str, dict]) -> pd.DataFrame:
    """Per task: the train split's most frequent label and the accuracy of always predicting it on each labelled
    split: the level every accuracy in this project is read against."""
    from .data import LABEL_NAMES, majority_class
    rows = []
    for task in ("sst", "para"):
        by_split = splits[task]
        label, _ = majority_class(by_split["train"], by_split["train"])
        row = {"task": TASK_NAMES[task], "majority label (train)": f"{label} {LABEL_NAMES[task][label]}"}
        for split, sp in by_split.items():
            if sp.labels is not None:
                row[f"{split} accuracy"] = majority_class(by_split["train"], sp)[1]
        rows.append(row)
    return pd.DataFrame(rows).set_index("task").round(3)


def token_lengths(dsets: dict, tokenizer, max_train: int | None = None, max_eval: int | None = None) -> pd.DataFrame:
    """Tokens per sentence (the encoder's tokenizer, [CLS] and [SEP] included, no truncation), computed with
    `datasets.Dataset.map` on the first max_train / max_eval rows of each split: one row per sentence."""
    import datasets

    from .data import TEXT_COLUMNS
    frames, bars_were_off = [], datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()            # nine short bars: noise in an executed notebook
    for task, dd in dsets.items():
        columns = TEXT_COLUMNS[task]
        for split, ds in dd.items():
            n = max_train if split == "train" else max_eval
            ds = ds.select(range(min(n, len(ds)))) if n else ds
            counted = ds.map(lambda batch: {f"tokens_{c}": [len(ids) for ids in tokenizer(batch[c])["input_ids"]]
                                            for c in columns},
                             batched=True, remove_columns=ds.column_names)
            for c in columns:
                frames.append(pd.DataFrame({"task": TASK_NAMES[task], "split": split, "column": c,
                                            "tokens": counted[f"tokens_{c}"]}))
    if not bars_were_off:
        datasets.enable_progress_bars()
    return pd.concat(frames, ignore_index=True)


def length_table(lengths: pd.DataFrame, max_lengths: dict[str, int]) -> pd.DataFrame:
    """Per task, split and sentence column: sentences, median / 95th percentile / longest in tokens, and how many
    are cut at each max_length given ({label: max_length})."""
    def summary(g):
        row = {"sentences": len(g), "median": g.median(), "95th pct": round(g.quantile(0.95), 1), "longest": g.max()}
        for label, length in sorted(max_lengths.items(), key=lambda kv: kv[1]):
            row[f"cut at {length} ({label})"] = f"{int((g > length).sum())} ({(g > length).mean():.1%})"
        return pd.Series(row, dtype=object)
    return lengths.groupby(["task", "split", "column"], sort=False)["tokens"].apply(summary).unstack()


def skipped_table(splits: dict[str, dict]) -> pd.DataFrame:
    """The rows skipped as unparseable: file:line (relative to the repository root) and the line as written."""
    from .notebook import shown
    rows = []
    for task, by_split in splits.items():
        for split, sp in by_split.items():
            if not sp.skipped:
                continue
            lines = sp.path.read_text(encoding="utf-8").splitlines()
            for line in sp.skipped:
                rows.append({"task": TASK_NAMES[task], "split": split, "where": f"{shown(sp.path)}:{line}",
                             "row as written": lines[line - 1] if line <= len(lines) else ""})
    return pd.DataFrame(rows, columns=["task", "split", "where", "row as written"])


def quora_caveat(para: dict) -> str:
    """The Quora caveat with its numbers (markdown): whether these files are a re-split of the official dev file."""
    rows = {split: len(sp) + len(sp.skipped) for split, sp in para.items()}
    total = sum(rows.values())
    sizes = ", ".join(f"{split} {n:,}" for split, n in rows.items())
    resplit = total == OFFICIAL_QUORA_DEV_ROWS
    return (f"**Quora.** Rows in the files (skipped ones included): {sizes}; together **{total:,}**. The official "
            f"`quora-dev.csv` has {OFFICIAL_QUORA_DEV_ROWS:,} pairs (the official train file: about 141k). " + (
                "These files are therefore a re-split of the official dev file: train, dev and test here come from "
                "one 20k-pair pool, and Quora numbers are not comparable with the report's, which trained on the "
                "official train set." if resplit else
                "These files are not a re-split of the official dev file, so that caveat does not apply here."))


def plot_labels(splits: dict[str, dict], figures_dir=None, name: str = "labels"):
    """Share of each label per split (SST, Quora) and the distribution of STS similarity scores per split."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .data import LABEL_NAMES
    _theme()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained",
                             gridspec_kw={"width_ratios": (1.5, 0.8, 1.2)})
    for ax, task in zip(axes, ("sst", "para")):
        frame = pd.concat([pd.DataFrame({"split": split, "label": pd.Categorical.from_codes(sp.labels, LABEL_NAMES[task])})
                           for split, sp in splits[task].items() if sp.labels is not None])
        sns.histplot(frame, x="label", hue="split", multiple="dodge", stat="percent", common_norm=False, shrink=0.8,
                     discrete=True, ax=ax)
        ax.set(title=f"{TASK_NAMES[task]}: labels per split", xlabel="label",
               ylabel="share of the split's rows (%)")
        ax.tick_params(axis="x", labelrotation=20 if task == "sst" else 0)
    frame = pd.concat([pd.DataFrame({"split": split, "similarity": sp.labels})
                       for split, sp in splits["sts"].items() if sp.labels is not None])
    sns.histplot(frame, x="similarity", hue="split", stat="percent", common_norm=False, bins=25, element="step",
                 ax=axes[2])
    axes[2].set(title="STS: similarity scores per split", xlabel="similarity (0 to 5)",
                ylabel="share of the split's rows (%)")
    _save(fig, figures_dir, name)
    return fig


def plot_lengths(lengths: pd.DataFrame, max_lengths: dict[str, int], figures_dir=None, name: str = "lengths"):
    """Histogram of sentence lengths in tokens per task (all splits and sentence columns), with each max_length."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    _theme()
    tasks = list(dict.fromkeys(lengths["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.2), layout="constrained", squeeze=False)
    for ax, task in zip(axes[0], tasks):
        g = lengths[lengths["task"] == task]
        sns.histplot(g, x="tokens", hue="split", stat="percent", common_norm=False, element="step",
                     discrete=True, ax=ax)
        cuts = []
        for label, length in sorted(max_lengths.items(), key=lambda kv: kv[1]):
            ax.axvline(length, color="0.2", ls="--", lw=1)
            ax.text(length, 0.98, f" {length}", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
            cuts.append(f"{(g['tokens'] > length).mean():.1%} at {length} ({label})")
        ax.set(title=f"{task}: sentence length\ncut by max_length: " + ", ".join(cuts),
               xlabel="tokens per sentence ([CLS] and [SEP] included)", ylabel="share of the split's sentences (%)",
               xlim=(0, max(g["tokens"].max(), *max_lengths.values()) + 4))
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
