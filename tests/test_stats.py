"""The verdict logic, on hand-worked answers: direction, size against the report's effect, degenerate intervals, Holm."""
from __future__ import annotations

import math

import pytest

from mtlib.report.stats import claims_table, degenerate, holm, interval, paired_p, size_verdict, verdict

NAN = float("nan")


@pytest.mark.parametrize("lo, hi, sign, expected", [
    (0.01, 0.03, +1, "holds"), (0.01, 0.03, -1, "reversed"), (-0.03, -0.01, -1, "holds"), (-0.03, -0.01, +1, "reversed"),
    (-0.01, 0.02, +1, "not resolved"), (-0.03, -0.01, 0, "holds"), (-0.01, 0.01, 0, "not resolved")])
def test_direction(lo, hi, sign, expected):
    assert verdict(lo, hi, sign, [0.01, 0.02, 0.03]) == expected


@pytest.mark.parametrize("lo, hi, effect, expected", [
    (-0.002, 0.003, 0.021, "excluded (ours smaller)"),       # (c) on the AMD box: the report's +.021 left out, below
    (0.464, 0.529, 0.275, "excluded (ours larger)"),         # (b) STS: ours beyond the report's effect
    (-0.015, 0.009, -0.328, "excluded (ours smaller)"),      # (a): a negative effect, ours nearer zero
    (0.020, 0.040, 0.031, "consistent"),                     # contains it, half-width .010 < .031
    (-0.012, 0.010, 0.006, "too wide to tell"),              # (e') against (e)'s edge: half-width .011 > .006
    (-0.01, 0.02, None, "no effect in the report"), (NAN, NAN, 0.02, "too wide to tell (n < 2)")])
def test_size_against_the_reports_effect(lo, hi, effect, expected):
    assert size_verdict(lo, hi, effect) == expected


def test_a_degenerate_interval_never_excludes_the_reports_effect():
    """Two seeds (1 degree of freedom) or zero spread test nothing, so neither may say "excluded" (the words that let
    a page say the report's effect does not reproduce). (e) with dropout on the AMD EPYC at 2 seeds read
    +.005 [-.034, +.044] against the report's +.060: "excluded" before this rule."""
    assert size_verdict(-0.034, 0.044, 0.060) == "excluded (ours smaller)"           # without the differences
    assert size_verdict(-0.034, 0.044, 0.060, [0.0205, -0.0105]) == "too wide to tell (n < 3)"
    assert size_verdict(0.005, 0.005, 0.060, [0.005] * 3).startswith("too wide to tell (zero spread")
    assert size_verdict(0.020, 0.040, 0.031, [0.02, 0.03, 0.04]) == "consistent"     # a real interval: unchanged
    rows = {"CS + GS": {0: {"overall": .679}, 1: {"overall": .678}},
            "Novel: CS + GS": {0: {"overall": .689}, 1: {"overall": .684}}}
    e = claims_table(rows).set_index("claim").loc["(e) novel beats CS+GS (dropout 0.1)"]
    assert (e["n"], e["verdict"], e["size"]) == (2, "not resolved (n < 3)", "too wide to tell (n < 3)")


def test_degenerate_intervals_are_never_resolved_and_say_why():
    assert degenerate([0.1, 0.2, 0.3]) is None
    assert degenerate([0.01, 0.02]) == "n < 3"
    assert "zero spread" in degenerate([-0.009, -0.009, -0.009])
    # two seeds with identical differences: a t-interval of width zero that would read as resolved
    mean, lo, hi = interval([-0.009, -0.009])
    assert lo == hi == mean and verdict(lo, hi, 0) == "holds"                       # without the differences: fooled
    assert verdict(lo, hi, 0, [-0.009, -0.009]) == "not resolved (n < 3)"
    mean, lo, hi = interval([-0.009] * 3)
    assert verdict(lo, hi, -1, [-0.009] * 3).startswith("not resolved (zero spread")
    assert math.isnan(paired_p({0: 1.0, 1: 1.0}, {0: 0.5, 1: 0.5}))


def test_holm_on_a_hand_worked_example():
    # m = 4, alpha .05: sorted p .01 <= .05/4 = .0125 rejected; .02 <= .05/3 = .0167? no: stop, none after
    assert holm([0.04, 0.01, 0.02, 0.30]) == [False, True, False, False]
    # .001 <= .0125, .01 <= .0167, .02 <= .025, .04 <= .05: all four
    assert holm([0.02, 0.001, 0.04, 0.01]) == [True, True, True, True]
    assert holm([0.06]) == [False] and holm([]) == []


