"""The 06 notebook's table and conclusion: paired t-intervals over seeds, computed from metrics.json files."""
import json

import pytest

from mtlib.report.runs import method_runs
from mtlib.report.stats import paired_interval
from mtlib.report.tables import methods_conclusion, methods_table, results_markdown


def test_paired_interval_known_answer():
    ci = paired_interval({0: 0.6, 1: 0.7, 2: 0.8}, {0: 0.5, 1: 0.5, 2: 0.5})   # d = 0.1, 0.2, 0.3
    half = 4.302652729749464 * 0.1 / 3 ** 0.5                                          # t(0.975, 2 df) sd / sqrt(n)
    assert ci["n"] == 3 and ci["mean"] == pytest.approx(0.2)
    assert (ci["low"], ci["high"]) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert paired_interval({0: 0.6, 5: 0.1}, {0: 0.5})["low"] is None      # only seed 0 is paired


def _runs(values: dict[str, list[float]]) -> dict[str, dict[int, dict]]:
    return {m: {s: {"overall": v} for s, v in enumerate(vs)} for m, vs in values.items()}


def test_conclusion_names_only_the_methods_whose_interval_excludes_zero():
    text = methods_conclusion(_runs({"sum": [0.50, 0.60, 0.55], "upgrad": [0.55, 0.66, 0.62],
                                            "mgda": [0.60, 0.50, 0.58], "pcgrad": [0.40, 0.49, 0.46]}))
    assert text.startswith("**Beats `sum` (95% interval above zero): upgrad.**")
    assert "**mgda** is not distinguishable from sum" in text and "**pcgrad** **is worse than** sum" in text


def test_conclusion_names_a_trade_between_tasks_that_leaves_the_mean_unmoved():
    # STS r differs by -.03, -.03, -.02 (t-interval by hand: -.0267 ± 4.303 * .00577 / √3); Quora by +.02 each seed
    sum_, mgda = ((0.87, 0.71), (0.88, 0.70), (0.86, 0.72)), ((0.84, 0.73), (0.85, 0.72), (0.84, 0.74))
    runs = {m: {s: {"sst_acc": 0.45, "para_acc": para, "sts_pearson": sts, "overall": 0.5 + 0.01 * s}
                for s, (sts, para) in enumerate(v)} for m, v in (("sum", sum_), ("mgda", mgda))}
    line = methods_conclusion(runs).splitlines()[-1]
    assert line.startswith("- **mgda** is not distinguishable from sum")
    # Quora's +.02 on every seed has no spread: a zero-width interval is no evidence, so it is not listed as resolved
    assert line.endswith("Resolved per task: sts_pearson -0.027 [-0.041, -0.012].")
    assert "Resolved per task" not in methods_conclusion(runs, metric="sts_pearson")


def test_conclusion_with_one_seed_is_not_resolved():
    text = methods_conclusion(_runs({"sum": [0.5], "upgrad": [0.9]}))
    assert text.startswith("**Not resolved (n=1)") and "not resolved (n=1)" in text
    assert "No method beats" in methods_conclusion(_runs({"sum": [0.5, 0.6], "upgrad": [0.5, 0.6]}))
    assert methods_conclusion(_runs({"sum": [0.5, 0.6]})).startswith("- Only `sum` has runs so far")


def test_two_seeds_or_zero_spread_never_beat_the_reference():
    """A 2-seed interval (1 degree of freedom) or one of zero width may exclude zero, yet is no test (issue 29)."""
    two = _runs({"sum": [0.50, 0.60], "upgrad": [0.60, 0.71]})        # +.10, +.11: [+.041, +.169], excludes zero
    assert paired_interval(two["upgrad"] and {s: m["overall"] for s, m in two["upgrad"].items()},
                           {s: m["overall"] for s, m in two["sum"].items()})["low"] > 0
    text = methods_conclusion(two)
    assert text.startswith("**No method beats `sum`**") and "is not distinguishable from sum (n < 3)" in text
    flat = methods_conclusion(_runs({"sum": [0.50, 0.60, 0.55], "upgrad": [0.52, 0.62, 0.57]}))   # +.02 each seed
    assert flat.startswith("**No method beats `sum`**") and "(zero spread" in flat


