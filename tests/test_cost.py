"""What runs cost (mtlib.report.cost, reports/profile.md): where a run's time went, one seed of `make report`, and the
fast path's parity check."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import fake_run
from mtlib.report import cost
from mtlib.report.cost import equal_compute_steps
from mtlib.report.paper import EQUAL_COMPUTE
from mtlib.report.execute import ReportError


def _with_steps(folder, n_steps, pipeline="multitask", **metrics):
    """A finished fake run whose step log has n_steps steps and whose metrics.json has `metrics`."""
    fake_run(folder, **metrics)
    m = json.loads((folder / "metrics.json").read_text())
    m["config"].update(pipeline=pipeline, **metrics.pop("config", {}))
    (folder / "metrics.json").write_text(json.dumps(m))
    steps = [{"type": "step", "stage": "multitask", "step": i, "step_s": 1.0} for i in range(n_steps)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in steps) + "\n")


@pytest.mark.slow
def test_run_profile_adds_up_to_the_wall_time(tiny_config):
    from mtlib.pipelines import run
    m = run(tiny_config, pipeline="novel", epochs=1)
    t = cost.run_profile(tiny_config["out_dir"])
    assert list(t.index) == [s["name"] for s in m["stages"]] + ["whole run"]
    parts = list(cost.PHASES) + list(cost.OUTSIDE) + ["rest"]
    assert (t[parts].sum(axis=1) - t["wall (s)"]).abs().max() < 1e-6
    assert t.loc["whole run", "wall (s)"] == m["wall_s"] and t.loc["frozen", "features"] > 0
    assert t.loc["multitask", "surgery"] > 0 and t.loc["single_sst", "surgery"] == 0
    md = cost.profile_markdown([tiny_config["out_dir"]])
    assert "| frozen |" in md and "Share of the run's" in md


def test_the_profile_takes_each_rows_lowest_quiet_seed_that_ran_in_one_process(tmp_path):
    fake_run(tmp_path / "04_cs_gs" / "seed0" / "cs_gs", resumed=True)
    fake_run(tmp_path / "04_cs_gs" / "seed2" / "cs_gs")
    fake_run(tmp_path / "04_cs_gs" / "seed1" / "cs_gs")
    fake_run(tmp_path / "01_baseline" / "seed0" / "baseline", resumed=True)
    assert cost.profile_runs(tmp_path) == [tmp_path / "04_cs_gs" / "seed1" / "cs_gs"]
    fake_run(tmp_path / "03_cosine_similarity" / "seed0" / "cs", cpu_s=60.0, threads=2, wall_s=60.0)       # shared
    fake_run(tmp_path / "03_cosine_similarity" / "seed1" / "cs", cpu_s=118.0, threads=2, wall_s=60.0)      # quiet
    assert tmp_path / "03_cosine_similarity" / "seed1" / "cs" in cost.profile_runs(tmp_path)
    with pytest.raises(ReportError, match="resumed run"):
        cost.profile_markdown([tmp_path / "01_baseline" / "seed0" / "baseline"])


def test_one_seed_of_make_report_measures_quiet_runs_and_projects_the_rest(tmp_path):
    _with_steps(tmp_path / "01_baseline/seed0/baseline", 700, wall_s=1000.0, cpu_s=1960.0, threads=2)   # CPU use 98%
    _with_steps(tmp_path / "01_baseline/seed1/baseline", 700, wall_s=1400.0, cpu_s=2744.0, threads=2)   # 98%
    _with_steps(tmp_path / "01_baseline/seed2/baseline", 700, wall_s=3000.0, cpu_s=3600.0, threads=2)   # shared: 60%
    _with_steps(tmp_path / "03_cosine_similarity/seed0/cs", 700, wall_s=900.0)           # CPU use not recorded
    _with_steps(tmp_path / "05_novel-no-dropout/seed0/novel", 3000, "novel", wall_s=2700.0, cpu_s=5300.0, threads=2)
    t = cost.seed_cost(tmp_path).set_index("run")
    assert t.loc["Baseline", "wall_s"] == 1200.0 and t.loc["Baseline", "steps"] == 700    # the shared seed left out
    assert "median of 2 of 3 runs (quiet)" in t.loc["Baseline", "from"]
    assert t.loc["Cosine Similarity (CS)", "wall_s"] == 900.0
    assert "CPU use not recorded" in t.loc["Cosine Similarity (CS)", "from"]
    per_step = 1200.0 / 700                                    # only quiet multitask rows set the cost of a step
    assert t.attrs["per_step_s"] == pytest.approx(per_step)
    novel_steps = "CS + GS, no dropout, novel's step count (not in the report)"
    assert t.loc[novel_steps, "steps"] == 3 * 771 and t.loc[novel_steps, "wall_s"] == pytest.approx(3 * 771 * per_step)
    assert t.loc["Novel: CS + GS", "wall_s"] == 2700.0 and "as Novel: CS + GS, no dropout" in t.loc["Novel: CS + GS",
                                                                                                     "from"]
    assert t.loc["combine=upgrad", "wall_s"] == pytest.approx(700 * per_step)
    assert "combine=sum" not in t.index and "combine=pcgrad" not in t.index      # 06 loads 03's and 04's runs
    md = cost.seed_cost_markdown(tmp_path)
    total = t["wall_s"].sum() / 60
    assert f"| **{total:.0f}** |" in md and f"hold {40 * 60 / per_step:,.0f} steps" in md
    assert "The measured runs ran on cpu: test;" in md and t.loc["Baseline", "device"] == "cpu: test"


def test_parity_compares_a_fast_path_off_run_with_the_seeds_of_its_configuration(tmp_path):
    cfg = dict(pipeline="multitask", combine="sum", sts_head="cosine", para_head="sbert")
    for seed, sst in enumerate((0.46, 0.45, 0.47)):
        fake_run(tmp_path / f"07_beyond/best/seed{seed}", sst_acc=sst,
                  config={**cfg, "seed": seed, "out_dir": f"elsewhere/{seed}", "profile": "cpu", "dropout": 0.0})
    fake_run(tmp_path / "07_beyond/para_head-concat/seed0", sst_acc=0.9,      # another configuration: not compared
              config={**cfg, "para_head": "concat", "profile": "cpu", "dropout": 0.0})
    off = dict(precision="fp32", bucket=False, dropout_impl="torch", seed=0, profile="cpu", dropout=0.0)
    fake_run(tmp_path / "parity/best-fast-path-off/seed0", sst_acc=0.44, config={**cfg, **off})
    fake_run(tmp_path / "parity/far/seed0", sst_acc=0.30, config={**cfg, **off})
    fake_run(tmp_path / "rerun/07_beyond/best/seed0", sst_acc=0.46,       # seed 0 trained again: not a fourth seed
             config={**cfg, "seed": 0, "out_dir": "elsewhere/0", "profile": "cpu", "dropout": 0.0})
    near, far = sorted(cost.parity(tmp_path), key=lambda r: r["run"])
    assert len(near["fast"]) == 3 and {m["config"]["seed"] for m in near["fast"]} == {0, 1, 2}
    x = np.array([0.46, 0.45, 0.47])
    half = stats.t.ppf(0.975, 2) * x.std(ddof=1) * np.sqrt(1 + 1 / 3)
    s = near["metrics"]["sst_acc"]
    assert s["lo"] == pytest.approx(x.mean() - half) and s["hi"] == pytest.approx(x.mean() + half)
    assert s["within"] and not far["metrics"]["sst_acc"]["within"]
    md = cost.parity_markdown(tmp_path)
    assert "**Parity holds**" in md and "**Outside the fast path's spread**: SST acc (below it), overall (below it)." in md


def test_parity_fills_the_fields_an_older_run_predates_with_their_defaults(tmp_path):
    # a run made before para_head existed trained the report's concat head: it matches concat, not sbert
    fake_run(tmp_path / "04_cs_gs/seed0/cs_gs", config={"pipeline": "multitask", "profile": "cpu", "dropout": 0.0})
    fake_run(tmp_path / "parity/sbert/seed0",
              config={"pipeline": "multitask", "profile": "cpu", "dropout": 0.0, "para_head": "sbert", "bucket": False})
    fake_run(tmp_path / "parity/concat/seed0",
              config={"pipeline": "multitask", "profile": "cpu", "dropout": 0.0, "para_head": "concat", "bucket": False})
    by_name = {r["run"].rsplit("/", 2)[-2]: r for r in cost.parity(tmp_path)}
    assert len(by_name["concat"]["fast"]) == 1 and by_name["sbert"]["fast"] == []
    md = cost.parity_markdown(tmp_path)
    assert "No verdict: fewer than two fast-path runs" in md
    assert "parity/concat`, paired by seed (n = 1)" in md and "parity/sbert`, paired" not in md   # nothing to pair


def test_parity_pairs_each_seed_with_the_fast_path_run_of_that_seed(tmp_path):
    # STS: off is higher by .020, .025, .030 (an effect the pairing resolves); SST: -.01, +.01, 0 (it does not)
    cfg = dict(pipeline="multitask", combine="sum", sts_head="cosine", para_head="sbert", profile="cpu", dropout=0.0)
    on_sst, on_sts = (0.46, 0.45, 0.47), (0.870, 0.860, 0.875)
    for seed in range(3):
        fake_run(tmp_path / f"07_beyond/best/seed{seed}", sst_acc=on_sst[seed], sts_pearson=on_sts[seed],
                  config={**cfg, "seed": seed})
    off = dict(precision="fp32", bucket=False, dropout_impl="torch")
    for seed, (d_sst, d_sts) in enumerate(((-0.01, 0.020), (0.01, 0.025), (0.0, 0.030))):
        fake_run(tmp_path / f"parity/best-fast-path-off/seed{seed}", sst_acc=on_sst[seed] + d_sst,
                  sts_pearson=on_sts[seed] + d_sts, config={**cfg, **off, "seed": seed})
    paired = cost.parity_paired(cost.parity(tmp_path))
    (folder, found), = paired.items()
    metrics = found["metrics"]
    assert folder.endswith("parity/best-fast-path-off")
    assert found["pieces"] == ["length bucketing"]          # fp32 on both sides, and dropout 0: bucketing alone
    d = np.array([0.020, 0.025, 0.030])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    sts = metrics["sts_pearson"]
    assert sts["n"] == 3 and sts["mean"] == pytest.approx(0.025)
    assert sts["low"] == pytest.approx(0.025 - half) and sts["high"] == pytest.approx(0.025 + half)
    md = cost.parity_markdown(tmp_path)
    assert "paired by seed (n = 3)" in md
    assert "| STS r | +0.025 |" in md and "yes: off is higher" in md.split("| STS r | +0.025 |")[1].split("\n")[0]
    assert "| SST acc | +0.000 |" in md and md.split("| SST acc | +0.000 |")[1].split("\n")[0].endswith("not resolved |")
    # a smaller bucketing window on the same configuration: paired with the fast-path-off runs too
    for seed, d_sts in enumerate((0.021, 0.024, 0.031)):
        fake_run(tmp_path / f"parity/best-pool8/seed{seed}", sst_acc=on_sst[seed], sts_pearson=on_sts[seed] + d_sts,
                  config={**cfg, "bucket_pool": 8, "seed": seed})
    rows = cost.parity(tmp_path)
    assert cost.parity_paired(rows)[str(Path(rows[-1]["run"]).parent)]["pieces"] == [
        "the bucketing window (8 batches against 64)"]
    (pair,) = cost.parity_between(rows)
    assert pair["a"].endswith("best-fast-path-off") and pair["b"].endswith("best-pool8")
    assert pair["metrics"]["sts_pearson"]["n"] == 3
    assert pair["metrics"]["sts_pearson"]["mean"] == pytest.approx((0.020 + 0.025 + 0.030 - 0.021 - 0.024 - 0.031) / 3)
    md = cost.parity_markdown(tmp_path).replace(str(tmp_path) + "/parity/", "")
    assert "### `best-pool8`, paired by seed (n = 3)" in md                  # against the fast path
    assert "### `best-fast-path-off` against `best-pool8`, paired by seed (n = 3)" in md

    # another machine's runs of the same configuration are neither the fast path's seeds nor a partner: numerics differ
    xeon = "cpu: Intel Xeon, 2 threads"
    fake_run(tmp_path / "elsewhere/best/seed0", sst_acc=0.1, device=xeon, config={**cfg, "seed": 0})
    fake_run(tmp_path / "parity/best-fp32/seed0", device=xeon, config={**cfg, "precision": "fp32", "seed": 0})
    rows = {Path(r["run"]).parent.name + "/" + Path(r["run"]).name: r for r in cost.parity(tmp_path)}
    assert [m["sst_acc"] for m in rows["best-fp32/seed0"]["fast"]] == [0.1]
    assert all(m["device"] == "cpu: test" for m in rows["best-pool8/seed0"]["fast"])
    assert len(rows["best-pool8/seed0"]["fast"]) == 3
    assert len(cost.parity_between(list(rows.values()))) == 1                  # best-fp32 pairs with no other folder
    # STS alone left unbucketed: another way of bucketing, so it pairs with both; fp32 (bf16 off) with neither
    for seed in range(3):
        fake_run(tmp_path / f"parity/best-sts-unbucketed/seed{seed}", config={**cfg, "bucket_tasks": "sst,para", "seed": seed})
    fake_run(tmp_path / "parity/best-fp32-only/seed0", device=xeon, config={**cfg, "precision": "fp32", "seed": 0})
    rows = cost.parity(tmp_path)
    pairs = {(Path(p["a"]).name, Path(p["b"]).name) for p in cost.parity_between(rows)}
    assert pairs == {("best-fast-path-off", "best-pool8"), ("best-fast-path-off", "best-sts-unbucketed"),
                     ("best-pool8", "best-sts-unbucketed")}


@pytest.mark.parametrize("off,dropout,precisions,expected", [
    (dict(dropout_impl="torch"), 0.1, ("fp32", "fp32"), ["FastDropout"]),
    (dict(dropout_impl="torch"), 0.0, ("fp32", "fp32"), []),                  # nn.Dropout at p=0: nothing differs
    (dict(precision="fp32", bucket=False), 0.0, ("bf16-autocast", "fp32"), ["bf16 autocast", "length bucketing"]),
    (dict(bucket_pool=8), 0.0, ("fp32", "fp32"), ["the bucketing window (8 batches against 64)"]),
    (dict(bucket_tasks="sst,para"), 0.0, ("fp32", "fp32"), ["bucketing of sts"]),
    (dict(bucket=False, bucket_tasks="sst,para"), 0.0, ("fp32", "fp32"), ["length bucketing"]),   # none bucketed
])
def test_parity_names_the_pieces_that_change_training(off, dropout, precisions, expected):
    fast_precision, off_precision = precisions
    runs = [{"config": {"dropout": dropout, **off}, "off": {"precision": off_precision},
             "fast": [{"precision": fast_precision}]}]
    assert cost._pieces_in_effect(runs) == expected


def test_a_rerun_is_set_beside_the_run_it_trains_again(tmp_path):
    """<key>/rerun/<label>/seed<k>/<row> against <key>/<label>/seed<k>/<row>: the same metrics to the last digit or
    the largest difference, both wall times with dates and CPU use; a rerun of another config is named as such."""
    cfg = dict(pipeline="multitask", combine="pcgrad", seed=0)
    fake_run(tmp_path / "xeon/04/seed0/cs_gs", wall_s=406.9, cpu_s=793.9, threads=2, config=cfg)
    fake_run(tmp_path / "xeon/rerun/04/seed0/cs_gs", wall_s=186.2, cpu_s=366.3, threads=2, config=cfg,
             finished_at="2026-12-07T11:22:50+00:00")
    fake_run(tmp_path / "xeon/05/seed0/novel", config={**cfg, "pipeline": "novel"})
    fake_run(tmp_path / "xeon/rerun/05/seed0/novel", sts_pearson=0.8003, config={**cfg, "pipeline": "novel"})
    fake_run(tmp_path / "xeon/rerun/06/seed0/cs", config=cfg)                   # nothing to set it beside: left out
    fake_run(tmp_path / "amd/01/seed0/baseline", config=cfg)
    fake_run(tmp_path / "amd/rerun/01/seed0/baseline", config={**cfg, "combine": "sum"})
    found = {(r["key"], r["run"]): r for r in cost.reruns(tmp_path)}
    assert set(found) == {("xeon", "04/seed0/cs_gs"), ("xeon", "05/seed0/novel"), ("amd", "01/seed0/baseline")}
    assert cost.rerun_text(found["xeon", "04/seed0/cs_gs"]) == (
        "the same dev metrics to the last digit; 6.8 min on 2026-11-28 (CPU use 98%), again 3.1 min on 2026-12-07 "
        "(CPU use 98%)")
    assert cost.rerun_text(found["xeon", "05/seed0/novel"]).startswith("dev metrics differ by up to 0.0003;")
    assert "not recorded" in cost.rerun_text(found["xeon", "05/seed0/novel"])
    assert cost.rerun_text(found["amd", "01/seed0/baseline"]).startswith("another training config: not a rerun")
    md = cost.reruns_markdown(tmp_path)
    assert "- **xeon, `04/seed0/cs_gs`**: the same dev metrics to the last digit;" in md
    assert "No run has been trained again yet." in cost.reruns_markdown(tmp_path / "nothing")
    from mtlib.report.tables import speed_note
    (note,) = speed_note(tmp_path / "xeon")[:1]                       # 04's rerun took less than half the time
    assert note.startswith("**This device key's machines differ in speed.** `rerun/04/seed0/cs_gs` trained again:")
    assert len(speed_note(tmp_path / "xeon")) == 2                    # 05's wall times match: nothing said of it
    assert speed_note(tmp_path / "amd") == []                         # another config is no rerun


def test_the_same_configuration_and_seed_on_two_machines_is_paired_in_the_same_precision_only(tmp_path):
    cfg = dict(pipeline="multitask", combine="sum", sts_head="cosine", para_head="sbert", profile="cpu", dropout=0.0)
    amd, xeon = "cpu: AMD EPYC, 2 threads", "cpu: Intel Xeon, 2 threads"
    for seed, d in enumerate((0.010, 0.012, 0.014)):
        fake_run(tmp_path / f"07_beyond/best/seed{seed}", sts_pearson=0.87, device=amd, config={**cfg, "seed": seed})
        # precision=fp32 asked for on the Xeon, `auto` (fp32: no native bf16) on the AMD: the same arithmetic
        fake_run(tmp_path / f"parity/best-fp32/seed{seed}", sts_pearson=0.87 + d, device=xeon,
                 config={**cfg, "seed": seed, "precision": "fp32"})
        fake_run(tmp_path / f"fast-path/best/seed{seed}", sts_pearson=0.5, device=xeon, precision="bf16-autocast",
                 config={**cfg, "seed": seed})                                   # bf16: another arithmetic
    (pair,) = cost.across_machines(tmp_path)
    assert (pair["a"], pair["b"]) == (amd, xeon) and pair["config"]["precision"] == "fp32"
    sts = pair["metrics"]["sts_pearson"]
    assert sts["n"] == 3 and sts["mean"] == pytest.approx(0.012) and sts["low"] > 0
    md = cost.machines_markdown(tmp_path)
    assert f"First: {amd}. Second: {xeon}." in md and "| STS r | +0.012 |" in md and "yes: the second is higher" in md
    assert "No configuration has been trained on two devices" in cost.machines_markdown(tmp_path / "07_beyond")


@pytest.mark.parametrize("key", sorted(EQUAL_COMPUTE))
def test_the_fixed_equal_compute_step_counts_are_what_their_runs_give(key):
    """paper.EQUAL_COMPUTE is fixed once; recomputed from the quiet runs of the seeds it names, it is the same."""
    fixed = dict(EQUAL_COMPUTE[key])
    steps = fixed.pop("steps")
    found = equal_compute_steps(f"reports/runs/{key}", **fixed)
    assert found["steps"] == steps
    assert found["novel_wall_s"] == pytest.approx(steps * found["cs_gs_step_s"], rel=0.001)


def test_equal_compute_needs_quiet_runs_of_both_rows(tmp_path):
    with pytest.raises(ReportError, match="needs quiet runs of 05_novel-no-dropout and 04_cs_gs-no-dropout-novel-steps"):
        equal_compute_steps(tmp_path)


def test_equal_compute_from_the_equal_data_row_where_no_novel_step_runs_are(tmp_path):
    """A device without CS + GS runs at the novel pipeline's step count takes the seconds per step of its equal-data
    runs: a quiet 1,200 s novel run over 0.5 s per step (median of the quiet ones) is 2,400 steps."""
    fake_run(tmp_path / "05_novel-no-dropout/seed0/novel", wall_s=1200.0, cpu_s=1.96 * 1200, threads=2)  # CPU use 98%
    fake_run(tmp_path / "05_novel-no-dropout/seed1/novel", wall_s=900.0)                   # CPU use unknown: left out
    for seed, wall in enumerate((619.0, 600.0, 700.0)):
        fake_run(tmp_path / f"04_cs_gs-no-dropout-equal-data/seed{seed}/cs_gs", wall_s=wall,
                 cpu_s=1.96 * wall, threads=2, config={"epochs": 2, "steps_per_epoch": 619})
    with pytest.raises(ReportError, match="quiet runs of 05_novel-no-dropout and 04_cs_gs-no-dropout-novel-steps"):
        equal_compute_steps(tmp_path)
    found = equal_compute_steps(tmp_path, None, "04_cs_gs-no-dropout-equal-data")
    assert found["steps"] == 2400 and found["novel_wall_s"] == 1200.0
    assert "median of 1 quiet novel runs" in found["from"] and "3 quiet 04_cs_gs-no-dropout-equal-data" in found["from"]
    assert equal_compute_steps(tmp_path, (0, 1), "04_cs_gs-no-dropout-equal-data")["cs_gs_step_s"] == pytest.approx(
        (600 / 1238 + 619 / 1238) / 2)                                  # seeds 0 and 1 only: the median of two
    # the CS + GS runs' own seeds: seed 2's 700 s alone, whatever novel seeds are named
    alone = equal_compute_steps(tmp_path, (0,), "04_cs_gs-no-dropout-equal-data", cs_gs_seeds=(2,))
    assert alone["cs_gs_step_s"] == pytest.approx(700 / 1238) and alone["steps"] == round(1200 / (700 / 1238))


def test_a_parity_sentence_names_each_resolved_metric_and_the_widest_half_width_otherwise():
    """`interval_sentence`, worked by hand: STS +.020, +.025, +.030 resolves (half-width t(.975, 2) · .005 / √3 =
    .0124); SST -.01, +.01, 0 does not; Quora's +.01 on every seed has zero spread, which resolves nothing."""
    from mtlib.report.stats import paired_interval
    on = {0: {"sst_acc": .46, "para_acc": .80, "sts_pearson": .870, "overall": .70},
          1: {"sst_acc": .45, "para_acc": .81, "sts_pearson": .860, "overall": .71},
          2: {"sst_acc": .47, "para_acc": .82, "sts_pearson": .875, "overall": .72}}
    moves = {"sst_acc": (-.01, .01, 0), "para_acc": (.01, .01, .01), "sts_pearson": (.020, .025, .030),
             "overall": (0, .001, -.001)}
    off = {s: {k: m[k] + moves[k][s] for k in m} for s, m in on.items()}
    metrics = {k: paired_interval({s: m[k] for s, m in off.items()}, {s: m[k] for s, m in on.items()})
               for k in cost.METRIC_NAMES}
    assert metrics["para_acc"]["why"].startswith("zero spread") and metrics["sts_pearson"]["why"] is None
    assert cost.interval_sentence(metrics, "the parity run") == (
        "STS r higher in the parity run, +0.025 [+0.013, +0.037]; SST acc, Quora acc, overall not resolved")
    still = {k: v for k, v in metrics.items()}
    still["sts_pearson"] = metrics["sst_acc"]
    assert cost.interval_sentence(still, "x") == "no metric resolved (zero spread: every seed gives the same " \
                                                  "difference; widest half-width 0.025)"
    one = {k: paired_interval({0: off[0][k]}, {0: on[0][k]}) for k in cost.METRIC_NAMES}
    assert cost.interval_sentence(one, "x") == ("n = 1: no interval (SST acc -0.010, Quora acc +0.010, STS r +0.020, "
                                                "overall +0.000)")
    off[1]["sts_pearson"] = on[1]["sts_pearson"] + .021         # two seeds, +.020 and +.021: [+.014, +.027]
    two = {k: paired_interval({s: off[s][k] for s in (0, 1)}, {s: on[s][k] for s in (0, 1)}) for k in cost.METRIC_NAMES}
    assert two["sts_pearson"]["low"] > 0 and cost.interval_sentence(two, "x").startswith("no metric resolved (n < 3")
