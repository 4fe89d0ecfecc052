import pytest
import torch

from mtlib.merge import average_state_dicts, merge_single_task_states, merge_states, task_arithmetic, ties


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


BASE = {"w": torch.ones(5), "small": torch.zeros(2), "ids": torch.tensor([0, 1])}
TAUS = [torch.tensor([3.0, -1.0, 0.5, -2.0, 0.1]),
        torch.tensor([1.0, 2.0, -0.2, -3.0, -4.0]),
        torch.tensor([-2.0, 0.3, 0.1, 1.0, 0.2])]
SMALL = [torch.tensor([0.01, -0.02]), torch.tensor([0.03, -0.01]), torch.tensor([-0.02, 0.0])]


def tasks():
    return [{"w": BASE["w"] + t, "small": BASE["small"] + s, "ids": torch.tensor([0, 1])} for t, s in zip(TAUS, SMALL)]


def test_task_arithmetic_lambda_one_adds_every_task_vector_and_one_over_k_is_the_average():
    merged = task_arithmetic(BASE, tasks(), lam=1.0)
    assert torch.allclose(merged["w"], 1 + TAUS[0] + TAUS[1] + TAUS[2])        # [3, 2.3, 1.4, -3, -2.7]
    assert torch.allclose(merged["w"], torch.tensor([3.0, 2.3, 1.4, -3.0, -2.7]))
    third = task_arithmetic(BASE, tasks(), lam=1 / 3)
    uniform = average_state_dicts(tasks())
    assert all(torch.allclose(third[k].float(), uniform[k].float()) for k in BASE)
    assert third["ids"].dtype == torch.long
    assert torch.equal(task_arithmetic(BASE, tasks(), lam=0.0)["w"], BASE["w"])


def test_ties_by_hand():
    """density 0.4 keeps 2 of the 5 entries of `w` per task and 1 of the 2 of `small` (per tensor)."""
    # trimmed w:  t1 = [3, 0, 0, -2, 0]; t2 = [0, 0, 0, -3, -4]; t3 = [-2, 0, 0, 1, 0]
    # summed:     [1, 0, 0, -4, -4] -> elected signs [+, +, +, -, -] (a zero sum counts as +)
    # agreeing:   entry 0 {3}; 1 and 2 none; entry 3 {-2, -3}; entry 4 {-4} -> task vector [3, 0, 0, -2.5, -4]
    merged = ties(BASE, tasks(), lam=1.0, density=0.4)
    assert torch.allclose(merged["w"], torch.tensor([4.0, 1.0, 1.0, -1.5, -3.0]))
    # small: trimmed [0, -0.02], [0.03, 0], [-0.02, 0] -> sums [0.01, -0.02] -> signs [+, -] -> [0.03, -0.02];
    # trimming over the whole model instead would have dropped these small entries
    assert torch.allclose(merged["small"], torch.tensor([0.03, -0.02]))
    half = ties(BASE, tasks(), lam=0.5, density=0.4)
    assert torch.allclose(half["w"], torch.tensor([2.5, 1.0, 1.0, -0.25, -1.0]))     # lam scales the task vector
    assert torch.equal(merged["ids"], BASE["ids"])


def test_ties_at_full_density():
    """Nothing trimmed: where the task vectors agree in sign TIES is their mean (so lam = 1 is the uniform
    average); where they disagree, the minority is dropped."""
    full = ties(BASE, tasks(), lam=1.0, density=1.0)
    # w: signs of the sums [+, +, +, -, -]; entry 0 mean(3, 1) = 2; entry 1 mean(2, 0.3) = 1.15;
    # entry 2 mean(0.5, 0.1) = 0.3; entry 3 mean(-2, -3) = -2.5; entry 4 mean(-4) = -4
    assert torch.allclose(full["w"], 1 + torch.tensor([2.0, 1.15, 0.3, -2.5, -4.0]))
    agree = [{"w": BASE["w"] + t.abs(), "small": BASE["small"], "ids": BASE["ids"]} for t in TAUS]
    assert torch.allclose(ties(BASE, agree, 1.0, 1.0)["w"], average_state_dicts(agree)["w"])


def test_merge_states_dispatches_and_needs_the_initial_state():
    assert torch.equal(merge_states(tasks())["w"], average_state_dicts(tasks())["w"])
    assert torch.equal(merge_states(tasks(), BASE, "ties", 1.0, 0.4)["w"], ties(BASE, tasks(), 1.0, 0.4)["w"])
    assert torch.equal(merge_states(tasks(), BASE, "task_arithmetic", 0.5)["w"], task_arithmetic(BASE, tasks(), 0.5)["w"])
    with pytest.raises(ValueError, match="needs the encoder's state before fine-tuning"):
        merge_states(tasks(), None, "ties")
    with pytest.raises(ValueError, match="density=0 is not valid"):
        ties(BASE, tasks(), density=0)


def test_merge_single_task_states_merges_the_encoder_from_the_initial_one():
    def state(x):
        return {"encoder.w": torch.full((2,), x), "heads.sst.w": torch.full((1,), x),
                "heads.para.w": torch.full((1,), x), "heads.sts.w": torch.full((1,), x)}
    singles = {"sst": state(1.0), "para": state(2.0), "sts": state(6.0)}
    merged = merge_single_task_states(singles, state(0.5), "task_arithmetic", 1.0)
    assert torch.allclose(merged["encoder.w"], torch.full((2,), 0.5 + 0.5 + 1.5 + 5.5))
    assert merged["heads.para.w"].item() == 2.0 and merged["heads.sts.w"].item() == 6.0
