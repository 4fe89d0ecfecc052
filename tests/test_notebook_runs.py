"""Notebooks executed end to end by papermill, as `make report` and a researcher run them: what the run writes, and
what a second execution leaves alone. (These two train for a minute or so each: test_notebooks.py checks the rest.)"""
import json

import pytest

from conftest import ROOT, SHARED_DATA, fake_run
from test_notebooks import SHORT, assigned, cells, outputs


@pytest.mark.slow
def test_papermill_novel_with_int_dropout_and_fields_its_cell_lacks_writes_real_metrics_and_figures(tmp_path):
    """lr, max_length, precision and device are Config fields that 05's parameters cell does not list."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA} (python -m mtlib download)")
    import papermill as pm
    out = tmp_path / "run"
    pm.execute_notebook(str(ROOT / "notebooks" / "05_novel.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"dropout": 0, "profile": "smoke", "out_dir": str(out), "precision": "fp32",
                                    "device": "cpu", "lr": 3e-5, "max_length": 24, "steps_per_epoch": 2},
                        progress_bar=False)
    assert {k not in assigned(cells(ROOT / "notebooks" / "05_novel.ipynb")[2].source)
            for k in ("lr", "max_length", "precision", "device")} == {True}
    config = json.loads((out / "novel" / "config.json").read_text())
    assert (config["lr"], config["max_length"]) == (3e-5, 24)
    m = json.loads((out / "novel" / "metrics.json").read_text())
    assert m["config"]["dropout"] == 0.0 and m["config"]["pipeline"] == "novel"
    assert m["config"]["precision"] == "fp32" and m["precision"] == "fp32" and m["config"]["device"] == "cpu"
    assert m["config"]["combine"] == "pcgrad" and m["config"]["sts_head"] == "cosine"
    for key in ("sst_acc", "para_acc"):
        assert 0.0 < m[key] <= 1.0
    assert -1.0 <= m["sts_pearson"] <= 1.0 and m["sts_pearson"] != 0.0
    assert [s["name"] for s in m["stages"]][-1] == "frozen" and m["final_stage"] == "frozen"
    for name in ("05_novel-training.png", "05_novel-gradients.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    assert not list((out / "novel").rglob("*.png"))                 # no figure inside the run's folder
    shown = outputs(tmp_path / "out.ipynb")
    assert str(round(m["overall"], 3)) in shown      # the table the notebook shows is the run's own numbers
    assert f"**Finding.** Novel: CS + GS, no dropout reaches overall {m['overall']:.3f}" in shown
    assert str(SHARED_DATA.resolve()) not in shown and f"{ROOT}/" not in shown      # no machine paths



def run_folders(root) -> dict:
    """Every file (path, size, mtime_ns) of every run folder (one holding config.json or metrics.json) under root."""
    folders = {p.parent for name in ("config.json", "metrics.json") for p in root.rglob(name)}
    return {str(f.relative_to(root)): sorted((str(p.relative_to(f)), p.stat().st_size, p.stat().st_mtime_ns)
                                             for p in f.rglob("*") if p.is_file()) for f in folders}


@pytest.mark.slow
def test_papermill_02_twice_loads_its_runs_and_never_writes_into_a_run_folder(tmp_path):
    """02 trains on the first execution; the second loads its runs and 01's baseline, and leaves every run folder
    as it was (no figure, no rewritten file); the noise floor is the sum run's own file."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA} (python -m mtlib download)")
    import papermill as pm

    def execute(stem, **params):
        pm.execute_notebook(str(ROOT / "notebooks" / f"{stem}.ipynb"), str(tmp_path / f"{stem}.ipynb"),
                            parameters={"profile": "smoke", "progress": False, **SHORT, **params}, progress_bar=False)

    fake_run(tmp_path / "01" / "baseline", sts_pearson=0.31)        # 01's finished run: 02 reads its metrics.json
    gs = dict(out_dir=str(tmp_path / "02"), baseline_dir=str(tmp_path / "01" / "baseline"))
    execute("02_gradient_surgery", **gs)
    before = run_folders(tmp_path)
    assert {"01/baseline", "02/pcgrad_sum", "02/pcgrad_mean"} <= set(before)
    assert (tmp_path / "02" / "figures" / "02_gradient_surgery-gradients.png").exists()
    execute("02_gradient_surgery", **gs)
    assert run_folders(tmp_path) == before
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("gradient_noise.json")] == [
        "02/pcgrad_sum/gradient_noise.json"]                          # the run wrote it, the notebook did not
    shown = outputs(tmp_path / "02_gradient_surgery.ipynb")
    assert "**Finding.** Gradient Surgery (GS) reaches STS r" in shown and "our Baseline run has" in shown
    noise = json.loads((tmp_path / "02" / "pcgrad_sum" / "gradient_noise.json").read_text())
    pairs = sum(r["task_a"] == r["task_b"] == "sst" for r in noise)       # one pass of smoke's smallest train set
    assert "noise floor |cos| sts" in shown and f"over {pairs} pairs of batches a task" in shown and pairs >= 2