def test_claims_table_has_both_verdicts_and_ep_is_sized_against_our_e():
    def runs(values):
        return {k: {"overall": v, "sts_pearson": v, "sst_acc": v, "para_acc": v} for k, v in enumerate(values)}
    rows = {"CS + GS, no dropout": runs([0.680, 0.684, 0.682]),
            "Novel: CS + GS, no dropout": runs([0.686, 0.690, 0.687]),
            "CS + GS, no dropout, novel's step count (not in the report)": runs([0.690, 0.684, 0.689])}
    table = claims_table(rows).set_index("claim")
    e = table.loc["(e) novel beats CS+GS (no dropout)"]
    assert e["verdict"] == "holds" and e["report"] == pytest.approx(0.708 - 0.677)
    assert e["size"] == "excluded (ours smaller)" and e["half"] == pytest.approx((e["hi"] - e["lo"]) / 2)
    ep = table.loc["(e') novel beats CS+GS at an equal step count (no dropout)"]
    assert ep["against"] == "our (e), no dropout" and ep["report"] == pytest.approx(e["mean"])
    assert ep["verdict"] == "not resolved" and ep["size"] == "too wide to tell"
    assert table.loc["(c) CS+GS beats CS"]["verdict"] == "not run"


def test_the_ladder_reads_each_runs_last_epoch_and_labels_the_dev_selected_one(tmp_path):
    """A 3-epoch run that kept its best epoch: the headline shows its last, the dev-selected one beside it."""
    import json
    from conftest import fake_run
    from mtlib.report import front
    from mtlib.report.runs import last_epoch, seed_runs
    for seed, (best, last) in enumerate(((0.70, 0.68), (0.71, 0.69), (0.72, 0.70))):
        folder = tmp_path / "dev-1" / "04_cs_gs-no-dropout-novel-steps" / f"seed{seed}" / "cs_gs"
        fake_run(folder)
        m = json.loads((folder / "metrics.json").read_text())
        m["overall"], m["final_stage"] = best, "multitask"
        m["stages"] = [{"name": "multitask", "history": [{"epoch": 1, "overall": best}, {"epoch": 2, "overall": last}]}]
        (folder / "metrics.json").write_text(json.dumps(m))
        assert last_epoch(m)["overall"] == last
    row = next(line for line in front.ladder(tmp_path) if line.startswith("| CS + GS, no dropout, novel's step count"))
    assert "0.690±0.010 (selected on dev: 0.710±0.010) n=3" in row
    assert front.off_front_rows() == {"GS, mean reduction (not in the report)"}   # (f)'s alone: off the README
    mean = tmp_path / "dev-1" / "02_gradient_surgery" / "seed0" / "pcgrad_mean"
    fake_run(mean)
    assert seed_runs(tmp_path / "dev-1", "02_gradient_surgery", "pcgrad_mean")
    assert not any(line.startswith("| GS, mean reduction") for line in front.ladder(tmp_path))
    fake_run(tmp_path / "dev-1+mpnet" / "07_beyond" / "best" / "seed0")       # 07's best and the control alone:
    fake_run(tmp_path / "dev-1+mpnet" / "control" / "seed0" / "sbert-cosine")  # no ladder column
    assert "dev-1+mpnet" not in front.ladder(tmp_path)[0] and "| dev-1 |" in front.ladder(tmp_path)[0]
    # the controls of the rungs' heads are ladder rows; 07's heads' control sits beside 07's best in the best table
    for heads in ("concat-cosine", "sbert-cosine"):
        fake_run(tmp_path / "dev-1" / "control" / "seed0" / heads)
    names = [line.split(" | ")[0] for line in front.ladder(tmp_path)]
    assert "| Control: frozen encoder, cosine STS head" in names and "| Control: frozen encoder, 07's best heads" not in names


def test_a_finding_says_when_its_interval_holds_zero_and_the_effect_alike():
    """(e') on equal data, hand-worked: paired differences .004, -.001, .009, .002, .006 give +.004 [-.001, +.009]
    (half-width .0047), which holds zero and (e)'s +.0066 alike: "not resolved" and "consistent" at once, and the
    sentence says these seeds cannot tell the two apart. A device where the interval is too wide says nothing more."""
    from mtlib.report.front import claim_sentences

    def runs(values):
        return {k: {"overall": v} for k, v in enumerate(values)}
    cs_gs, novel = [.683, .684, .682, .685, .683], [.690, .690, .690, .691, .689]        # (e): +.0066, holds
    equal_data = [n - d for n, d in zip(novel, (.004, -.001, .009, .002, .006))]
    rows = {"CS + GS, no dropout": runs(cs_gs), "Novel: CS + GS, no dropout": runs(novel),
            "CS + GS, no dropout, novel's encoder batches (not in the report)": runs(equal_data)}
    wide = {**rows, "CS + GS, no dropout, novel's encoder batches (not in the report)":
            runs([n - d for n, d in zip(novel, (.02, -.02, .01, .0, -.01))])}
    a, b = claims_table(rows), claims_table(wide)
    ep = a.set_index("claim").loc["(e') novel beats CS+GS on equal data (no dropout)"]
    assert (ep["verdict"], ep["size"]) == ("not resolved", "consistent") and ep["lo"] < 0 < ep["report"] < ep["hi"]
    said = {line.split(":**")[0]: line for line in claim_sentences({"dev-a": a, "dev-b": b})}
    assert said["- **(e') novel beats CS+GS on equal data (no dropout)"].endswith(
        "consistent on dev-a; too wide to tell on dev-b. On dev-a the interval holds zero as well, so these seeds "
        "cannot tell an effect of that size from none.")
    assert "holds zero" not in said["- **(e) novel beats CS+GS (no dropout)"]


