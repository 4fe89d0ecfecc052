"""results.md from seeds: mean ± std, paired claims with t-intervals and verdicts."""
import json

import pytest
from scipy import stats

from mtlib import report
from mtlib.evaluate import ConstantPredictionWarning, score
from mtlib.train import better


def test_interval_is_the_t_interval():
    mean, lo, hi = report.interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / 3 ** 0.5
    assert mean == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert report.interval([0.5])[0] == 0.5 and report.interval([0.5])[1] != report.interval([0.5])[1]


@pytest.mark.parametrize("lo,hi,sign,expected", [
    (0.01, 0.03, +1, "holds"), (0.01, 0.03, -1, "reversed"), (-0.03, -0.01, -1, "holds"),
    (-0.01, 0.02, +1, "not resolved"), (-0.03, -0.01, 0, "holds"), (-0.01, 0.01, 0, "not resolved"),
    (float("nan"), float("nan"), +1, "not resolved (n < 2)")])
def test_verdict(lo, hi, sign, expected):
    assert report.verdict(lo, hi, sign) == expected


def _fake_run(folder, **metrics):
    folder.mkdir(parents=True)
    m = {"sst_acc": 0.4, "para_acc": 0.7, "sts_pearson": 0.8, **metrics}
    m["overall"] = (m["sst_acc"] + m["para_acc"] + m["sts_pearson"]) / 3
    m = {**dict(final_stage="multitask", best_epoch=1, wall_s=60.0, device="cpu: test", precision="fp32",
             encoder="all-MiniLM-L6-v2", finished_at="2026-11-28T00:00:00+00:00", versions={"mtlib": "abc"},
             majority={"sst_acc": 0.26, "para_acc": 0.63},
             config={"profile": "cpu", "dropout": 0.1, "lr": 5e-5, "batch_size": 16, "epochs": 1,
                     "steps_per_epoch": 700}), **m}
    (folder / "metrics.json").write_text(json.dumps(m))


def test_a_resumed_runs_partial_wall_time_is_marked_and_left_out_of_the_rows_mean(tmp_path):
    _fake_run(tmp_path / "03_cosine_similarity" / "seed0" / "cs", wall_s=600.0)
    _fake_run(tmp_path / "03_cosine_similarity" / "seed1" / "cs", wall_s=60.0, resumed=True)
    _fake_run(tmp_path / "01_baseline" / "seed0" / "baseline", wall_s=60.0, resumed=True)
    lines = report.results_markdown(tmp_path).splitlines()
    assert next(x for x in lines if x.startswith("| Cosine Similarity (CS) |")).endswith("| 10.0 |")
    assert next(x for x in lines if x.startswith("| Baseline |")).endswith("| resumed |")
    assert any(x.startswith("| Cosine Similarity (CS) | 1 |") and "| 1.0 (resumed: last process only) |" in x
               for x in lines)


def test_cpu_use_is_cpu_seconds_over_wall_times_threads(tmp_path):
    _fake_run(tmp_path / "03_cosine_similarity" / "seed0" / "cs", wall_s=100.0, cpu_s=100.0, threads=2)
    _fake_run(tmp_path / "03_cosine_similarity" / "seed1" / "cs", wall_s=100.0)          # before cpu_s was recorded
    lines = report.results_markdown(tmp_path).splitlines()
    assert any(x.startswith("| Cosine Similarity (CS) | 0 |") and "| 1.7 | 50% | 2026" in x for x in lines)
    assert any(x.startswith("| Cosine Similarity (CS) | 1 |") and "| 1.7 |  | 2026" in x for x in lines)


def test_results_show_mean_std_n_and_paired_claims(tmp_path):
    for seed, sts_gs in ((0, 0.70), (1, 0.71), (2, 0.69)):
        _fake_run(tmp_path / "01_baseline" / f"seed{seed}" / "baseline", sts_pearson=0.80 + seed / 100)
        _fake_run(tmp_path / "02_gradient_surgery" / f"seed{seed}" / "pcgrad_sum", sts_pearson=sts_gs)
    _fake_run(tmp_path / "03_cosine_similarity" / "seed0" / "cs", sts_pearson=0.9)
    md = report.results_markdown(tmp_path)
    base = next(line for line in md.splitlines() if line.startswith("| Baseline |"))
    assert "0.810 ± 0.010" in base and "| 3 |" in base and "0.494" in base        # ours, n, the report's
    claim_a = next(line for line in md.splitlines() if line.startswith("| (a) GS on the baseline hurts STS"))
    assert "| 3 | -0.110 |" in claim_a and claim_a.endswith("| holds |")
    claim_b = next(line for line in md.splitlines() if line.startswith("| (b) the cosine head helps STS"))
    assert "| 1 |" in claim_b and "not resolved (n < 2)" in claim_b
    assert "| (c) CS+GS beats CS | overall |" in md and "not run |" in md
    assert "SST 0.260 and Quora 0.630" in md and "| Novel: CS + GS | not run |" in md


