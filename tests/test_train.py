"""Training on a tiny random BERT and synthetic data: the loop, the pipelines and their outputs."""
import json
from pathlib import Path

import pytest
import torch

from mtlib.data import TASKS
from mtlib.models import build_model
from mtlib.pipelines import run
from mtlib.train import FlatGrads


def test_flat_buffer_rows_are_each_tasks_own_gradient(tiny_encoder):
    """Backward into views of the T x P buffer gives exactly torch.autograd.grad of each task's loss."""
    model, tok = build_model(tiny_encoder, "mean", "mlp", 0.0)
    shared = model.shared_parameters()
    flat = FlatGrads(shared, 2)
    inputs = [tok(["a good film", "bad"], padding=True, return_tensors="pt"),
              tok(["x", "y z", "x", "w"], padding=True, return_tensors="pt")]
    tasks, labels = ["sst", "sts"], [torch.tensor([3, 0]), torch.tensor([1.0, 4.0])]
    expected = []
    for task, enc, y in zip(tasks, inputs, labels):
        loss = model.loss(task, model(task, dict(enc)), y)
        grads = torch.autograd.grad(loss, shared, allow_unused=True)
        expected.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, shared)]))
    for t, (task, enc, y) in enumerate(zip(tasks, inputs, labels)):
        flat.point_grads_at(flat.buffer[t])
        model.loss(task, model(task, dict(enc)), y).backward()
    assert torch.allclose(flat.buffer[0], expected[0], atol=1e-6)
    assert torch.allclose(flat.buffer[1], expected[1], atol=1e-6)
    assert not torch.allclose(flat.buffer[0], flat.buffer[1])


def test_multitask_pcgrad_run_writes_metrics_predictions_and_telemetry(tiny_config, tiny_data):
    m = run(tiny_config, combine="pcgrad", sts_head="cosine")
    out = tiny_config["out_dir"]
    saved = json.load(open(f"{out}/metrics.json"))
    for key in ("sst_acc", "para_acc", "sts_pearson", "overall"):
        assert saved[key] == m[key] and isinstance(saved[key], float)
    assert saved["overall"] == pytest.approx((saved["sst_acc"] + saved["para_acc"] + saved["sts_pearson"]) / 3)
    assert saved["best_epoch"] in (1, 2) and saved["final_stage"] == "multitask"
    assert saved["config"]["combine"] == "pcgrad" and saved["device"].startswith("cpu")
    steps = [json.loads(l) for l in open(f"{out}/metrics.jsonl") if '"step"' in l]
    assert len(steps) == 2 * 4
    assert {"cos_sst_para", "cos_sst_sts", "cos_para_sts", "norm_after_sts", "conflicts", "loss_para"} <= set(steps[0])
    for task in ("sst", "para", "sts"):
        for split, n in (("dev", 24), ("test", 24)):
            lines = open(f"{out}/predictions/{task}-{split}-output.csv").read().splitlines()
            assert len(lines) == n + 1 and lines[0].startswith("id \t Predicted_")
            assert lines[1].split(" , ")[0].startswith(task)


def test_training_learns_the_synthetic_tasks(tiny_config):
    m = run(tiny_config, epochs=12, steps_per_epoch=0, lr=3e-3, sts_head="cosine", combine="pcgrad")
    assert m["sst_acc"] > 0.3 and m["para_acc"] > 0.7 and m["sts_pearson"] > 0.5   # chance: 0.2, ~0.85 all-no, 0


def test_novel_pipeline_stages(tiny_config):
    m = run(tiny_config, pipeline="novel", epochs=1)
    assert [s["name"] for s in m["stages"]] == ["single_sst", "single_para", "single_sts", "multitask", "frozen"]
    assert m["config"]["combine"] == "pcgrad" and m["config"]["sts_head"] == "cosine"
    assert set(m["stages"][0]["best"]) == {"sst_acc", "overall"}
    assert m["final_stage"] == "frozen"


def test_frozen_stage_leaves_the_encoder_untouched(tiny_config, tiny_data):
    from mtlib.pipelines import load_data, make_config
    from mtlib.train import JsonlLog, Stage, train_stage
    cfg = make_config(tiny_config)
    model, tok = build_model(cfg.encoder, "mean", "mlp", 0.0)
    data = load_data(cfg, tok)
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
