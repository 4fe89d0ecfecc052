import math

import pytest
import torch

from mtlib.models import (EncoderError, FastDropout, build_model, cosent_loss, load_encoder, task_loss,
                          training_attention)


def batch(tokenizer, sentences):
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
@pytest.mark.parametrize("sts_head", ["mlp", "cosine"])
def test_head_shapes(tiny_encoder, pooling, sts_head):
    model, tok = build_model(tiny_encoder, pooling, sts_head, 0.1)
    single = batch(tok, ["a good film", "a bad one", "fine"])
    pairs = batch(tok, ["a", "b c", "d", "e f g", "h", "i"])   # 3 pairs: first half vs second half
    assert model("sst", single).shape == (3, 5)
    assert model("para", pairs).shape == (3,)
    scores = model.predict("sts", model("sts", pairs))
    assert scores.shape == (3,)
    if sts_head == "cosine":
        assert ((scores >= 0) & (scores <= 5)).all()
        assert len(list(model.heads["sts"].parameters())) == 0


def test_cosine_head_of_identical_sentences_is_five(tiny_encoder):
    model, tok = build_model(tiny_encoder, "mean", "cosine", 0.0)
    model.eval()
    pairs = batch(tok, ["the same words", "other words", "the same words", "other words"])
    assert torch.allclose(model("sts", pairs), torch.tensor([1.0, 1.0]), atol=1e-5)          # the raw cosine
    assert torch.allclose(model.predict("sts", model("sts", pairs)), torch.tensor([5.0, 5.0]), atol=1e-4)


def test_an_fp16_checkpoint_loads_as_fp32_weights_with_the_same_values(tiny_encoder, tmp_path):
    from transformers import AutoModel, AutoTokenizer
    half = AutoModel.from_pretrained(tiny_encoder).half()
    half.save_pretrained(tmp_path / "fp16")
    AutoTokenizer.from_pretrained(tiny_encoder).save_pretrained(tmp_path / "fp16")
    encoder, _ = load_encoder(str(tmp_path / "fp16"), 0.1)
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    stored = dict(half.named_parameters())
    assert all(torch.equal(p, stored[n].float()) for n, p in encoder.named_parameters())
    model, tok = build_model(str(tmp_path / "fp16"), "mean", "mlp", 0.0)     # fp32 heads on it: no dtype clash
    assert model("sst", batch(tok, ["a good film"])).dtype == torch.float32


def test_dropout_zero_means_none_anywhere(tiny_encoder):
    model, tok = build_model(tiny_encoder, "mean", "mlp", 0)
    assert model.encoder.config.hidden_dropout_prob == 0.0
    assert model.encoder.config.attention_probs_dropout_prob == 0.0
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    model.train()
    b = batch(tok, ["a good film", "a bad one"])
    assert torch.equal(model("sst", b), model("sst", b))          # no randomness in train mode


def test_dropout_is_applied(tiny_encoder):
    model, _ = build_model(tiny_encoder, "mean", "mlp", 0.3)
    assert model.encoder.config.hidden_dropout_prob == 0.3
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_fast_dropout_keeps_1_minus_p_and_preserves_the_mean(p):
    drop = FastDropout(p).train()
    x = torch.ones(1_000_003)                          # not a multiple of 4: the bit buffer is cut to size
    y = drop(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(1 - p, abs=2e-3)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 32768 / round((1 - p) * 32768)))
    assert y.mean().item() == pytest.approx(1.0, abs=5e-3)
    xb = torch.randn(64, 50, 32, dtype=torch.bfloat16)
    assert drop(xb).dtype == torch.bfloat16 and drop(xb).shape == xb.shape


def test_fast_dropout_follows_the_torch_seed_and_backpropagates_the_mask():
    drop = FastDropout(0.3).train()
    x = torch.randn(40, 70, requires_grad=True)
    torch.manual_seed(1)
    a = drop(x)
    torch.manual_seed(1)
    b = drop(x)
    torch.manual_seed(2)
    assert torch.equal(a, b) and not torch.equal(a, drop(x))
    a.sum().backward()
    assert torch.allclose(x.grad, a.detach() / x.detach())      # d(x * m)/dx = m
    assert torch.equal(drop.eval()(x), x) and torch.equal(FastDropout(0.0).train()(x), x)


def test_dropout_impl_swaps_every_dropout_module(tiny_encoder):
    fast, _ = build_model(tiny_encoder, "mean", "mlp", 0.2, "fast")
    plain, _ = build_model(tiny_encoder, "mean", "mlp", 0.2, "torch")
    n = sum(type(m) is torch.nn.Dropout for m in plain.modules())
    assert n > 0 and sum(type(m) is FastDropout for m in fast.modules()) == n
    assert not any(type(m) is torch.nn.Dropout for m in fast.modules())
    assert {m.p for m in fast.modules() if isinstance(m, FastDropout)} == {0.2}
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_training_attention_is_the_math_backend_on_cpu_only_inside():
    with training_attention(torch.device("cpu")):
        assert torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()


