"""Ensembles (docs/ensembles.md): a run's probabilities.npz, `python -m mtlib ensemble`, and the ensemble rows of
`make tables`. Synthetic runs on a tiny data folder give hand-computed answers; one smoke run checks the file a real
run writes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mtlib import data as D
from mtlib.__main__ import main as cli
from mtlib.config import Config
from mtlib.evaluate import PROBABILITIES, score, split_record
from mtlib.report.ensemble import EnsembleError, decide, ensemble, write_ensemble

from conftest import ROOT, SHARED_DATA

HEADERS = {"sst": ["", "id", "sentence", "sentiment"], "para": ["", "id", "sentence1", "sentence2", "is_duplicate"],
           "sts": ["", "id", "sentence1", "sentence2", "similarity"]}
# dev labels of the tiny data folder; test splits have two unlabelled rows each
LABELS = {"sst": ["1", "1", "2", "3"], "para": ["1", "0", "1", "1"], "sts": ["1.0", "2.0", "3.0", "4.0"]}
# Two runs' probabilities. SST: A says 0,1,2,3 and B 1,1,2,2 (3 of 4 right each); their mean 1,1,2,3 (row 0: .4 vs .55).
# Quora: the means are .6 .3 .45 .55 -> 1 0 0 1. STS: the means are 1 2 3 4, the labels exactly (r = 1; A's and B's r < 1).
A = {"sst-dev": [[.6, .4, 0, 0, 0], [.1, .8, .1, 0, 0], [0, .2, .7, .1, 0], [0, 0, .1, .8, .1]],
     "sst-test": [[.5, .5, 0, 0, 0], [0, 0, 0, .25, .75]],
     "para-dev": [.9, .2, .6, .4], "para-test": [.75, .25], "sts-dev": [0, 2, 2, 5], "sts-test": [1, 3]}
B = {"sst-dev": [[.2, .7, .1, 0, 0], [.3, .6, .1, 0, 0], [0, .1, .8, .1, 0], [0, 0, .5, .4, .1]],
     "sst-test": [[0, 1, 0, 0, 0], [0, 0, 0, .75, .25]],
     "para-dev": [.3, .4, .3, .7], "para-test": [.25, .5], "sts-dev": [2, 2, 4, 3], "sts-test": [3, 3]}
KEY = "cpu-test-fp32-2t"


def write_data(folder: Path, sts_test_text: str = "b") -> Path:
    """A data folder in the CS224N format: 4 dev rows and 2 test rows per task."""
    folder.mkdir(parents=True, exist_ok=True)
    for task, header in HEADERS.items():
        for split, labels in (("dev", LABELS[task]), ("test", [None, None])):
            rows = [header if split == "dev" else header[:-1]]
            for i, label in enumerate(labels):
                second = sts_test_text if (task, split) == ("sts", "test") else "b"
                text = [f"{task} {split} {i} a"] + ([f"{second} {i}"] if task != "sst" else [])
                rows.append([str(i), f"{task}{split}{i:023d}", *text, *([label] if label else [])])
            (folder / D.FILES[task, split]).write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    return folder


def make_run(folder: Path, seed: int, probs: dict | None, data_dir: Path, key: str = KEY) -> Path:
    """A finished run's folder as `pipelines.run` leaves it, with `probs` as its probabilities (None: no file, as a
    run from before they were saved) and its own metrics computed from them."""
    folder.mkdir(parents=True, exist_ok=True)
    config = Config(profile="cpu", seed=seed, data_dir=str(data_dir), out_dir=str(folder)).to_dict()
    arrays, metrics = {}, {}
    for task in D.TASKS:
        for split, rows in D.load_task(task, data_dir, ("dev", "test")).items():
            k = f"{task}-{split}"
            p = np.array((probs or A)[k], dtype=np.float64)
            arrays |= {k: p.astype(np.float16), **split_record(k, rows.ids, D.texts_digest(rows.texts), rows.labels)}
            if split == "dev":
                metrics[{"sst": "sst_acc", "para": "para_acc", "sts": "sts_pearson"}[task]] = score(
                    task, rows.labels, decide(task, p))
    metrics["overall"] = float(np.mean(list(metrics.values())))
    if probs is not None:
        np.savez_compressed(folder / PROBABILITIES, **arrays)
    (folder / "run.json").write_text(json.dumps({"device_key": key}))
    (folder / "metrics.json").write_text(json.dumps({**metrics, "config": config, "device_key": key,
                                                     "versions": {"mtlib": "abc1234"}}))
    return folder


@pytest.fixture
def runs(tmp_path):
    data_dir = write_data(tmp_path / "data")
    return data_dir, make_run(tmp_path / "a", 0, A, data_dir), make_run(tmp_path / "b", 1, B, data_dir)


def test_the_average_gives_the_hand_computed_predictions_and_metrics(runs):
    _, a, b = runs
    found = ensemble([a, b])
    assert found["preds"]["sst-dev"].tolist() == [1, 1, 2, 3]
    assert found["preds"]["sst-test"].tolist() == [1, 3]      # row 1: classes 3 and 4 tie at .5, the first wins
    assert found["preds"]["para-dev"].tolist() == [1, 0, 0, 1]
    assert found["preds"]["para-test"].tolist() == [0, 0]              # .5 is not > .5
    assert found["preds"]["sts-test"].tolist() == [2, 3]
    m = found["metrics"]
    assert m["sst_acc"] == 1.0 and m["para_acc"] == 0.75
    assert m["sts_pearson"] == pytest.approx(1.0)
    assert m["overall"] == pytest.approx((1 + 0.75 + 1) / 3)
    members = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    assert m["sst_acc"] > max(x["sst_acc"] for x in members) and m["sts_pearson"] > max(x["sts_pearson"] for x in members)
    assert [x["seed"] for x in found["members"]] == [0, 1] and found["device_key"] == KEY


def test_the_order_of_the_runs_changes_nothing(runs):
    _, a, b = runs
    ab, ba = ensemble([a, b]), ensemble([b, a])
    assert ab["metrics"] == ba["metrics"]
    assert all(np.array_equal(ab["preds"][k], ba["preds"][k]) for k in ab["preds"])


def test_write_ensemble_writes_leaderboard_files_and_dev_metrics(runs, tmp_path):
    data_dir, a, b = runs
    found = write_ensemble([a, b], tmp_path / "ens", data_dir)
    lines = (tmp_path / "ens/predictions/sst-dev-output.csv").read_text().splitlines()
    assert lines[0] == "id \t Predicted_Sentiment "
    assert lines[1:] == [f"sstdev{i:023d} , {p} " for i, p in enumerate([1, 1, 2, 3])]
    para = (tmp_path / "ens/predictions/para-test-output.csv").read_text().splitlines()
    assert para == ["id \t Predicted_Is_Paraphrase ", f"paratest{0:023d} , 0 ", f"paratest{1:023d} , 0 "]
    assert sorted(p.name for p in (tmp_path / "ens/predictions").iterdir()) == sorted(
        f"{t}-{s}-output.csv" for t in D.TASKS for s in ("dev", "test"))
    saved = json.loads((tmp_path / "ens/ensemble.json").read_text())
    assert saved == json.loads(json.dumps(found))
    assert saved["n"] == 2 and saved["device_key"] == KEY and [m["seed"] for m in saved["members"]] == [0, 1]
    assert saved["overall"] == pytest.approx(ensemble([a, b])["metrics"]["overall"])
    assert saved["members_mean"]["sst_acc"] == pytest.approx(np.mean([m["sst_acc"] for m in saved["members"]]))
    assert not (tmp_path / "ens/metrics.json").exists()        # never taken for a run by the store's readers


@pytest.mark.parametrize("case, match", [
    ("other ids", "sst-dev examples are not"),
    ("other labels", "sentences or labels differ"),
    ("no probabilities", "no such file: the run .* finished before runs saved their probabilities; train it again"),
    ("unfinished", "has not finished"),
    ("another device", "never mixes devices"),
    ("one run", "two runs or more"),
    ("twice", "given twice"),
])
def test_refusals_name_the_run_and_the_reason(runs, tmp_path, case, match):
    data_dir, a, b = runs
    c = tmp_path / "c"
    if case == "other ids":                 # the same rows in another order
        other = write_data(tmp_path / "other")
        path = other / D.FILES["sst", "dev"]
        head, *rows = path.read_text().splitlines()
        path.write_text("\n".join([head, *rows[::-1]]) + "\n")
        make_run(c, 2, B, other)
    elif case == "other labels":
        other = write_data(tmp_path / "other")
        path = other / D.FILES["para", "dev"]
        path.write_text(path.read_text().replace("\t1\n", "\t0\n", 1))
        make_run(c, 2, B, other)
    elif case == "no probabilities":
        make_run(c, 2, None, data_dir)
    elif case == "unfinished":
        make_run(c, 2, B, data_dir)
        (c / "metrics.json").unlink()
    elif case == "another device":
        make_run(c, 2, B, data_dir, key="nvidia-h200")
    folders = {"one run": [a], "twice": [a, b, a]}.get(case, [a, c])
    with pytest.raises(EnsembleError, match=match) as err:
        ensemble(folders)
    assert "\n" not in str(err.value)
    if case not in ("one run",):
        assert str(err.value).startswith(str(c if case not in ("twice",) else a))


def test_the_cli_refuses_in_one_line_and_writes_nothing(runs, tmp_path, capsys):
    data_dir, a, _ = runs
    c = make_run(tmp_path / "c", 2, None, data_dir)
    assert cli(["ensemble", str(a), str(c), "--out", str(tmp_path / "ens"), "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mtlib: error: {c / PROBABILITIES}") and "\n" not in err
    assert not (tmp_path / "ens").exists()


def test_the_cli_writes_the_ensemble(runs, tmp_path, capsys):
    data_dir, a, b = runs
    assert cli(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens"), "--data-dir", str(data_dir)]) == 0
    assert "ensemble of 2 runs" in capsys.readouterr().out
    assert json.loads((tmp_path / "ens/ensemble.json").read_text())["sst_acc"] == 1.0


def test_data_that_differs_from_the_runs_is_refused_for_the_test_ids(runs, tmp_path):
    _, a, b = runs
    other = write_data(tmp_path / "other", sts_test_text="changed")
    with pytest.raises(EnsembleError, match=r"sts-test-student\.csv: not the sts-test split the runs were scored on \(other "
                                            r"sentences or labels\); give --data-dir"):
        write_ensemble([a, b], tmp_path / "ens", other)


def test_an_ensemble_never_overwrites_a_run(runs):
    data_dir, a, b = runs
    with pytest.raises(EnsembleError, match="holds a run"):
        write_ensemble([a, b], a, data_dir)


# ---- make tables: the ensemble row appears where every seed of a row saved its probabilities ----

def _store(tmp_path: Path, data_dir: Path) -> Path:
    """A store with one device's baseline row and 07's best row (their committed metrics.json, run.json), each
    seed given synthetic probabilities (seed k: A or B in turn)."""
    src, store = ROOT / "reports/runs/intel-xeon-bf16-2t", tmp_path / "store" / "intel-xeon-bf16-2t"
    for row in ("01_baseline/seed{k}/baseline", "07_beyond/best/seed{k}"):
        for k in (0, 1, 2):
            folder = store / row.format(k=k)
            folder.mkdir(parents=True)
            for name in ("metrics.json", "run.json", "config.json"):
                shutil.copy(src / row.format(k=k) / name, folder / name)
            arrays = dict(np.load(make_run(tmp_path / "probs" / f"{k}", k, (A, B)[k % 2], data_dir) / PROBABILITIES))
            np.savez_compressed(folder / PROBABILITIES, **arrays)
    return store


def test_the_results_page_and_the_front_page_gain_an_ensemble_row(tmp_path):
    from mtlib.report import front
    from mtlib.report.tables import ENSEMBLE_NOTE, results_markdown
    if not (ROOT / "reports/runs/intel-xeon-bf16-2t/01_baseline/seed2").is_dir():
        pytest.skip("needs the committed store")
    store = _store(tmp_path, write_data(tmp_path / "data"))
    page = results_markdown(store).splitlines()
    row = next(i for i, line in enumerate(page) if line.startswith("| Baseline | "))
    assert page[row + 1].startswith("| Baseline: ensemble of 3 seeds | ")
    cells = [c.strip() for c in page[row + 1].split("|")[1:-1]]
    seeds = [store / f"01_baseline/seed{k}/baseline" for k in (0, 1, 2)]
    expected = ensemble(seeds)["metrics"]
    members = [json.loads((s / "metrics.json").read_text()) for s in seeds]
    assert cells[1] == f"{expected['sst_acc']:.3f} ({expected['sst_acc'] - np.mean([m['sst_acc'] for m in members]):+.3f})"
    assert cells[4].startswith(f"{expected['overall']:.3f} (") and cells[5] == "3"
    ensembles = [line.split(" | ")[0] for line in page if line.startswith("|") and "ensemble of" in line]
    assert ensembles == ["| Baseline: ensemble of 3 seeds", "| best: ensemble of 3 seeds"]   # the two rows with them
    best_row = next(i for i, line in enumerate(page) if line.startswith("| best | 3 |"))
    assert page[best_row + 1].startswith("| best: ensemble of 3 seeds | 3 | ")             # under 07's best row
    assert page[row + 2:].index("") < page[row + 2:].index(ENSEMBLE_NOTE)     # said once, under the table
    best = front.best_model(store.parent)
    assert any(line.startswith(f"| 07's best, ensemble of its 3 seeds | {store.name} | ") for line in best)

    (seeds[1] / PROBABILITIES).unlink()              # a seed without probabilities: no ensemble row, the page as before
    assert [line.split(" | ")[0] for line in results_markdown(store).splitlines() if "ensemble of" in line
            and line.startswith("|")] == ["| best: ensemble of 3 seeds"]                  # the baseline's is gone


def test_a_row_of_runs_that_cannot_be_averaged_says_why(tmp_path):
    from mtlib.report.tables import results_markdown
    if not (ROOT / "reports/runs/intel-xeon-bf16-2t/01_baseline/seed2").is_dir():
        pytest.skip("needs the committed store")
    store = _store(tmp_path, write_data(tmp_path / "data"))
    other = make_run(tmp_path / "other-run", 1, B, write_data(tmp_path / "other", sts_test_text="changed"))
    shutil.copy(other / PROBABILITIES, store / "01_baseline/seed1/baseline" / PROBABILITIES)
    line = next(x for x in results_markdown(store).splitlines() if x.startswith("| Baseline: ensemble of 3 seeds"))
    assert "not averaged: " in line and "sentences or labels differ" in line


# ---- a real run ----

@pytest.mark.slow
def test_a_smoke_run_writes_probabilities_that_agree_with_its_leaderboard_files(tmp_path):
    from mtlib.pipelines import run
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA}")
    out = tmp_path / "run"
    m = run(profile="smoke", seed=0, out_dir=str(out), progress=False)
    with np.load(out / PROBABILITIES, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for task in D.TASKS:
        for split, rows in D.load_task(task, None, ("dev", "test")).items():
            k, rows = f"{task}-{split}", rows.head(m["config"]["max_eval"])
            lines = (out / "predictions" / f"{task}-{split}-output.csv").read_text().splitlines()[1:]
            ids, labels = [x.split(" , ")[0] for x in lines], np.array([float(x.split(" , ")[1]) for x in lines])
            p = arrays[k].astype(np.float64)
            assert ids == rows.ids and len(p) == len(ids)
            expected = split_record(k, rows.ids, D.texts_digest(rows.texts), rows.labels)
            assert all(str(arrays[name]) == str(v) for name, v in expected.items() if not name.endswith("-labels"))
            if task == "sst":       # the label's probability is the row's highest (float16 may round two to a tie)
                assert p.shape == (len(ids), 5) and np.allclose(p.sum(axis=1), 1, atol=5e-3)
                assert (p[np.arange(len(p)), labels.astype(int)] == p.max(axis=1)).all()
                assert (p.argmax(axis=1) == labels).mean() >= 0.9
            elif task == "para":    # sigmoid > .5 where the label is 1 (float16 may round it to .5 itself)
                assert (labels[p > 0.5] == 1).all() and (labels[p < 0.5] == 0).all()
            else:
                assert np.allclose(p, labels, atol=5e-3)
            if split == "dev":
                assert np.array_equal(arrays[f"{k}-labels"], rows.labels)
    shutil.copytree(out, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoints"))
    found = write_ensemble([out, tmp_path / "copy"], tmp_path / "ens")        # the real data's ids pass the check
    for name in ("sst-test-output.csv", "sts-dev-output.csv"):
        ids = [x.split(" , ")[0] for x in (tmp_path / "ens/predictions" / name).read_text().splitlines()]
        assert ids == [x.split(" , ")[0] for x in (out / "predictions" / name).read_text().splitlines()]
    assert found["para_acc"] == pytest.approx(m["para_acc"], abs=2 / 32)     # float16 ties aside, the run itself