def test_the_front_pages_summary_counts_the_reports_claims_by_their_verdicts_on_every_device():
    """`front.summary_lines` on two hand-made devices: claim 0 holds on both, claim 1 on one, claim 2 holds where it
    ran (one device); the rest of the report's eight hold nowhere, and (e')/(f), ours, never count. Sizes: 0 excluded
    smaller on both, 1 larger on both, 3 smaller on one and larger on the other (excluded, neither side)."""
    import pandas as pd

    from mtlib.report import front
    from mtlib.report.paper import CLAIMS

    def device(cells):
        rows = [{"n": 3, "verdict": "not resolved", "size": "too wide to tell"} for _ in CLAIMS]
        for i, cell in cells.items():
            rows[i] = {**rows[i], **cell}
        for i in range(8, len(CLAIMS)):                      # (e') and (f): hold, yet not the report's claims
            rows[i] = {"n": 3, "verdict": "holds", "size": "no effect in the report"}
        return pd.DataFrame(rows)
    a = device({0: {"verdict": "holds", "size": "excluded (ours smaller)"},
                1: {"verdict": "holds", "size": "excluded (ours larger)"},
                2: {"n": 0, "verdict": "not run", "size": "not run"},
                3: {"size": "excluded (ours smaller)"}})
    b = device({0: {"verdict": "holds", "size": "excluded (ours smaller)"},
                1: {"size": "excluded (ours larger)"},
                2: {"verdict": "holds", "size": "consistent"},
                3: {"size": "excluded (ours larger)"}})
    assert [CLAIMS[i][2] in front.PAPER and CLAIMS[i][3] in front.PAPER for i in range(len(CLAIMS))] == \
        [True] * 8 + [False] * (len(CLAIMS) - 8)
    means = {"a": {"sst_acc": .46, "para_acc": .84, "sts_pearson": .87, "overall": .72},     # the report: .528 .821
             "b": {"sst_acc": .53, "para_acc": .80, "sts_pearson": .87, "overall": .70}}     # .776 .708
    first, second = front.summary_lines({"a": a, "b": b}, means)
    assert first == ("- Of the report's 8 claims (table below), 2 hold on every device that ran them (3+ seeds), 1 on "
                     "some, 5 on none; on every device our interval excludes the report's effect size for 3 (smaller: 1, "
                     "larger: 1).")
    c = device({i: {"n": 0, "verdict": "not run", "size": "not run"} for i in range(8)}
               | {0: {"n": 1, "verdict": "not resolved", "size": "consistent"}})     # a device with one seed of claim 0
    assert front.summary_lines({"a": a, "b": b, "c": c}, means)[0] == first         # counts for nothing yet
    assert second.endswith("on every device: above on STS r.")       # nothing below: not said; no Quora: no caveat
    means["b"]["sst_acc"] = .50
    assert "on every device: above on STS r, below on SST" in front.summary_lines({"a": a}, means)[1]
    assert len(front.summary_lines({"a": a}, {})) == 1                # no 07 run: no second line
    means["a+mpnet"] = {"sst_acc": .54, "para_acc": .87, "sts_pearson": .89, "overall": .77}  # another encoder
    lines = front.summary_lines({"a": a}, means)
    assert "on every device: above on STS r, below on SST" in lines[1] and "with" not in lines[1]
    assert "with mpnet against the report's best row, mean over seeds, on every device: above on SST, Quora, STS r " \
        "and mean (Quora caveat above)." in lines[2]
    means["a"]["para_acc"] = means["b"]["para_acc"] = .85            # Quora above on both lines: the caveat once
    lines = front.summary_lines({"a": a}, means)
    assert lines[1].endswith("above on Quora and STS r, below on SST (Quora caveat above).")
    assert lines[2].endswith("above on SST, Quora, STS r and mean.")
    # its own grid's choice replaces 07's best in that encoder's line, and says it was chosen on dev
    lines = front.summary_lines({"a": a}, means, {"a+mpnet": "ema=0.99, chosen on dev among 4"})
    assert lines[2].startswith("- 07's grid with mpnet (ema=0.99, chosen on dev among 4) against the report's best")
    assert "07's grid" not in lines[1]                                  # the default encoder's line is untouched
    means["b+mpnet"] = {**means["a+mpnet"], "sst_acc": .50}          # a second device without a choice of its own
    lines = front.summary_lines({"a": a}, means, {"a+mpnet": "ema=0.99, chosen on dev among 4"})
    assert "(07's best where it has none; ema=0.99, chosen on dev among 4)" in lines[2] and "below" not in lines[2]
