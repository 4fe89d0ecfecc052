"""Training on a tiny random BERT and synthetic data: the loop, the pipelines and their outputs."""
import json
from pathlib import Path

import pytest
import torch

from mtlib.config import Config, ConfigError
from mtlib.data import TASKS
from mtlib.models import build_model
from mtlib.pipelines import run
from mtlib.report.runs import open_log
from mtlib.surgery import WEIGHTINGS, combine, make_weighting
from mtlib.train import TaskGrads, upcoming_rows


def _full_gradients(model, shared, batches):
    """Each task's gradient over all shared parameters (T x P), by plain torch.autograd.grad."""
    rows = []
    for task, enc, y in batches:
        grads = torch.autograd.grad(model.loss(task, model(task, dict(enc)), y), shared, allow_unused=True)
        dense = [torch.zeros_like(p) if g is None else g.to_dense() if g.is_sparse else g for g, p in zip(grads, shared)]
        rows.append(torch.cat([g.flatten() for g in dense]))
    return torch.stack(rows)


@pytest.mark.parametrize("method", ["sum", "pcgrad", "upgrad", "gradvac"])
def test_task_grads_match_autograd_and_combine_like_the_full_matrix(tiny_encoder, method):
    """Dense rows + touched embedding rows are each task's exact gradient; the combined .grad of every shared
    parameter (word embeddings included) equals surgery.combine on the full T x P matrix, step after step."""
    model, tok = build_model(tiny_encoder, "mean", "mlp", 0.0)
    shared = model.shared_parameters()
    emb = model.encoder.get_input_embeddings()
    grads = TaskGrads(shared, 2, emb)
    assert emb.sparse and len(grads.params) == len(shared) - 1
    steps = [[("sst", tok(["a good film", "bad"], padding=True, return_tensors="pt"), torch.tensor([3, 0])),
              ("sts", tok(["x", "y z", "x", "w"], padding=True, return_tensors="pt"), torch.tensor([1.0, 4.0]))],
             [("sst", tok(["plain", "fine okay"], padding=True, return_tensors="pt"), torch.tensor([1, 2])),
              ("sts", tok(["dull", "weak", "flat", "dull"], padding=True, return_tensors="pt"), torch.tensor([0.0, 5.0]))]]
    reference = make_weighting(method) if method in WEIGHTINGS else None   # GradVac: its state carries over steps
    for batches in steps:          # the second step touches other embedding rows: last step's must not linger
        full = _full_gradients(model, shared, batches)
        expected, expected_stats = combine(full, method, generator=torch.Generator().manual_seed(0), weighting=reference)
        grads.start_step()
        for t, (task, enc, y) in enumerate(batches):
            grads.before_backward()
            model.loss(task, model(task, dict(enc)), y).backward()
            grads.after_backward(t)
        dense = torch.stack([torch.cat([r for r, p in zip(row.split([p.numel() for p in shared]), shared)
                                        if p is not emb.weight]) for row in full])
        assert torch.allclose(grads.buffer, dense, atol=1e-6)
        stats = grads.combine(method, "sum", torch.Generator().manual_seed(0))
        got = torch.cat([p.grad.flatten() for p in shared])
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(stats.cosine, expected_stats.cosine, atol=1e-5)
        assert stats.norm_combined == pytest.approx(expected.norm().item(), rel=1e-4)
    grads.close()
    assert not emb.sparse


