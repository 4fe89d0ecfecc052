"""The report's numbers and the experiment plan: Chada & Jolly's dev tables (PAPER), the notebooks `make report`
executes (PLAN, AFTER), the rows of results.md (ROWS) and the claims it tests (CLAIMS), 07's best configuration
(BEST) and ablation knobs (WITHOUT). Constants and small pure functions; nothing here reads a run."""
from __future__ import annotations

TASK_PAIRS = (("sst", "para"), ("sst", "sts"), ("para", "sts"))
METRICS = ("sst_acc", "para_acc", "sts_pearson", "overall")
# The report's dev numbers (Chada & Jolly, tables in section 5.4): SST acc, Quora acc, STS Pearson, overall.
PAPER = {
    "Baseline": (0.494, 0.386, 0.325, 0.402),
    "Gradient Surgery (GS)": (0.444, 0.380, -0.003, 0.274),
    "Cosine Similarity (CS)": (0.497, 0.753, 0.600, 0.617),
    "CS + GS": (0.494, 0.785, 0.635, 0.638),
    "CS + GS, no dropout": (0.510, 0.781, 0.739, 0.677),
    "Novel: CS + GS": (0.517, 0.814, 0.762, 0.698),
    "Novel: CS + GS, no dropout": (0.528, 0.821, 0.776, 0.708),
}
# An epoch is one pass over the largest train set, capped at `steps_per_epoch`: at the cpu profile's batch size of 16,
# Quora's 16,193 training pairs make a multitask epoch of at most 1,013 steps, and a longer cap trains no more
# (tests/test_report.py recounts it from the data). A longer run is split into epochs that fit.
MULTITASK_PASS = 1013