def test_a_constant_sts_prediction_is_nan_with_a_warning_and_never_the_best_epoch():
    with pytest.warns(ConstantPredictionWarning, match="constant"):
        r = score("sts", [1.0, 2.0, 3.0], [2.5, 2.5, 2.5])
    assert r != r
    assert better(0.1, float("nan")) and not better(float("nan"), 0.1) and not better(0.1, 0.2)


def test_run_profile_adds_up_to_the_wall_time(tiny_config):
    from mtlib.pipelines import run
    m = run(tiny_config, pipeline="novel", epochs=1)
    t = report.run_profile(tiny_config["out_dir"])
    assert list(t.index) == [s["name"] for s in m["stages"]] + ["whole run"]
    parts = list(report.PHASES) + list(report.OUTSIDE) + ["rest"]
    assert (t[parts].sum(axis=1) - t["wall (s)"]).abs().max() < 1e-6
    assert t.loc["whole run", "wall (s)"] == m["wall_s"] and t.loc["frozen", "features"] > 0
    assert t.loc["multitask", "surgery"] > 0 and t.loc["single_sst", "surgery"] == 0
    md = report.profile_markdown([tiny_config["out_dir"]])
    assert "| frozen |" in md and "Share of the run's" in md


def test_the_profile_takes_each_rows_lowest_seed_that_ran_in_one_process(tmp_path):
    _fake_run(tmp_path / "04_cs_gs" / "seed0" / "cs_gs", resumed=True)
    _fake_run(tmp_path / "04_cs_gs" / "seed2" / "cs_gs")
    _fake_run(tmp_path / "04_cs_gs" / "seed1" / "cs_gs")
    _fake_run(tmp_path / "01_baseline" / "seed0" / "baseline", resumed=True)
    assert report.profile_runs(tmp_path) == [tmp_path / "04_cs_gs" / "seed1" / "cs_gs"]
    with pytest.raises(report.ReportError, match="resumed run"):
        report.profile_markdown([tmp_path / "01_baseline" / "seed0" / "baseline"])


def test_execute_runs_each_seed_of_the_rungs_then_the_seed_looping_notebooks_once_with_all_seeds(tmp_path, monkeypatch):
    import papermill as pm
    calls = []
    monkeypatch.setattr(pm, "execute_notebook", lambda src, dst, parameters, **kw: calls.append((src, dst, parameters)))
    report.execute("smoke", ["04_cs_gs-no-dropout", "06_gradient_methods", "07_beyond"], tmp_path / "rep", (1, 2))
    assert [(c[0], c[1]) for c in calls] == [
        ("notebooks/04_cs_gs.ipynb", str(tmp_path / "rep/notebooks/04_cs_gs-no-dropout-seed1.ipynb")),
        ("notebooks/04_cs_gs.ipynb", str(tmp_path / "rep/notebooks/04_cs_gs-no-dropout-seed2.ipynb")),
        ("notebooks/06_gradient_methods.ipynb", str(tmp_path / "rep/notebooks/06_gradient_methods.ipynb")),
        ("notebooks/07_beyond.ipynb", str(tmp_path / "rep/notebooks/07_beyond.ipynb"))]
    assert calls[1][2]["seed"] == 2 and calls[1][2]["dropout"] == 0
    assert calls[1][2]["out_dir"] == str(tmp_path / "rep/runs/04_cs_gs-no-dropout/seed2")
    methods, beyond = calls[2][2], calls[3][2]
    assert methods["seeds"] == [1, 2] and beyond["seeds"] == [1, 2] and "seed" not in methods
    assert methods["out_dir"] == str(tmp_path / "rep/runs/06_gradient_methods")
    assert methods["figures_dir"] == str(tmp_path / "rep/figures") and "figures_dir" not in beyond
    assert methods["resume"] is True and methods["profile"] == "smoke"


def test_execute_sets_config_fields_for_every_notebook_and_rejects_what_a_rung_or_seed_sets(tmp_path, monkeypatch):
    import papermill as pm
    from mtlib.config import ConfigError
    calls = []
    monkeypatch.setattr(pm, "execute_notebook", lambda src, dst, parameters, **kw: calls.append(parameters))
    report.main(["--execute", "--profile", "smoke", "--only", "01_baseline", "06_gradient_methods", "--seeds", "0",
                 "--reports", str(tmp_path / "rep"), "--runs", str(tmp_path / "rep/runs"), "--out", str(tmp_path / "r.md"),
                 "--set", "precision=fp32", "encoder=some/folder"])
    assert len(calls) == 2 and all(c["precision"] == "fp32" and c["encoder"] == "some/folder" for c in calls)
    with pytest.raises(ConfigError, match="precison"):
        report.execute("smoke", ["01_baseline"], tmp_path / "rep", (0,), {"precison": "fp32"})
    with pytest.raises(ConfigError, match="precision='fp8' is not valid"):
        report.execute("smoke", ["01_baseline"], tmp_path / "rep", (0,), {"precision": "fp8"})
    with pytest.raises(ConfigError, match="combine cannot be set for every notebook"):
        report.execute("smoke", ["01_baseline"], tmp_path / "rep", (0,), {"combine": "pcgrad"})
    assert len(calls) == 2