def test_losses():
    assert task_loss("sts", torch.tensor([1.0, 3.0]), torch.tensor([1.0, 5.0])).item() == 2.0
    assert task_loss("para", torch.tensor([0.0]), torch.tensor([1])).item() == pytest.approx(0.6931, abs=1e-4)
    # cosine head + MSE: the report's loss on 5 * ReLU(cos); cos = -0.5 scores 0, cos = 0.6 scores 3
    cos, y = torch.tensor([-0.5, 0.6]), torch.tensor([1.0, 5.0])
    assert task_loss("sts", cos, y, "cosine", "mse").item() == pytest.approx((1.0 + 4.0) / 2)


def test_cosent_on_three_pairs_by_hand():
    """log(1 + sum over label_i > label_j of exp(20 (cos_j - cos_i))), written out pair by pair."""
    cos, y = torch.tensor([0.2, 0.6, 0.4]), torch.tensor([4.0, 2.0, 2.0])
    # pairs with label_i > label_j: (0, 1) -> exp(20 (0.6 - 0.2)) = e^8, (0, 2) -> exp(20 (0.4 - 0.2)) = e^4;
    # (1, 2) is a tie in the labels and does not count
    assert cosent_loss(cos, y).item() == pytest.approx(math.log(1 + math.exp(8) + math.exp(4)), rel=1e-6)
    assert task_loss("sts", cos, y, "cosine", "cosent").item() == pytest.approx(cosent_loss(cos, y).item())
    # ranked right: (0, 1) -> e^-8, (0, 2) -> e^-16, (1, 2) -> e^-8
    ranked = cosent_loss(torch.tensor([0.9, 0.5, 0.1]), torch.tensor([5.0, 3.0, 1.0])).item()
    assert ranked == pytest.approx(math.log(1 + 2 * math.exp(-8) + math.exp(-16)), abs=1e-7)   # fp32 log(1 + x)
    # only the order of the labels matters, and all-equal labels give log(1) = 0
    assert cosent_loss(cos, y * 0.1 + 3).item() == pytest.approx(cosent_loss(cos, y).item())
    assert cosent_loss(cos, torch.full((3,), 2.0)).item() == 0.0


def test_cosine_model_losses_use_the_raw_cosine(tiny_encoder):
    model, tok = build_model(tiny_encoder, "mean", "cosine", 0.0, sts_loss="cosent")
    pairs = batch(tok, ["a", "b c", "d", "e f g", "h", "i"])
    cos, y = model("sts", pairs), torch.tensor([5.0, 0.0, 2.5])
    assert cos.min() >= -1 and cos.max() <= 1
    assert torch.equal(model.loss("sts", cos, y), cosent_loss(cos, y))
    model.sts_loss = "mse"
    assert torch.equal(model.loss("sts", cos, y), torch.nn.functional.mse_loss(5 * torch.relu(cos), y))


@pytest.mark.parametrize("kind,width", [("concat", 2), ("sbert", 4)])
def test_pair_head_input_layout(tiny_encoder, kind, width):
    """With known embeddings u, v, the first Linear of the pair head receives [u; v] or [u; v; |u-v|; u*v]."""
    model, tok = build_model(tiny_encoder, "mean", "mlp", 0.0, para_head=kind, sts_features=kind)
    h = model.encoder.config.hidden_size
    u, v = torch.randn(2, h), torch.randn(2, h)
    model.embed = lambda *batch: torch.cat([u, v])     # rows: u of each pair, then v
    pairs = batch(tok, ["a", "b", "c", "d"])
    expected = {"concat": torch.cat([u, v], -1), "sbert": torch.cat([u, v, (u - v).abs(), u * v], -1)}[kind]
    for task in ("para", "sts"):
        seen = []
        first = model.heads[task][1]
        assert first.in_features == width * h
        hook = first.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
        model(task, pairs)
        hook.remove()
        assert torch.equal(seen[0], expected)


def test_cross_heads_take_one_joint_sequence_per_pair(tiny_encoder):
    """para_head=cross, sts_head=cross: one row per pair, its pooled output straight into the MLP (width H), the token
    types reach the encoder, and the STS loss is MSE on the MLP's score."""
    model, tok = build_model(tiny_encoder, "mean", "cross", 0.0, para_head="cross")
    model.eval()
    h = model.encoder.config.hidden_size
    pairs = dict(tok(["a", "d"], ["b c", "e f g"], padding=True, return_tensors="pt"))
    assert pairs["token_type_ids"].any()
    for task in ("para", "sts"):
        seen = []
        first = model.heads[task][1]
        assert first.in_features == h
        hook = first.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
        out = model(task, pairs)
        hook.remove()
        assert out.shape == (2,)
        assert torch.equal(seen[0], model.embed(**pairs))
    untyped = {**pairs, "token_type_ids": torch.zeros_like(pairs["token_type_ids"])}
    assert not torch.allclose(model("para", untyped), model("para", pairs))
    y = torch.tensor([1.0, 4.0])
    out = model("sts", pairs)
    assert torch.equal(model.loss("sts", out, y), torch.nn.functional.mse_loss(out, y))
    assert torch.equal(model.predict("sts", out), out)


def test_unloadable_encoder_names_what_was_tried(tmp_path):
    with pytest.raises(EncoderError, match=str(tmp_path / "nope")):
        load_encoder(str(tmp_path / "nope"), 0.1)
