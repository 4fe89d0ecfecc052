"""The dev-only learning-rate sweep (`make sweep`): one run per lr, the best dev mean named, an interrupted sweep
resumed rather than retrained."""
import pytest

from mtlib.report.sweep import lr_sweep


@pytest.mark.slow
def test_sweep_trains_one_run_per_lr_names_the_best_and_loads_finished_runs(tiny_config, tmp_path):
    params = {k: v for k, v in tiny_config.items() if k not in ("out_dir", "lr", "progress")}
    params.update(epochs=1, steps_per_epoch=2)
    out = tmp_path / "lr-sweep.md"
    table = lr_sweep((1e-3, 1e-2), runs_dir=tmp_path / "sweep", out=out, **params)
    assert list(table["lr"]) == [1e-3, 1e-2]
    best = table.loc[table["overall"].idxmax()]
    text = out.read_text()
    assert f"**Best dev mean: lr {best['lr']:g}** (overall {best['overall']:.3f})" in text
    assert "| 0.001 |" in text and "| 0.01 |" in text and "Scored on dev only" in text
    first = (tmp_path / "sweep" / "lr0.001" / "metrics.json").stat().st_mtime_ns
    again = lr_sweep((1e-3,), runs_dir=tmp_path / "sweep", out=out, **params)      # finished: loaded, not retrained
    assert (tmp_path / "sweep" / "lr0.001" / "metrics.json").stat().st_mtime_ns == first
    assert again.loc[0, "overall"] == table.loc[0, "overall"]
