import pytest
import torch

from mtlib.models import EncoderError, build_model, load_encoder


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
    scores = model("sts", pairs)
    assert scores.shape == (3,)
    if sts_head == "cosine":
        assert ((scores >= 0) & (scores <= 5)).all()
        assert len(list(model.heads["sts"].parameters())) == 0


def test_cosine_head_of_identical_sentences_is_five(tiny_encoder):
    model, tok = build_model(tiny_encoder, "mean", "cosine", 0.0)
    model.eval()
    pairs = batch(tok, ["the same words", "other words", "the same words", "other words"])
    assert torch.allclose(model("sts", pairs), torch.tensor([5.0, 5.0]), atol=1e-4)


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


def test_losses():
    from mtlib.models import MultitaskModel
    assert MultitaskModel.loss("sts", torch.tensor([1.0, 3.0]), torch.tensor([1.0, 5.0])).item() == 2.0
    assert MultitaskModel.loss("para", torch.tensor([0.0]), torch.tensor([1])).item() == pytest.approx(0.6931, abs=1e-4)


def test_unloadable_encoder_names_what_was_tried(tmp_path):
    with pytest.raises(EncoderError, match=str(tmp_path / "nope")):
        load_encoder(str(tmp_path / "nope"), 0.1)
