"""Training on a tiny random BERT and synthetic data: the loop, the pipelines and their outputs."""
import json
from pathlib import Path

import pytest
import torch

from mtlib.data import TASKS
from mtlib.models import build_model
from mtlib.pipelines import run
from mtlib.surgery import WEIGHTINGS, combine, make_weighting
from mtlib.train import TaskGrads


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
