import pytest
import torch

from mtlib.merge import average_state_dicts, merge_single_task_states


def test_average_is_elementwise_mean_and_keeps_integer_buffers():
    a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([0, 1])}
    c = {"w": torch.tensor([5.0, 1.0]), "ids": torch.tensor([0, 1])}
    avg = average_state_dicts([a, b, c])
    assert torch.allclose(avg["w"], torch.tensor([3.0, 3.0])) and avg["ids"].dtype == torch.long


def test_mismatched_keys_fail():
    with pytest.raises(ValueError, match="differ"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])


def test_merge_takes_each_head_from_its_own_model():
    def state(x):
        return {"encoder.w": torch.full((2,), x), "heads.sst.w": torch.full((1,), x),
                "heads.para.w": torch.full((1,), x), "heads.sts.w": torch.full((1,), x)}
    merged = merge_single_task_states({"sst": state(1.0), "para": state(2.0), "sts": state(6.0)})
    assert torch.allclose(merged["encoder.w"], torch.full((2,), 3.0))
    assert merged["heads.sst.w"].item() == 1.0 and merged["heads.para.w"].item() == 2.0
    assert merged["heads.sts.w"].item() == 6.0


def test_merged_model_loads(tiny_encoder):
    from mtlib.models import build_model
    models = [build_model(tiny_encoder, "mean", "mlp", 0.0)[0] for _ in range(3)]
    for i, m in enumerate(models):
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(float(i))
    merged = merge_single_task_states({t: m.state_dict() for t, m in zip(("sst", "para", "sts"), models)})
    target = build_model(tiny_encoder, "mean", "mlp", 0.0)[0]
    target.load_state_dict(merged)
    assert torch.allclose(target.encoder.embeddings.word_embeddings.weight, torch.tensor(1.0))
    assert torch.allclose(target.heads["sts"][1].weight, torch.tensor(2.0))
    assert torch.allclose(target.heads["sst"][1].weight, torch.tensor(0.0))
