"""The 07_beyond notebook's ablation: which configurations it runs and how the table summarises seeds."""
import pytest

from mtlib.report.paper import ablation_configs
from mtlib.report.runs import ablation_runs, best_run, run_folder
from mtlib.report.tables import DELTA, _ablation_per_task, ablation_table, publish_predictions

BEST = dict(pipeline="multitask", combine="sum", sts_head="cosine", para_head="sbert", sts_loss="cosent",
            schedule="linear", merge="uniform", dropout=0.0, ema=0.99)


def test_each_improvement_is_removed_once_and_unchanged_knobs_give_no_row():
    rows = ablation_configs(BEST, ["para_head", "sts_loss", "schedule", "merge", "sts_head", "dropout", "ema"])
    assert list(rows) == ["best", "para_head=concat", "sts_loss=mse", "schedule=constant", "sts_head=mlp, sts_loss=mse",
                          "dropout=0.1", "ema=0.0"]                       # merge is uniform already: no row
    assert rows["ema=0.0"] == {**BEST, "ema": 0.0} and run_folder("ema=0.0") == "ema-0.0"
    assert rows["best"] == BEST
    assert rows["sts_loss=mse"] == {**BEST, "sts_loss": "mse"}
    assert rows["sts_head=mlp, sts_loss=mse"] == {**BEST, "sts_head": "mlp", "sts_loss": "mse"}
    assert run_folder("sts_head=mlp, sts_loss=mse") == "sts_head-mlp+sts_loss-mse"
    assert run_folder("loss_weights=sts=0.5") == "loss_weights-sts=0.5"      # a value's own `=` stays
    with pytest.raises(ValueError, match="cannot ablate lr; choose from para_head"):
        ablation_configs(BEST, ["lr"])


def metrics(sst, para, sts, wall_s):
    return dict(sst_acc=sst, para_acc=para, sts_pearson=sts, overall=(sst + para + sts) / 3, wall_s=wall_s)


def test_table_is_mean_and_sample_std_over_seeds_with_wall_time():
    runs = {"best": [metrics(0.5, 0.8, 0.9, 600), metrics(0.6, 0.8, 0.9, 720), metrics(0.4, 0.8, 0.9, 660)],
            "para_head=concat": [metrics(0.5, 0.5, 0.9, 540)]}
    t = ablation_table(runs)
    assert list(t.index) == ["best", "para_head=concat"]
    assert t.loc["best", "sst_acc"] == "0.500 ± 0.100"          # sample std of 0.5, 0.6, 0.4
    assert t.loc["best", "para_acc"] == "0.800 ± 0.000" and t.loc["best", "seeds"] == 3
    assert t.loc["best", "wall (min)"] == "11.0 ± 1.0"
    assert t.loc["para_head=concat", "overall"] == "0.633"       # one seed: no std
    assert best_run(runs["best"])["sst_acc"] == 0.6


def test_the_change_is_paired_by_seed_with_its_t_interval():
    def at(seed, sst):
        return {**metrics(sst, 0.8, 0.9, 600), "config": {"seed": seed}}
    best = [at(0, 0.50), at(1, 0.60), at(2, 0.40)]
    runs = {"best": best,
            "para_head=concat": [at(2, 0.40 - 0.09), at(0, 0.50 - 0.03), at(1, 0.60 - 0.06)],   # order: by seed
            "schedule=constant": [at(1, 0.70)]}
    t = ablation_table(runs)
    # overall moves by -0.01, -0.02, -0.03: mean -0.02, sample std 0.01, t(0.975, 2) = 4.303 -> ± 0.0248
    assert t.loc["para_head=concat", DELTA] == "-0.020 [-0.045, +0.005] (n=3)"
    assert t.loc["schedule=constant", DELTA] == f"{(0.70 - 0.60) / 3:+.3f} (n=1: no interval)"   # seed 1 only
    assert t.loc["best", DELTA] == ""


def test_rows_with_no_seed_in_common_are_not_compared():
    """A row's mean minus the best row's mean over different seeds would mix the knob's effect with seed noise."""
    runs = {"best": [{**metrics(0.5, 0.8, 0.9, 600), "config": {"seed": 0}}],
            "para_head=concat": [{**metrics(0.2, 0.5, 0.9, 600), "config": {"seed": 1}}]}
    assert ablation_table(runs).loc["para_head=concat", DELTA] == "no seed in common"


