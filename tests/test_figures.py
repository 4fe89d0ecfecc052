"""The figures people read: per-task loss axes with stage boundaries, no `overall` for a single-task stage,
majority-class reference lines, plain names, titles and labelled axes, tick labels that do not overprint."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mtlib import data  # noqa: E402
from mtlib.report import datacard, figures  # noqa: E402
from mtlib.report.paper import TASK_PAIRS  # noqa: E402

STAGES = (("single_sst", ("sst",), 1), ("single_para", ("para",), 1), ("single_sts", ("sts",), 1),
          ("multitask", ("sst", "para", "sts"), 3), ("frozen", ("sst", "para", "sts"), 1))
STEPS = 12


def fake_novel_run(folder, data_dir) -> None:
    """metrics.jsonl and config.json as the novel pipeline writes them (12 steps an epoch)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"data_dir": str(data_dir), "max_train": None, "max_eval": None}))
    rng, lines = np.random.default_rng(0), []
    for stage, tasks, n_epochs in STAGES:
        for epoch in range(1, n_epochs + 1):
            for step in range(STEPS):
                lines.append({"type": "step", "stage": stage, "epoch": epoch, "step": step, "conflicts": 0,
                              **{f"loss_{t}": float(rng.uniform(0.2, 2)) for t in tasks}})
            metrics = {figures.TASK_METRIC[t]: float(rng.uniform(0.3, 0.9)) for t in tasks}
            lines.append({"type": "epoch", "stage": stage, "epoch": epoch, **metrics,
                          "overall": float(np.mean(list(metrics.values())))})
        if stage == "single_sts":
            lines.append({"type": "epoch", "stage": "merged", "epoch": 0, "sst_acc": 0.3, "para_acc": 0.6,
                          "sts_pearson": 0.8, "overall": 0.5667})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def labelled(fig) -> None:
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), ax


def no_overlap(texts) -> None:
    boxes = [t.get_window_extent() for t in texts if t.get_text()]
    for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b), "tick labels overprint"


@pytest.fixture
def novel_run(tmp_path, tiny_data):
    fake_novel_run(tmp_path / "run", tiny_data)
    return tmp_path / "run"


def test_training_figure(novel_run, tiny_data, tmp_path):
    fig = figures.plot_training(novel_run, "Novel", tmp_path / "figures", "novel-training")
    assert (tmp_path / "figures" / "novel-training.png").stat().st_size > 10_000
    fig.canvas.draw()
    labelled(fig)
    *losses, dev = fig.axes
    # one loss axis per task, in its own unit; the stage boundaries drawn on each
    assert [ax.get_title().split()[0] for ax in losses] == ["SST", "Quora", "STS"]
    assert "nats" in losses[0].get_ylabel() and "points²" in losses[2].get_ylabel()
    starts = [STEPS * k for k in (1, 2, 3, 6)]                 # where single_para, single_sts, multitask, frozen begin
    for ax in losses:
        vertical = sorted(line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1)
        assert vertical == starts
    # dev metrics: plain names, `overall` only where all three tasks were evaluated, majority-class lines
    by_label = {line.get_label(): line for line in dev.lines}
    assert {"SST accuracy", "Quora accuracy", "STS Pearson r", "overall (mean of the three)"} <= set(by_label)
    assert not any("_acc" in label or "pearson" in label for label in by_label)
    overall = np.asarray(by_label["overall (mean of the three)"].get_ydata(), dtype=float)
    assert np.isnan(overall[:3]).all() and not np.isnan(overall[3:]).any()      # 3 single-task stages, then 5
    sst = np.asarray(by_label["SST accuracy"].get_ydata(), dtype=float)
    assert not np.isnan(sst[0]) and np.isnan(sst[1:3]).all()
    splits = data.load_task("sst", tiny_data, ("train", "dev"))
    level = data.majority_class(splits["train"], splits["dev"])[1]
    sst_line = next(line for label, line in by_label.items() if label.startswith("SST majority-class accuracy"))
    assert sst_line.get_ydata()[0] == pytest.approx(level)
    assert any(label.startswith("Quora majority-class accuracy") for label in by_label)
    no_overlap(dev.get_xticklabels())
    assert [t.get_text() for t in dev.get_xticklabels()][:4] == ["SST only\nepoch 1", "Quora only\nepoch 1",
                                                               "STS only\nepoch 1", "averaged\nbefore training"]


def test_training_figure_without_data_has_no_reference_lines(novel_run, tmp_path, monkeypatch):
    (novel_run / "config.json").write_text(json.dumps({"data_dir": str(tmp_path / "gone")}))
    fig = figures.plot_training(novel_run, "Novel")
    assert not any("majority" in line.get_label() for line in fig.axes[-1].lines)
    fig = figures.plot_training(novel_run, "Novel", majority={"sst": 0.4})
    assert [line.get_ydata()[0] for line in fig.axes[-1].lines if "majority" in line.get_label()] == [0.4]


def test_gradient_figure(tmp_path):
    n = 30
    frame = pd.DataFrame({"conflicts": 0, "projections": 0, **{f"cos_{a}_{b}": np.linspace(-0.1, 0.1, n)
                                                              for a, b in TASK_PAIRS},
                          **{f"norm_{k}_{t}": 1.0 for k in ("before", "after") for t in ("sst", "para", "sts")}},
                         index=range(n))
    for a, b in TASK_PAIRS:
        frame[f"cos_{a}_{b}_smooth"] = frame[f"cos_{a}_{b}"]
    for t in ("sst", "para", "sts"):
        frame[f"kept_{t}_smooth"] = 1.0
    fig = figures.plot_gradients({"Baseline (sum)": frame, "Another run with a long name": frame},
                                tmp_path, "gradients")
    assert (tmp_path / "gradients.png").exists()
    fig.canvas.draw()
    labelled(fig)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("no projections" in t for t in texts) == 2
    titles = [ax.title.get_window_extent() for ax in fig.axes]
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1:])


def test_data_figures(tiny_data, tmp_path):
    from transformers import AutoTokenizer

    from mtlib.models import resolve_encoder
    splits = {task: data.load_task(task, tiny_data) for task in data.TASKS}
    fig = figures.plot_labels(splits, tmp_path, "labels")
    labelled(fig)
    dsets = {task: data.to_dataset_dict(splits[task]) for task in data.TASKS}
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder("all-MiniLM-L6-v2"))
    lengths = datacard.token_lengths(dsets, tokenizer, max_train=10)
    assert len(lengths) == 10 + 24 + 24 + 2 * (10 + 24 + 24) * 2          # sst: 1 column; para, sts: 2
    first = splits["sst"]["train"].texts[0][0]
    assert lengths["tokens"].iloc[0] == len(tokenizer(first)["input_ids"])
    table = datacard.length_table(lengths, {"cpu": 8})
    cut = sum(len(tokenizer(t[0])["input_ids"]) > 8 for t in splits["sst"]["train"].texts[:10])
    assert table.loc[("SST", "train", "sentence"), "cut at 8 (cpu)"] == f"{cut} ({cut / 10:.1%})"
    fig = figures.plot_lengths(lengths, {"smoke": 8, "cpu": 12}, tmp_path, "lengths")
    labelled(fig)
    assert (tmp_path / "labels.png").exists() and (tmp_path / "lengths.png").exists()
