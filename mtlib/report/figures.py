"""The figures the notebooks show and `make report` saves under reports/runs/<device key>/figures/: one seaborn theme, one colour
per task (losses, metrics, majority-class lines), others for the task pairs; legends and titles in plain names.
Each plot reads its numbers through `runs` (a run's metrics.jsonl) or the tables it is given and draws nothing else."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..data import TASK_NAMES
from .paper import METRICS, TASK_PAIRS
from .runs import epochs, repo_path, steps

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
        folder = repo_path(figures_dir)
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

    from .. import data as D
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
        projected = "projections" in f and f["projections"].any()
        for t in ("sst", "para", "sts"):             # the share removed, on a log axis: its variation shows
            removed = (1 - f[f"kept_{t}_smooth"]).clip(lower=1e-6)
            ax_kept.plot(f.index, removed, color=colour[t], lw=1.8, label=TASK_NAMES[t])
        ax_kept.set(title=f"{label}\nshare of each task gradient's norm removed by PCGrad", xlabel="training step",
                    ylabel="1 − |projected g| / |g| (log)", yscale="log")
        if not projected:
            ax_kept.text(0.5, 0.45, "no projections in this run (summed gradients): nothing is removed",
                         transform=ax_kept.transAxes, ha="center", fontsize=9, color="0.3")
        ax_kept.legend(title="task (rolling mean)", fontsize=8, title_fontsize=8, loc="lower right")
    _save(fig, figures_dir, name)
    return fig


def plot_labels(splits: dict[str, dict], figures_dir=None, name: str = "labels"):
    """Share of each label per split (SST, Quora) and the distribution of STS similarity scores per split."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..data import LABEL_NAMES
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
    ax_cost.set(title="step cost / sum (per forward + backward)", xlabel="× sum")
    fig.tight_layout()
    _save(fig, figures_dir, name)
    return fig