def fitted_epochs(steps: int, pass_steps: int = MULTITASK_PASS) -> dict:
    """`steps` multitask steps as the fewest epochs of equal length that each fit in one pass: at least `steps` in
    all, at most epochs - 1 more."""
    epochs = -(-steps // pass_steps)
    return {"epochs": epochs, "steps_per_epoch": -(-steps // epochs)}


# (notebook, papermill parameters, run label) executed by `make report` for every seed, in order. "{seed}" in a
# parameter is the seed's folder, "{equal_compute}" this device's EQUAL_COMPUTE steps (as fitted_epochs). The last
# three are claim (e'): CS+GS without dropout for as many encoder-training steps as the novel pipeline takes on the cpu
# profile (534 + 700 + 378 single-task + 700 multitask = 2,312; trained before `select` defaulted to the last epoch, so
# it keeps `best` for every seed), for as many encoder batches, and for as much wall time.
PLAN = (
    ("00_data", {}, "00_data"),
    ("01_baseline", {}, "01_baseline"),
    ("02_gradient_surgery", {"baseline_dir": "01_baseline/{seed}/baseline"}, "02_gradient_surgery"),
    ("03_cosine_similarity", {}, "03_cosine_similarity"),
    ("04_cs_gs", {}, "04_cs_gs"),
    ("04_cs_gs", {"dropout": 0}, "04_cs_gs-no-dropout"),
    ("05_novel", {}, "05_novel"),
    ("05_novel", {"dropout": 0}, "05_novel-no-dropout"),
    ("04_cs_gs", {"dropout": 0, "epochs": 3, "steps_per_epoch": 771, "select": "best"}, "04_cs_gs-no-dropout-novel-steps"),
    ("04_cs_gs", {"dropout": 0, **fitted_epochs(1237)}, "04_cs_gs-no-dropout-equal-data"),
    ("04_cs_gs", {"dropout": 0, "steps_per_epoch": "{equal_compute}"}, "04_cs_gs-no-dropout-equal-compute"),
)
# (e') at equal data: the novel pipeline's stages that update the encoder take 534 + 700 + 378 single-task batches and
# 700 multitask steps of one batch per task, 3,712 batches (counted from its step log); 1,237 CS + GS steps take as many
# (2 epochs of 619: 1,238 steps, 3,714 batches). The runs committed before this split trained 1,013 steps (one capped
# epoch) and were withdrawn.
# (e') at equal compute: the CS + GS steps that take the novel pipeline's median quiet wall time on a device, fixed
# once: "steps" as cost.equal_compute_steps gives it from the other entries, its arguments (tests/test_cost.py
# recomputes it): the novel runs' seeds, and where they differ the CS + GS row timed and its own seeds, named so that
# runs of later seeds leave the fixed value as it is. A device without one skips the row in `make report`, saying how.
EQUAL_COMPUTE = {
    "intel-xeon-bf16-2t": {"steps": 1434, "seeds": (0, 1, 2, 3)},
    "nvidia-h200": {"steps": 1281, "seeds": (0, 1, 2)},
    "amd-epyc-fp32-2t": {"steps": 1436, "seeds": (0, 1, 2, 3, 4),            # the novel runs: seed 4 is the quiet one
                         "cs_gs_row": "04_cs_gs-no-dropout-equal-data", "cs_gs_seeds": (0, 1, 2)},
}


def equal_compute_epochs(key: str) -> dict | None:
    """The equal-compute row's epochs and steps_per_epoch on device `key` (as fitted_epochs), or None if none is fixed."""
    return fitted_epochs(EQUAL_COMPUTE[key]["steps"]) if key in EQUAL_COMPUTE else None
# The (e') rows' step counts are the cpu profile's (its novel pipeline's steps, batches, wall time): on another
# profile `make report` skips them, saying why.
CPU_ONLY = ("04_cs_gs-no-dropout-novel-steps", "04_cs_gs-no-dropout-equal-data", "04_cs_gs-no-dropout-equal-compute")
SEEDS = (0, 1, 2)
ONCE = ("00_data",)          # labels that train nothing: executed for the first seed only
# the seed whose figures go to <reports_dir>/figures (README, results.md); every other seed's lie beside its runs, so
# that seeds added in a later sitting (`make report SEEDS="1"`) never overwrite them
FIGURE_SEED = SEEDS[0]
# Notebooks that loop over seeds themselves (-p seeds [...]): executed once, after PLAN, with all the seeds asked for,
# into <reports_dir>/notebooks/<label>.ipynb and <reports_dir>/runs/<label>/<row>/seed<k>/.
AFTER = (("06_gradient_methods", {"figures_dir": "figures"}, "06_gradient_methods"), ("07_beyond", {}, "07_beyond"))
# Runs of an AFTER notebook that a rung of PLAN trains with the same config: (label, method) -> (label, run folder in
# seed<k>). 06's `sum` is 03's CS rung and its `pcgrad` 04's CS + GS: one run, in the rung's folder, which both
# notebooks find (runs.method_folder); none is copied.
SAME_RUNS = {("06_gradient_methods", "sum"): ("03_cosine_similarity", "cs"),
             ("06_gradient_methods", "pcgrad"): ("04_cs_gs", "cs_gs")}
RUNG_TABLES = ((1, "Multitask fine-tuning (rungs 1-4)"), (2, "Novel approach (rung 5)"),
               (3, "Pre-training control: the encoder as shipped, frozen, its heads trained (not in the report)"))
# results.md rows: (table, row name, run label, run folder inside <label>/seed<k>/)
ROWS = (
    (1, "Baseline", "01_baseline", "baseline"),
    (1, "Gradient Surgery (GS)", "02_gradient_surgery", "pcgrad_sum"),
    (1, "GS, mean reduction (not in the report)", "02_gradient_surgery", "pcgrad_mean"),
    (1, "Cosine Similarity (CS)", "03_cosine_similarity", "cs"),
    (1, "CS + GS", "04_cs_gs", "cs_gs"),
    (1, "CS + GS, no dropout", "04_cs_gs-no-dropout", "cs_gs"),
    (1, "CS + GS, no dropout, novel's step count (not in the report)", "04_cs_gs-no-dropout-novel-steps", "cs_gs"),
    (1, "CS + GS, no dropout, novel's encoder batches (not in the report)", "04_cs_gs-no-dropout-equal-data", "cs_gs"),
    (1, "CS + GS, no dropout, novel's wall time (not in the report)", "04_cs_gs-no-dropout-equal-compute", "cs_gs"),
    (2, "Novel: CS + GS", "05_novel", "novel"),
    (2, "Novel: CS + GS, no dropout", "05_novel-no-dropout", "novel"),
    # `make control`: each head set a headline row uses, on the frozen encoder (pipeline=control), <para>-<sts> heads
    (3, "Control: frozen encoder, MLP heads", "control", "concat-mlp"),
    (3, "Control: frozen encoder, cosine STS head", "control", "concat-cosine"),
    (3, "Control: frozen encoder, 07's best heads", "control", "sbert-cosine"),
)
# The report's claims, each a paired difference (row a - row b, same seeds) of one metric, and the sign claimed:
# +1 (a is higher), -1 (a is lower), 0 (they differ).
CLAIMS = (
    ("a", "GS on the baseline hurts STS", "Gradient Surgery (GS)", "Baseline", "sts_pearson", -1),
    ("b", "the cosine head helps STS", "Cosine Similarity (CS)", "Baseline", "sts_pearson", +1),
    ("b", "the cosine head helps the mean", "Cosine Similarity (CS)", "Baseline", "overall", +1),
    ("c", "CS+GS beats CS", "CS + GS", "Cosine Similarity (CS)", "overall", +1),
    ("d", "no dropout beats dropout 0.1 (CS+GS)", "CS + GS, no dropout", "CS + GS", "overall", +1),
    ("d", "no dropout beats dropout 0.1 (novel)", "Novel: CS + GS, no dropout", "Novel: CS + GS", "overall", +1),
    ("e", "novel beats CS+GS (dropout 0.1)", "Novel: CS + GS", "CS + GS", "overall", +1),
    ("e", "novel beats CS+GS (no dropout)", "Novel: CS + GS, no dropout", "CS + GS, no dropout", "overall", +1),
    ("e'", "novel beats CS+GS at an equal step count (no dropout)", "Novel: CS + GS, no dropout",
     "CS + GS, no dropout, novel's step count (not in the report)", "overall", +1),
    ("e'", "novel beats CS+GS on equal data (no dropout)", "Novel: CS + GS, no dropout",
     "CS + GS, no dropout, novel's encoder batches (not in the report)", "overall", +1),
    ("e'", "novel beats CS+GS at equal compute (no dropout)", "Novel: CS + GS, no dropout",
     "CS + GS, no dropout, novel's wall time (not in the report)", "overall", +1),
    ("f", "PCGrad's mean reduction changes STS (vs sum)", "GS, mean reduction (not in the report)",
     "Gradient Surgery (GS)", "sts_pearson", 0),
    ("f", "PCGrad's mean reduction changes the mean (vs sum)", "GS, mean reduction (not in the report)",
     "Gradient Surgery (GS)", "overall", 0),
)
# Claims about a method the report never ran (02's mean reduction): on docs/findings.md and the results pages, not on
# the README's table of the report's claims ((e') stays there: it asks whether (e) is a fair comparison).
OFF_FRONT = ("f",)
# results.md's single-task section: each single-task stage's metric, and what 07's best row must share with a run
# to stand beside its single-task models
SINGLE = {"single_sst": "sst_acc", "single_para": "para_acc", "single_sts": "sts_pearson"}
HEADS = ("encoder", "profile", "lr", "dropout", "para_head", "sts_head", "sts_loss", "sts_features", "pooling")
# What 06 runs by default with the smoke profile (tests): the reference and a QP weighting (GradVac's state has its
# own resume test).
SMOKE_METHODS = ("sum", "upgrad")
# The best configuration of notebooks/07_beyond.ipynb, chosen on dev: the one place it is written. The Makefile's BEST
# (`make run`, `make parity`) and 07's parameters cell must equal it (tests/test_cli.py); `python -m mtlib explore`
# trains each row of reports/explore-07.txt as BEST with that row's changes.
BEST = {"pipeline": "multitask", "combine": "sum", "sts_head": "cosine", "para_head": "sbert", "sts_loss": "mse",
        "schedule": "constant", "warmup": 0.1, "dropout": 0}
# What "removing" an improvement sets, for each knob the 07 notebook can ablate: the report's choice.
WITHOUT = {
    "para_head": dict(para_head="concat"),
    "sts_features": dict(sts_features="concat"),
    "sts_loss": dict(sts_loss="mse"),
    "schedule": dict(schedule="constant"),
    "merge": dict(merge="uniform"),
    "sts_head": dict(sts_head="mlp", sts_loss="mse", sts_features="concat"),   # CoSENT needs the cosine head
    "combine": dict(combine="sum"),
    "dropout": dict(dropout=0.1),
    "ema": dict(ema=0.0),
    "loss_weights": dict(loss_weights=""),
}


def ablation_configs(best: dict, ablate: list[str]) -> dict[str, dict]:
    """{"best": best, "para_head=concat": best with that knob set back to the report's choice (WITHOUT), ...},
    one row per knob in `ablate`, named by what it changes. A knob whose best value is already the report's
    (or that `best` leaves unset) gives no row: it would repeat the best one."""
    unknown = sorted(set(ablate) - set(WITHOUT))
    if unknown:
        raise ValueError(f"cannot ablate {', '.join(unknown)}; choose from {', '.join(WITHOUT)}")
    rows = {"best": dict(best)}
    for knob in ablate:
        if best.get(knob, WITHOUT[knob][knob]) == WITHOUT[knob][knob]:
            continue
        changed = {k: v for k, v in WITHOUT[knob].items() if best.get(k, v) != v or k == knob}
        rows[", ".join(f"{k}={v}" for k, v in changed.items())] = {**best, **changed}
    return rows
