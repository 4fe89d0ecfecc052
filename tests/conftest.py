"""Shared fixtures: a tiny random BERT (fast) and a small synthetic CS224N-format data folder."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The real CS224N files: $MTLIB_DATA_DIR, else ../shared/data/cs224n beside the repository (as in CI). The
# environment every test and notebook gets (smoke profile, this data, no hub look-ups) is set in ../conftest.py.
SHARED_DATA = Path(os.environ.get("MTLIB_DATA_DIR") or ROOT.parent / "shared" / "data" / "cs224n")

WORDS = {0: "awful dreadful boring", 1: "dull weak flat", 2: "plain fine okay",
         3: "good nice solid", 4: "great superb brilliant"}
TOPICS = ["cats", "dogs", "cars", "rain", "music", "food", "books", "trains"]


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def make_data(folder: Path, n_train: int = 48, n_eval: int = 24, seed: int = 0) -> Path:
    """Nine files in the default-project format whose labels follow learnable word patterns."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_eval), ("test-student", n_eval)):
        label = split != "test-student"
        sst, para, sts = [], [], []
        for i in range(n):
            y = rng.randrange(5)
            sst.append([str(i), f"sst{split}{i:04d}", f"a {rng.choice(WORDS[y].split())} film about {rng.choice(TOPICS)}"]
                       + ([str(y)] if label else []))
            a, b = rng.choice(TOPICS), rng.choice(TOPICS)
            para.append([str(i), f"para{split}{i:04d}", f"why do people like {a}?", f"why do people like {b}?"]
                        + ([f"{float(a == b)}"] if label else []))
            c = rng.choice(TOPICS)
            d = c if rng.random() < 0.5 else rng.choice(TOPICS)
            sts.append([str(i), f"sts{split}{i:04d}", f"a story about {c}", f"a tale about {d}"]
                       + ([f"{4.0 + rng.random() if c == d else rng.random() * 2:.2f}"] if label else []))
        write_tsv(folder / f"ids-sst-{split}.csv", ["", "id", "sentence"] + (["sentiment"] if label else []), sst)
        write_tsv(folder / f"quora-{split}.csv", ["", "id", "sentence1", "sentence2"] + (["is_duplicate"] if label else []), para)
        write_tsv(folder / f"sts-{split}.csv", ["", "id", "sentence1", "sentence2"] + (["similarity"] if label else []), sts)
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BertModel with the bundled uncased tokenizer, saved as a local folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mtlib.models import resolve_encoder

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random MPNetModel (no token type ids; pairs `<s> a </s></s> b </s>`) with an MPNet tokenizer
    on a small vocabulary (the special tokens, the synthetic data's words), built offline."""
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    folder = tmp_path_factory.mktemp("tiny-mpnet")
    words = {w for line in [*WORDS.values(), " ".join(TOPICS), "a film about why do people like ? story tale b c d e f g"
                            " h i the same other words good bad one"] for w in line.split()}
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "[UNK]", "<mask>", *sorted(words)])}
    tokenizer = MPNetTokenizer(vocab=vocab)
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=80, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    MPNetModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def tiny_config(tiny_data, tiny_encoder, tmp_path):
    """Keywords for a seconds-long run on the tiny encoder and data."""
    return dict(profile="smoke", encoder=tiny_encoder, data_dir=str(tiny_data), out_dir=str(tmp_path / "run"),
                lr=1e-3, batch_size=8, epochs=2, steps_per_epoch=4, max_length=16, max_train=0, max_eval=0,
                progress=False)


def fake_run(folder, **metrics):
    """A finished run's metrics.json in `folder`, with plausible defaults that `metrics` overrides."""
    folder.mkdir(parents=True)
    m = {"sst_acc": 0.4, "para_acc": 0.7, "sts_pearson": 0.8, **metrics}
    m["overall"] = (m["sst_acc"] + m["para_acc"] + m["sts_pearson"]) / 3
    m = {**dict(final_stage="multitask", best_epoch=1, wall_s=60.0, device="cpu: test", precision="fp32",
             encoder="all-MiniLM-L6-v2", finished_at="2026-11-28T00:00:00+00:00", versions={"mtlib": "abc"},
             majority={"sst_acc": 0.26, "para_acc": 0.63},
             config={"profile": "cpu", "dropout": 0.1, "lr": 5e-5, "batch_size": 16, "epochs": 1,
                     "steps_per_epoch": 700}), **m}
    (folder / "metrics.json").write_text(json.dumps(m))