def test_methods_table_reads_metrics_and_telemetry(tmp_path):
    for method, step_s, cos, after in (("sum", 0.2, 0.1, (1, 3, 4)), ("cagrad", 0.3, -0.2, (1, 1, 2))):
        for seed, overall in enumerate((0.5, 0.7)):
            d = tmp_path / method / f"seed{seed}"
            d.mkdir(parents=True)
            shared = method == "sum" and seed == 1        # beside other work (CPU use 50%): twice as slow a step
            (d / "metrics.json").write_text(json.dumps({"sst_acc": 0.4, "para_acc": 0.6, "sts_pearson": 0.5,
                                                        "overall": overall, "device": "cpu: test", "wall_s": 60.0,
                                                        "cpu_s": 60.0 if shared else 118.0, "threads": 2}))
            steps = [{"type": "step", "stage": "multitask", "step": i, "step_s": step_s * (2 if shared else 1),
                      "conflicts": i % 2, **{f"norm_after_{t}": n * (1 + i) for t, n in zip(("sst", "para", "sts"), after)},
                      "cos_sst_para": cos, "cos_sst_sts": cos, "cos_para_sts": 1.0} for i in range(4)]
            (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in steps) + "\n")
    runs = method_runs(tmp_path, ["sum", "cagrad", "upgrad"], [0, 1])
    assert set(runs) == {"sum", "cagrad"} and set(runs["sum"]) == {0, 1}
    table = methods_table(runs, tmp_path)
    assert table.loc["cagrad", "overall"] == "0.600 ± 0.141" and table.loc["cagrad", "seeds"] == 2
    # step cost from the runs that had the machine to themselves: sum's shared seed 1 is left out
    assert table.loc["cagrad", "step cost (× sum)"] == 1.5 and table.loc["sum", "step cost (× sum)"] == 1.0
    assert table.loc["cagrad", "median cos"] == -0.2 and table.loc["cagrad", "conflicts / step"] == 0.5
    # each task's share of the update: its norm_after over the three's sum, whatever the update's scale
    share = "update share SST / Quora / STS"
    assert table.loc["sum", share] == "0.12 / 0.38 / 0.50" and table.loc["cagrad", share] == "0.25 / 0.25 / 0.50"


def test_results_md_shows_06_from_the_runs_that_finished(tmp_path):
    from conftest import fake_run
    missing = "Not run yet: `python -m mtlib report --execute --only 06_gradient_methods`"
    assert missing not in results_markdown(tmp_path)          # no rung either: the page says so once, not per section
    fake_run(tmp_path / "01_baseline" / "seed0" / "baseline")
    assert missing in results_markdown(tmp_path)
    for method, overall in (("sum", (0.5, 0.6, 0.55)), ("upgrad", (0.6, 0.7, 0.66))):
        for seed, o in enumerate(overall):
            d = tmp_path / "06_gradient_methods" / method / f"seed{seed}"
            fake_run(d, sst_acc=o, para_acc=o, sts_pearson=o)
            steps = [{"type": "step", "stage": "multitask", "step": i, "step_s": 0.5, "conflicts": 1,
                      "cos_sst_para": 0.1, "cos_sst_sts": -0.1, "cos_para_sts": 0.2} for i in range(3)]
            (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in steps) + "\n")
    md = results_markdown(tmp_path)
    section = md.split("## Every gradient-combination method (06_gradient_methods)")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| method | seeds | sst_acc") and rows[2].startswith("| upgrad | 3 | 0.653 ± 0.050 |")
    assert "**Beats `sum` (95% interval above zero): upgrad.**" in section
    assert "| 06: upgrad | 2 | `06_gradient_methods/upgrad/seed2` |" in md          # the runs table
    # no rung runs here (another machine's folder): sum was trained for 06, and is listed as 06's
    assert "| 06: sum | 0 |" in md and "`pcgrad` too, trained for 06 in this folder" in md
    for seed in range(3):                           # 03's runs (paper.SAME_RUNS), copied: listed once, as 03's rows
        fake_run(tmp_path / "03_cosine_similarity" / f"seed{seed}" / "cs")
    md = results_markdown(tmp_path)
    assert "| 06: sum |" not in md and "`sum` and `pcgrad` are 03's and 04's runs" in md


def test_step_cost_is_timed_against_each_runs_own_forward_and_backward(tmp_path):
    """A run on a machine twice as slow costs what it costs elsewhere; extra surgery time shows."""
    for method, (step, fwd) in {"sum": (0.6, 0.25), "cagrad": (1.2, 0.5), "mgda": (0.7, 0.25)}.items():
        d = tmp_path / method / "seed0"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"sst_acc": 0.4, "para_acc": 0.6, "sts_pearson": 0.5, "overall": 0.5}))
        steps = [{"type": "step", "stage": "multitask", "step": i, "step_s": step, "t_forward": fwd, "t_backward": fwd,
                  "conflicts": 0, "cos_sst_para": 0.0, "cos_sst_sts": 0.0, "cos_para_sts": 0.0} for i in range(3)]
        (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in steps) + "\n")
    table = methods_table(method_runs(tmp_path, ["sum", "cagrad", "mgda"], [0]), tmp_path)
    assert table.loc["cagrad", "step cost (× sum)"] == 1.0                 # twice the step time, twice the forward
    assert table.loc["mgda", "step cost (× sum)"] == pytest.approx(1.167, abs=1e-3)   # 0.7/0.5 over 0.6/0.5
