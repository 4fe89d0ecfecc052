"""The run store: device keys, a run folder's record, and the rule that no device touches another's run."""
from __future__ import annotations

import json
import shlex

import pytest
import torch

from mtlib import store
from mtlib.config import Config, parse_params
from mtlib.pipelines import run


@pytest.mark.parametrize("name, key", [("Intel(R) Xeon(R) Processor", "intel-xeon"), ("AMD EPYC", "amd-epyc"),
                                       ("AMD EPYC 7B13 64-Core Processor", "amd-epyc-7b13"),
                                       ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "intel-core-i7-8700"),
                                       ("NVIDIA H200", "nvidia-h200")])
def test_slug_names_the_model_alone(name, key):
    assert store.slug(name) == key


def test_cpu_key_names_the_model_the_arithmetic_auto_resolves_to_and_the_threads(monkeypatch):
    import mtlib.models
    monkeypatch.setattr(store, "cpu_model", lambda: "AMD EPYC")
    monkeypatch.setattr(mtlib.models, "arithmetic", lambda cfg, device: "fp32")
    assert store.device_key(torch.device("cpu"), threads=2) == "amd-epyc-fp32-2t"
    monkeypatch.setattr(mtlib.models, "arithmetic", lambda cfg, device: "bf16-autocast")
    assert store.device_key(torch.device("cpu"), threads=1) == "amd-epyc-bf16-1t"   # a bf16 EPYC: another key


def test_command_trains_the_same_config_again():
    cfg = Config(profile="cpu", pipeline="novel", dropout=0.0, seed=2, lr=1e-4, out_dir="x")
    line = store.command(cfg.to_dict(), "reports/runs/k/05/seed2/novel")
    words = shlex.split(line)
    assert words[:4] == ["python", "-m", "mtlib", "run"] and words[-1] == "out_dir=reports/runs/k/05/seed2/novel"
    again = Config.from_dict({**parse_params(words[4:]), "out_dir": "x"})
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.slow
def test_a_run_records_its_device_key_and_another_device_neither_loads_nor_clears_it(tiny_config, tmp_path):
    m = run(tiny_config)
    out = tmp_path / "run"
    here = store.here(Config(device="cpu"))
    rec = json.loads((out / "run.json").read_text())
    assert m["device_key"] == rec["device_key"] == here and rec["precision"] == m["precision"]
    assert rec["command"].startswith("python -m mtlib run ") and f"seed={tiny_config.get('seed', 0)}" not in "x"
    # the same folder, filed by another machine: loading, resuming and training again are all refused, nothing moves
    rec["device_key"] = "other-cpu-bf16-2t"
    (out / "run.json").write_text(json.dumps(rec))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for changes in ({}, {"lr": 5e-3}, {"resume": False}):
        with pytest.raises(store.DeviceMismatch, match="other-cpu-bf16-2t"):
            run({**tiny_config, **changes})
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.slow
def test_a_finished_runs_log_is_compressed_small_and_still_read(tiny_config, tmp_path):
    """A run keeps its per-step log gzip-compressed, floats to 4 significant digits: a 700-step log of the
    telemetry a multitask step writes stays under 100 KB, and the readers see the same records."""
    import gzip
    import random
    from mtlib.files import compress_log
    from mtlib.report.runs import steps
    run(tiny_config)
    assert (tmp_path / "run/metrics.jsonl.gz").is_file() and not (tmp_path / "run/metrics.jsonl").exists()
    assert len(steps(tmp_path / "run")) > 0
    rng = random.Random(0)
    keys = [f"k{i}" for i in range(26)]
    log = tmp_path / "big/metrics.jsonl"
    log.parent.mkdir()
    log.write_text("".join(json.dumps({"type": "step", "step": i, **{k: rng.random() for k in keys}}) + "\n"
                           for i in range(700)))
    first = json.loads(log.read_text().splitlines()[0])
    out = compress_log(log)
    assert out.stat().st_size < 100_000 and not log.exists()
    again = json.loads(gzip.open(out, "rt").readline())
    assert again["step"] == 0 and all(abs(again[k] - first[k]) <= 5e-4 * abs(first[k]) for k in keys)
