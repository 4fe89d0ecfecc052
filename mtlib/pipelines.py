"""Pipelines: what the notebooks and the CLI call. `multitask` is rungs 1-4 of the report's ladder
(`combine` x `sts_head`); `novel` is rung 5: single-task x3 -> average -> multitask -> frozen encoder."""
from __future__ import annotations

import json
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data as D
from .config import Config
from .evaluate import atomic_write_text, evaluate, write_predictions
from .merge import merge_single_task_states
from .models import build_model, pick_device, resolve_encoder, use_bf16
from .train import JsonlLog, Stage, StageResult, train_stage

QUORA_NOTE = ("Quora numbers: the shared data's Quora train/dev/test are a split of the official quora-dev.csv "
              "(20,214 pairs), not the official 141k-pair train set; and all-MiniLM-L6-v2 was pre-trained on "
              "sentence pairs that include Quora duplicates, so its Quora accuracy is optimistic.")


def make_config(cfg: Config | dict | None = None, **params: Any) -> Config:
    """A Config from a Config, a dict of parameters (a notebook's cell, the CLI) and/or keywords."""
    if isinstance(cfg, Config):
        return cfg.replace(**params) if params else cfg
    return Config.from_dict({**(cfg or {}), **params})


def run(cfg: Config | dict | None = None, **params: Any) -> dict:
    """Run `cfg.pipeline`; write metrics.json, metrics.jsonl, predictions/ and checkpoints to out_dir."""
    cfg = make_config(cfg, **params)
    start = time.time()
    out = prepare_out_dir(cfg.out_dir)
    seed_everything(cfg.seed)
    device = pick_device(cfg)
    model, tokenizer = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout)
    model.to(device)
    data = load_data(cfg, tokenizer)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    log = JsonlLog(out / "metrics.jsonl")

    def dev_eval(m, tasks):
        return evaluate(m, {t: data[t]["dev"] for t in tasks}, cfg, device)

    def train(stage: Stage) -> StageResult:
        r = train_stage(model, data, cfg, stage, device, log, out / "checkpoints" / f"{stage.name}.safetensors",
                        dev_eval)
        print(f"[{stage.name}] best epoch {r.best_epoch}: {fmt(r.best)}  ({r.wall_s:.0f}s)")
        return r

    results: list[StageResult] = []
    if cfg.pipeline == "multitask":
        results.append(train(Stage("multitask", D.TASKS, cfg.epochs)))
    else:
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        singles = {}
        for task in D.TASKS:
            model.load_state_dict(initial)
            results.append(train(Stage(f"single_{task}", (task,), cfg.single_task_epochs)))
            singles[task] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(merge_single_task_states(singles))
        merged = dev_eval(model, D.TASKS)
        log.write(type="epoch", stage="merged", epoch=0, **merged)
        print(f"[merged] {fmt(merged)}")
        del singles, initial
        results.append(train(Stage("multitask", D.TASKS, cfg.epochs)))
        results.append(train(Stage("frozen", D.TASKS, cfg.frozen_epochs, freeze_encoder=True)))
    log.close()

    final = results[-1]
    write_predictions(model, {(t, s): data[t][s] for t in D.TASKS for s in ("dev", "test")}, cfg, device, out)
    metrics = {
        **final.best,
        "final_stage": final.name,
        "best_epoch": final.best_epoch,
        "stages": [vars(r) for r in results],
        "config": cfg.to_dict(),
        "device": device_name(device),
        "precision": "bf16-autocast" if use_bf16(cfg, device) else "fp32",
        "encoder": cfg.encoder,
        "encoder_path": resolve_encoder(cfg.encoder),
        "data_dir": str(D.resolve_data_dir(cfg.data_dir)),
        "versions": {"torch": torch.__version__, "transformers": _version("transformers"),
                     "python": platform.python_version()},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - start, 1),
        "note": QUORA_NOTE,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    print(f"[{cfg.pipeline}] dev {fmt(final.best)}  wall {metrics['wall_s']:.0f}s  -> {out / 'metrics.json'}")
    return metrics


def load_data(cfg: Config, tokenizer) -> dict[str, dict[str, D.Encoded]]:
    """{task: {split: Encoded}}, tokenized once with the encoder's tokenizer."""
    data: dict[str, dict[str, D.Encoded]] = {}
    for task in D.TASKS:
        splits = D.load_task(task, cfg.data_dir, max_bad_fraction=cfg.max_bad_fraction)
        data[task] = {s: D.encode(split.head(cfg.max_train if s == "train" else cfg.max_eval), tokenizer,
                                  cfg.max_length) for s, split in splits.items()}
    return data


def prepare_out_dir(out_dir: str) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"out_dir {str(out)!r} is not writable ({err.strerror}); pass out_dir=<a folder you can write>") from None
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return f"cpu: {model}, {torch.get_num_threads()} threads"


def fmt(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float))


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)