def test_a_renamed_row_folder_is_read_where_it_lies_now(tmp_path):
    """When the best configuration changes, a row's runs move to another folder; their config.json still names the
    old one. The tables and the published leaderboard files must follow the folder, not the stale name."""
    import json
    run_dir = tmp_path / "07_beyond" / "best" / "seed0"
    (run_dir / "predictions").mkdir(parents=True)
    (run_dir / "predictions" / "sst-dev-output.csv").write_text("id,Predicted_Sentiment\n")
    stale = "reports/runs/07_beyond/schedule-constant/seed0"
    (run_dir / "metrics.json").write_text(json.dumps({**metrics(0.5, 0.8, 0.9, 600),
                                                      "config": {"seed": 0, "out_dir": stale}}))
    [m] = ablation_runs(tmp_path / "07_beyond")["best"]
    assert m["config"]["out_dir"] == str(run_dir.resolve())
    files = publish_predictions(m, tmp_path / "published")
    assert [f.name for f in files] == ["sst-dev-output.csv"]


def test_wall_time_leaves_out_runs_that_shared_the_machine():
    """A run with CPU use below 95% (cpu_s / (wall_s x threads)) was slowed by another job: not the code's speed."""
    alone = {**metrics(0.5, 0.8, 0.9, 600), "cpu_s": 1176.0, "threads": 2}           # 98%
    shared = {**metrics(0.5, 0.8, 0.9, 1200), "cpu_s": 1680.0, "threads": 2}         # 70%
    t = ablation_table({"best": [alone, {**alone, "wall_s": 720, "cpu_s": 1411.0}, shared], "other": [shared]})
    assert t.loc["best", "wall (min)"] == "11.0 ± 1.4 (1 shared run left out)"
    assert t.loc["other", "wall (min)"] == "20.0 (every run shared)"


def test_rows_that_move_a_task_with_the_mean_unmoved_are_named_under_the_table():
    """Per task, paired by seed: a row whose STS r is higher in every seed by about the same amount is named with
    its interval; a row whose differences straddle zero, and a one-seed row, are not."""
    def at(seed, sst, sts):
        return {**metrics(sst, 0.8, sts, 600), "config": {"seed": seed}}
    runs = {"best": [at(0, 0.50, 0.870), at(1, 0.52, 0.872), at(2, 0.48, 0.871)],
            "ema=0.99": [at(0, 0.49, 0.874), at(1, 0.53, 0.875), at(2, 0.47, 0.875)],      # STS +.004, +.003, +.004
            "head_lr=0.001": [at(0, 0.51, 0.860), at(1, 0.50, 0.882), at(2, 0.49, 0.871)],
            "lr=0.0001": [at(0, 0.40, 0.800)]}
    lines = _ablation_per_task(runs)
    named = [line for line in lines if line.startswith("- ")]
    assert named == ["- **ema=0.99**: sts_pearson +0.004 [+0.002, +0.005] (holds after Holm)."]
    # the family: ema's and head_lr's SST and STS (Quora's differences have no spread, lr=0.0001 has one seed)
    assert "over the 4 comparisons here that could resolve" in lines[0]
    wide = {**runs, **{f"noise{i}": [at(0, 0.50 + d, 0.870 + d), at(1, 0.52, 0.872 - d / 2), at(2, 0.48 - d, 0.871)]
                       for i, d in enumerate((0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01))}}
    assert "- **ema=0.99**: sts_pearson +0.004 [+0.002, +0.005] (uncorrected only)." in _ablation_per_task(wide)
    assert _ablation_per_task({"best": runs["best"], "head_lr=0.001": runs["head_lr=0.001"]}) == []


def test_the_selection_rule_names_a_row_at_the_bests_budget_that_resolves_above_it():
    """`selection_check`, by hand: overall +.03, +.04, +.05 over the best resolves (t-interval +.04 ± .0248); a row
    with more epochs that does the same is shown but not eligible; +.10 on two seeds, or on one, resolves nothing."""
    from mtlib.report.tables import selection_check

    def at(seed, overall, **config):
        return {"overall": overall, "config": {"seed": seed, "pipeline": "multitask", "epochs": 1,
                                               "steps_per_epoch": 700, **config}}
    best = [at(0, .70), at(1, .72), at(2, .71)]
    up = [.03, .04, .05]
    rows = {"ema=0.99": [at(k, m["overall"] + up[k], ema=0.99) for k, m in enumerate(best)],
            "epochs=2": [at(k, m["overall"] + up[k], epochs=2) for k, m in enumerate(best)],
            "lr=0.0001": [at(k, best[k]["overall"] + .10, lr=1e-4) for k in (0, 1)],
            "head_lr=0.001": [at(0, .90, head_lr=1e-3)]}
    text = selection_check(best, rows)[0]
    assert "(pipeline=multitask, epochs=1, steps_per_epoch=700)" in text
    assert "break the rule: `ema=0.99` +0.040 [+0.015, +0.065] (n=3): the best should change." in text
    assert text.endswith("At another budget, higher and resolved: `epochs=2` +0.040 [+0.015, +0.065] (n=3).")
    assert "lr=0.0001" not in text and "head_lr" not in text
    calm = selection_check(best, {k: v for k, v in rows.items() if k != "ema=0.99"})[0]
    assert "No row at the best's budget does." in calm and "should change" not in calm
