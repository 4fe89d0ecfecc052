"""The notebooks as a researcher runs them: papermill with injected parameters, then read the run back."""
import json

import nbformat
import pytest

from conftest import ROOT, SHARED_DATA

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_five_rungs_and_the_methods_notebook_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_baseline", "02_gradient_surgery", "03_cosine_similarity", "04_cs_gs",
                                          "05_novel", "06_gradient_methods"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "dropout = 0.1" in tagged[0].source and "profile = None" in tagged[0].source


def test_papermill_novel_with_int_dropout_writes_real_metrics_and_figures(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA} (python -m mtlib download)")
    import papermill as pm
    out = tmp_path / "run"
    pm.execute_notebook(str(ROOT / "notebooks" / "05_novel.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"dropout": 0, "profile": "smoke", "out_dir": str(out)}, progress_bar=False)
    m = json.loads((out / "novel" / "metrics.json").read_text())
    assert m["config"]["dropout"] == 0.0 and m["config"]["pipeline"] == "novel"
    assert m["config"]["combine"] == "pcgrad" and m["config"]["sts_head"] == "cosine"
    for key in ("sst_acc", "para_acc"):
        assert 0.0 < m[key] <= 1.0
    assert -1.0 <= m["sts_pearson"] <= 1.0 and m["sts_pearson"] != 0.0
    assert [s["name"] for s in m["stages"]][-1] == "frozen" and m["final_stage"] == "frozen"
    for name in ("05_novel-training.png", "05_novel-gradients.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    shown = "".join(o.get("data", {}).get("text/plain", "") for c in executed.cells if c.cell_type == "code"
                    for o in c.outputs)
    assert str(round(m["overall"], 3)) in shown      # the table the notebook shows is the run's own numbers