@pytest.mark.slow
def test_multitask_pcgrad_run_writes_metrics_predictions_and_telemetry(tiny_config, tiny_data):
    m = run(tiny_config, combine="pcgrad", sts_head="cosine")
    out = tiny_config["out_dir"]
    saved = json.load(open(f"{out}/metrics.json"))
    for key in ("sst_acc", "para_acc", "sts_pearson", "overall"):
        assert saved[key] == m[key] and isinstance(saved[key], float)
    assert saved["overall"] == pytest.approx((saved["sst_acc"] + saved["para_acc"] + saved["sts_pearson"]) / 3)
    assert saved["best_epoch"] in (1, 2) and saved["final_stage"] == "multitask"
    assert saved["config"]["combine"] == "pcgrad" and saved["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    steps = [json.loads(l) for l in open_log(out) if '"step"' in l]
    assert len(steps) == 2 * 4
    assert {"cos_sst_para", "cos_sst_sts", "cos_para_sts", "norm_after_sts", "conflicts", "loss_para"} <= set(steps[0])
    for task in ("sst", "para", "sts"):
        for split, n in (("dev", 24), ("test", 24)):
            lines = open(f"{out}/predictions/{task}-{split}-output.csv").read().splitlines()
            assert len(lines) == n + 1 and lines[0].startswith("id \t Predicted_")
            assert lines[1].split(" , ")[0].startswith(task)


@pytest.mark.slow
def test_training_learns_the_synthetic_tasks(tiny_config):
    m = run(tiny_config, epochs=12, steps_per_epoch=0, lr=3e-3, sts_head="cosine", combine="pcgrad")
    assert m["sst_acc"] > 0.3 and m["para_acc"] > 0.7 and m["sts_pearson"] > 0.5   # chance: 0.2, ~0.85 all-no, 0


@pytest.mark.slow
def test_novel_pipeline_stages(tiny_config):
    m = run(tiny_config, pipeline="novel", epochs=1)
    assert [s["name"] for s in m["stages"]] == ["single_sst", "single_para", "single_sts", "multitask", "frozen"]
    assert m["config"]["combine"] == "pcgrad" and m["config"]["sts_head"] == "cosine"
    assert set(m["stages"][0]["best"]) == {"sst_acc", "overall"}
    assert m["final_stage"] == "frozen"


def test_loss_weights_scale_a_task_gradient_in_multitask_steps_only(tiny_config, tmp_path):
    """sts=0.5 halves the STS gradient of the first multitask step (same batch, same weights) and leaves the others;
    the single-task stages of the novel pipeline train as without it, step for step."""
    def records(**kw):
        out = tmp_path / "_".join(f"{k}{v}" for k, v in kw.items())
        run(tiny_config, out_dir=str(out), pipeline="novel", epochs=1, single_task_epochs=1, precision="fp32", **kw)
        steps = [json.loads(l) for l in open_log(out) if '"step"' in l]
        return [{k: v for k, v in r.items() if not (k == "step_s" or k.startswith("t_"))} for r in steps]   # no timings
    plain, weighted = records(), records(loss_weights="sts=0.5")
    first = {name: next(r for r in rs if r["stage"] == "multitask") for name, rs in (("plain", plain), ("weighted", weighted))}
    assert first["weighted"]["norm_before_sts"] == pytest.approx(first["plain"]["norm_before_sts"] / 2, rel=1e-5)
    for task in ("sst", "para"):
        assert first["weighted"][f"norm_before_{task}"] == first["plain"][f"norm_before_{task}"]
    assert first["weighted"]["loss_sts"] == first["plain"]["loss_sts"]           # the logged loss is unweighted
    single = lambda rs: [r for r in rs if r["stage"].startswith("single_")]
    assert len(single(plain)) > 3 and single(weighted) == single(plain)


def test_frozen_stage_leaves_the_encoder_untouched(tiny_config, tiny_data):
    from mtlib.pipelines import encode_splits, load_splits, make_config
    from mtlib.train import JsonlLog, Stage, train_stage
    cfg = make_config(tiny_config)
    model, tok = build_model(cfg.encoder, "mean", "mlp", 0.0)
    data = encode_splits(cfg, load_splits(cfg), tok)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    heads_before = model.heads["sst"][1].weight.clone()
    out = Path(cfg.out_dir)
    train_stage(model, data, cfg, Stage("frozen", TASKS, 1, freeze_encoder=True), torch.device("cpu"),
                JsonlLog(out / "log.jsonl"), out / "ck.safetensors", lambda m, t: {"overall": 0.0})
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert not torch.equal(heads_before, model.heads["sst"][1].weight)


def test_same_seed_same_metrics(tiny_config, tmp_path):
    a = run(tiny_config, out_dir=str(tmp_path / "a"), combine="pcgrad", dropout=0.1)
    b = run(tiny_config, out_dir=str(tmp_path / "b"), combine="pcgrad", dropout=0.1)
    keys = ("sst_acc", "para_acc", "sts_pearson", "overall")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert [s["history"] for s in a["stages"]] == [s["history"] for s in b["stages"]]


@pytest.mark.parametrize("heads", [dict(sts_head="cosine"), dict(sts_head="cross", para_head="cross")])
def test_frozen_features_are_the_encoder_outputs_in_the_heads_layout(tiny_config, heads):
    """The cached frozen-stage inputs equal a fresh eval-mode encoder forward, pairs as u rows then v rows (cross
    heads: one joint row per pair), and the head on them gives what the full model gives; the parameter-free cosine
    STS head is left out."""
    import numpy as np
    from mtlib.data import collate
    from mtlib.pipelines import encode_splits, load_splits, make_config
    from mtlib.train import FrozenFeatures
    cfg = make_config(tiny_config, dropout=0.3, precision="fp32", **heads)   # bf16 autocast here would differ by ~1e-4
    model, tok = build_model(cfg.encoder, "mean", cfg.sts_head, 0.3, para_head=cfg.para_head)
    data = encode_splits(cfg, load_splits(cfg), tok)
    rows = np.array([5, 0, 17])
    feats = FrozenFeatures(model, data, {t: np.array([17, 3, 5, 0, 5]) for t in TASKS}, cfg, torch.device("cpu"))
    assert feats.tasks == (("sst", "para") if cfg.sts_head == "cosine" else TASKS) and model.training   # mode given back
    assert torch.count_nonzero(feats.features["sst"].abs().sum(-1)) == 4       # only the rows asked for
    model.eval()
    for task in feats.tasks:
        batch = {k: v for k, v in collate(data[task]["train"], rows).items() if k != "labels"}
        assert len(batch["input_ids"]) == len(rows) * (1 if task == "sst" or cfg.joint(task) else 2)
        with torch.no_grad():
            expected = model.embed(**batch)
            assert torch.allclose(feats.batch(task, rows), expected, atol=1e-5)
            assert torch.allclose(model.head(task, feats.batch(task, rows)), model(task, batch), atol=1e-5)


def test_step_records_carry_a_profile_that_adds_up(tiny_config):
    m = run(tiny_config, pipeline="novel", epochs=1)
    steps = [json.loads(l) for l in open_log(tiny_config["out_dir"]) if '"step"' in l]
    for r in steps:
        phases = sum(v for k, v in r.items() if k.startswith("t_"))
        assert {"t_data", "t_forward", "t_backward", "t_optimizer"} <= set(r)
        assert phases == pytest.approx(r["step_s"], abs=2e-3)
    assert all("t_surgery" in r for r in steps if r["stage"] == "multitask")
    for stage in m["stages"]:
        assert {"eval", "checkpoint", "log", "features"} <= set(stage["seconds"]) and stage["seconds"]["eval"] > 0
    assert m["stages"][-1]["seconds"]["features"] > 0 and m["stages"][0]["seconds"]["features"] == 0


@pytest.mark.parametrize("single,frozen,names", [(0, 1, ["multitask", "frozen"]),
                                                 (1, 0, ["single_sst", "single_para", "single_sts", "multitask"])])
def test_zero_epochs_skips_a_stage(tiny_config, single, frozen, names):
    m = run(tiny_config, pipeline="novel", epochs=1, single_task_epochs=single, frozen_epochs=frozen)
    assert [s["name"] for s in m["stages"]] == names and m["final_stage"] == names[-1]
    merged = [json.loads(l) for l in open_log(tiny_config["out_dir"]) if '"merged"' in l]
    assert len(merged) == (1 if single else 0)


def test_a_new_run_removes_the_previous_outputs_first(tiny_config, monkeypatch):
    """A rerun that crashes must not leave the old metrics.json (it would reach results.md) or old stage weights."""
    import mtlib.pipelines as P
    out = Path(tiny_config["out_dir"])
    run(tiny_config, pipeline="novel", epochs=1)
    assert (out / "metrics.json").exists() and (out / "checkpoints" / "frozen.safetensors").exists()

    def crash(*args, **kwargs):
        raise RuntimeError("killed")
    monkeypatch.setattr(P, "train_stage", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run(tiny_config, pipeline="novel", epochs=1, lr=2e-3)
    assert not (out / "metrics.json").exists() and not (out / "predictions").exists()
    assert not (out / "checkpoints").exists()
    assert json.loads((out / "config.json").read_text())["lr"] == 2e-3


def test_resume_loads_a_finished_run_only_when_its_config_matches(tiny_config):
    first = run(tiny_config, resume=True)
    again = run(tiny_config, resume=True, progress=True)          # progress changes no result
    assert again["finished_at"] == first["finished_at"]
    changed = run(tiny_config, resume=True, lr=2e-3)
    assert changed["config"]["lr"] == 2e-3 and changed["finished_at"] >= first["finished_at"]
    assert json.loads((Path(tiny_config["out_dir"]) / "metrics.json").read_text())["config"]["lr"] == 2e-3


def test_a_run_measures_its_noise_floor_on_disjoint_pairs_of_batches(tiny_config):
    """noise_batches=4: cross-task pairs in each of 4 rounds, one task on rounds (0, 1) and (2, 3), all written by
    the run itself; a later run without it clears the file rather than leaving a stale one."""
    run(tiny_config, combine="pcgrad", noise_batches=4)
    noise = Path(tiny_config["out_dir"]) / "gradient_noise.json"
    rows = json.loads(noise.read_text())
    same = [r for r in rows if r["task_a"] == r["task_b"]]
    cross = [r for r in rows if r["task_a"] != r["task_b"]]
    assert len(same) == 2 * 3 and len(cross) == 4 * 3
    assert {(r["round"], r["round_b"]) for r in same} == {(0, 1), (2, 3)}           # disjoint: independent pairs
    assert all(r["round"] == r["round_b"] for r in cross)
    assert all(-1.0 <= r["cosine"] <= 1.0 for r in rows) and len({round(r["cosine"], 6) for r in rows}) == len(rows)
    run(tiny_config, combine="pcgrad", resume=False)
    assert not noise.exists()


def test_the_noise_floor_takes_at_most_one_pass_of_the_smallest_train_set(tiny_config):
    """More rounds than the smallest train set has batches would cycle and pair overlapping batches: the rounds stop
    at one pass of it (made even), so that no two batches of a task share a row."""
    from mtlib.pipelines import load_splits
    splits = load_splits(Config(**{k: v for k, v in tiny_config.items() if k != "out_dir"}))
    one_pass = min(-(-len(s["train"]) // tiny_config["batch_size"]) for s in splits.values()) // 2 * 2
    run(tiny_config, combine="pcgrad", noise_batches=one_pass + 40)
    rows = json.loads((Path(tiny_config["out_dir"]) / "gradient_noise.json").read_text())
    assert 2 <= one_pass and max(r["round_b"] for r in rows) == one_pass - 1
    assert len([r for r in rows if r["task_a"] == r["task_b"] == "sst"]) == one_pass // 2


def test_noise_batches_must_be_even():
    with pytest.raises(ConfigError, match="noise_batches=3 is not valid; use an even number"):
        Config(noise_batches=3)


def test_upcoming_rows_peeks_without_moving_the_sampler(tiny_config):
    from mtlib.data import TaskSampler
    from mtlib.pipelines import encode_splits, load_splits, make_config
    cfg = make_config(tiny_config)
    _, tok = build_model(cfg.encoder, "mean", "mlp", 0.0)
    enc = encode_splits(cfg, load_splits(cfg), tok)["sst"]["train"]
    a, b = TaskSampler(enc, 8, 0), TaskSampler(enc, 8, 0)
    rows = upcoming_rows(a, 9)                     # 9 batches of 8: past one pass of 48 rows
    import numpy as np
    assert np.array_equal(rows, np.concatenate([next(b) for _ in range(9)]))
    assert np.array_equal(next(a), next(TaskSampler(enc, 8, 0)))


def test_a_knob_added_after_a_run_counts_as_its_default():
    from mtlib.pipelines import changed_keys
    now = {"lr": 1e-3, "dropout": 0.1, "reduction": "sum"}
    assert changed_keys({"lr": 1e-3, "dropout": 0.1}, now) == []               # reduction: default "sum"
    assert changed_keys({"lr": 1e-3, "dropout": 0.1}, {**now, "reduction": "mean"}) == ["reduction"]


def _step_records(out_dir):
    return [json.loads(line) for line in open_log(out_dir) if '"step"' in line]


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_learning_rate_of_every_step(tiny_config, schedule):
    """2 epochs x 4 steps = 8 steps in the stage; warmup 0.25 -> 2 warm-up steps: the lr rises 0, lr/2 and is
    cfg.lr at the end of the warm-up (step 2), then falls linearly, lr/6 at the last step, 0 after it."""
    run(tiny_config, schedule=schedule, warmup=0.25)
    lr, lrs = tiny_config["lr"], [r["lr"] for r in _step_records(tiny_config["out_dir"])]
    assert len(lrs) == 8
    if schedule == "constant":
        assert lrs == [lr] * 8
    else:
        assert lrs == pytest.approx([lr * min(i / 2, (8 - i) / 6) for i in range(8)], rel=1e-9)
        assert lrs[2] == pytest.approx(lr, rel=1e-12) and lrs[-1] == pytest.approx(lr / 6, rel=1e-9)


def test_novel_with_ties_merge_and_a_schedule_per_stage(tiny_config):
    m = run(tiny_config, pipeline="novel", epochs=1, steps_per_epoch=2, merge="ties", merge_density=0.5,
            schedule="linear", warmup=0.5)
    assert m["config"]["merge"] == "ties" and m["final_stage"] == "frozen"
    records = [json.loads(line) for line in open_log(tiny_config["out_dir"])]
    assert any(r["type"] == "epoch" and r["stage"] == "merged" for r in records)
    for stage in ("single_sst", "single_para", "single_sts", "multitask", "frozen"):
        lrs = [r["lr"] for r in records if r["type"] == "step" and r["stage"] == stage]
        assert lrs == pytest.approx([0.0, tiny_config["lr"]])         # every stage warms up anew


def test_a_run_records_the_commit_it_started_from(tiny_config, monkeypatch):
    from mtlib import pipelines
    commits = iter(["abc1234", "def5678"])                  # the checkout moves on while the run trains
    monkeypatch.setattr(pipelines, "git_commit", lambda: next(commits))
    m = pipelines.run(tiny_config, pipeline="multitask", epochs=1)
    assert m["versions"]["mtlib"] == "abc1234"


def test_merge_grid_reproduces_the_merged_model_the_run_logged(tiny_config):
    from mtlib.report.merges import merge_grid
    run(tiny_config, pipeline="novel", epochs=1, steps_per_epoch=2, merge="ties", merge_density=0.5, frozen_epochs=0)
    out = Path(tiny_config["out_dir"])
    logged, = [r for r in map(json.loads, open_log(out)) if r["type"] == "epoch" and r["stage"] == "merged"]
    found = merge_grid(out, grid=(("uniform", 1.0, 1.0), ("ties", 1.0, 0.5), ("task_arithmetic", 1 / 3, 1.0)))
    uniform, ties, third = found["rows"]
    assert ties["sts_pearson"] != uniform["sts_pearson"]        # the merges differ, so the match below means something
    for k in ("sst_acc", "para_acc", "sts_pearson", "overall"):
        assert ties[k] == logged[k]                          # the run's own merge, rebuilt from its checkpoints
        assert third[k] == pytest.approx(uniform[k], abs=1e-6)   # lambda = 1/3: the average again
    assert json.loads((out / "merges.json").read_text())["rows"] == found["rows"]


def test_merge_grid_names_what_it_needs_when_the_run_is_not_novel(tiny_config):
    from mtlib.report.merges import merge_grid
    run(tiny_config, pipeline="multitask", epochs=1)
    with pytest.raises(FileNotFoundError, match="single_sst.safetensors.*Run pipeline=novel"):
        merge_grid(tiny_config["out_dir"])


def test_bucket_tasks_chooses_which_samplers_bucket(tiny_config, monkeypatch):
    import mtlib.train as train_module
    made = []

    class Recording(train_module.TaskSampler):
        def __init__(self, enc, batch_size, seed, bucket=True, pool=64):
            made.append(bucket)
            super().__init__(enc, batch_size, seed, bucket=bucket, pool=pool)

    monkeypatch.setattr(train_module, "TaskSampler", Recording)
    run(tiny_config, bucket_tasks="sst,para", epochs=1)
    assert made == [True, True, False]                       # one sampler per task, in TASKS order: sst, para, sts


@pytest.mark.parametrize("head_lr", [None, 1e-2])
def test_head_lr_moves_the_heads_at_their_own_rate(tiny_encoder, head_lr):
    """AdamW's first step moves each parameter by about its group's lr: the encoder by lr, the heads by head_lr
    (None: lr, the report's one rate). A frozen encoder leaves the heads' group alone."""
    from mtlib.config import Config
    from mtlib.train import param_groups
    model, tok = build_model(tiny_encoder, "mean", "mlp", 0.0)
    cfg = Config(profile="smoke", encoder=tiny_encoder, lr=1e-4, head_lr=head_lr)
    groups = param_groups(model, cfg)
    assert [g["lr"] for g in groups] == [1e-4, 1e-4, 1e-4, head_lr or 1e-4]     # 2 layers, embeddings, heads
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0)
    enc = tok(["a good film", "bad"], padding=True, return_tensors="pt")
    model.loss("sst", model("sst", dict(enc)), torch.tensor([3, 0])).backward()
    optimizer.step()
    moved = {part: max((p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()
                       if n.startswith(part)) for part in ("encoder.", "heads.sst.")}
    assert moved["encoder."] == pytest.approx(1e-4, rel=0.01)
    assert moved["heads.sst."] == pytest.approx(head_lr or 1e-4, rel=0.01)
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    assert [g["lr"] for g in param_groups(model, cfg)] == [head_lr or 1e-4]


def test_layer_decay_gives_each_layer_its_rate(tiny_encoder):
    """2 layers, layer_decay 0.5: the top layer (and the pooler) at lr, the one below at lr/2, the embeddings at
    lr/4; every parameter in exactly one group."""
    from mtlib.config import Config
    from mtlib.train import param_groups
    model, _ = build_model(tiny_encoder, "mean", "cosine", 0.0)
    groups = param_groups(model, Config(profile="smoke", encoder=tiny_encoder, lr=1e-4, layer_decay=0.5))
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(rate) == len(list(model.parameters()))
    for name, p in model.encoder.named_parameters():
        expected = 2.5e-5 if name.startswith("embeddings.") else 5e-5 if ".layer.0." in name else 1e-4
        assert rate[id(p)] == pytest.approx(expected), name
    assert any(n.startswith("pooler.") for n, _ in model.encoder.named_parameters())


def test_head_lr_must_be_positive():
    with pytest.raises(ConfigError, match="head_lr=0.0 is not valid"):
        Config(profile="smoke", head_lr=0)


def test_weight_average_is_the_exponential_moving_average_of_the_steps(tiny_encoder):
    """avg = the first step's weights, then avg <- d * avg + (1 - d) * weights after each later step."""
    from mtlib.train import weight_average
    model, tok = build_model(tiny_encoder, "mean", "mlp", 0.0)
    averaged, d = weight_average(model, 0.75), 0.75
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    enc = tok(["a good film", "bad"], padding=True, return_tensors="pt")
    seen = []
    for _ in range(3):
        optimizer.zero_grad()
        model.loss("sst", model("sst", dict(enc)), torch.tensor([3, 0])).backward()
        optimizer.step()
        averaged.update_parameters(model)
        seen.append(model.heads["sst"][1].weight.detach().clone())
    expected = d * (d * seen[0] + (1 - d) * seen[1]) + (1 - d) * seen[2]
    assert not torch.equal(seen[0], seen[2])
    torch.testing.assert_close(averaged.module.heads["sst"][1].weight, expected)


def test_ema_evaluates_and_keeps_the_averaged_weights(tiny_config):
    """A decay near 0 averages nothing away: the run is the run without it; a real decay changes what is scored."""
    plain = run(tiny_config, out_dir=tiny_config["out_dir"] + "-plain")
    almost = run(tiny_config, ema=1e-12, out_dir=tiny_config["out_dir"] + "-almost")
    averaged = run(tiny_config, ema=0.7, out_dir=tiny_config["out_dir"] + "-ema")
    for k in ("sst_acc", "para_acc", "sts_pearson"):
        assert almost[k] == pytest.approx(plain[k], abs=1e-6)
    assert [averaged[k] for k in ("sst_acc", "para_acc", "sts_pearson")] != \
           [plain[k] for k in ("sst_acc", "para_acc", "sts_pearson")]
    with pytest.raises(ConfigError, match="ema=1.0 is not valid"):
        run(tiny_config, ema=1.0)


@pytest.mark.slow
def test_select_last_keeps_the_last_epoch_and_one_epoch_stages_load_either_way(tiny_config, tmp_path, capsys):
    from mtlib.pipelines import run
    m = run({**tiny_config, "select": "last", "epochs": 3, "out_dir": str(tmp_path / "last")})
    history = m["stages"][-1]["history"]
    assert m["best_epoch"] == 3 and m["overall"] == history[-1]["overall"]
    one = {**tiny_config, "epochs": 1, "out_dir": str(tmp_path / "one")}
    run(one)
    capsys.readouterr()
    run({**one, "select": "last", "resume": True})           # one epoch: its last is its best, the same run
    assert "holds a finished run" in capsys.readouterr().out


def test_an_epoch_stops_at_one_pass_and_says_so(tiny_config, tmp_path, capsys):
    """steps_per_epoch caps an epoch at one pass over the largest train set; asked for more, a multitask stage trains
    the pass and says how to get more (the first equal-data runs asked for 1,237 steps and got 1,013, silently)."""
    out = tmp_path / "long"
    run(tiny_config, out_dir=str(out), max_train=16, epochs=1, steps_per_epoch=1000)   # 16 rows at 8: 2 steps
    steps = [json.loads(l) for l in open_log(out) if '"step"' in l]
    assert len(steps) == 2
    assert "[multitask] steps_per_epoch=1000 > one pass (2 steps): raise epochs for more" in capsys.readouterr().out
    run(tiny_config, out_dir=str(tmp_path / "short"), max_train=16, epochs=1, steps_per_epoch=2)
    assert "one pass" not in capsys.readouterr().out
