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
from .train import Checkpointer, JsonlLog, Stage, StageResult, load_checkpoint, set_rng_state, train_stage

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
    ckpt_file = out / "checkpoints" / "resume.pt"
    if cfg.resume and not ckpt_file.exists() and (out / "metrics.json").exists():
        finished = json.loads((out / "metrics.json").read_text())
        changed = config_changes(finished.get("config", {}), cfg)
        if not changed:
            print(f"[{cfg.pipeline}] {out} holds a finished run with these settings: loaded it (resume=false trains again)")
            return finished
        print(f"[{cfg.pipeline}] the finished run in {out} used {changed}: training again with the new settings")
    seed_everything(cfg.seed)
    device = pick_device(cfg)
    splits = load_splits(cfg)                # validate the data before spending time on the model
    model, tokenizer = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, cfg.dropout_impl)
    model.to(device)
    data = encode_splits(cfg, splits, tokenizer)
    saved = resume_state(cfg, out, ckpt_file) if cfg.resume else None
    if saved is None:
        (out / "metrics.json").unlink(missing_ok=True)     # a new run: an older run's metrics would mislead
        (out / "metrics.jsonl").unlink(missing_ok=True)
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
    else:
        with open(out / "metrics.jsonl", "r+b") as f:      # drop what was logged after the checkpoint
            f.truncate(saved["log_bytes"])
    log = JsonlLog(out / "metrics.jsonl")
    checkpointer = Checkpointer(ckpt_file, cfg.checkpoint_every, log)
    checkpointer.completed = saved["completed"] if saved else []
    done = {r["name"]: r for r in checkpointer.completed}
    pending = {"rng": saved["rng"] if saved else None, "current": saved["current"] if saved else None}

    def dev_eval(m, tasks):
        return evaluate(m, {t: data[t]["dev"] for t in tasks}, cfg, device)

    def train(stage: Stage) -> StageResult:
        path = out / "checkpoints" / f"{stage.name}.safetensors"
        if stage.name in done:                               # finished before the interruption
            load_checkpoint(model, path)
            return StageResult(**done[stage.name])
        if pending["rng"] is not None:
            set_rng_state(pending["rng"])
        current = pending["current"] if pending["current"] and pending["current"]["stage"] == stage.name else None
        pending.update(rng=None, current=None)
        r = train_stage(model, data, cfg, stage, device, log, path, dev_eval, checkpointer, current)
        checkpointer.completed.append(vars(r).copy())
        checkpointer.save()
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
        past_merge = "multitask" in done or (pending["current"] or {}).get("stage") == "multitask"
        if not past_merge:                                   # (a resumed run logged it already)
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
    ckpt_file.unlink(missing_ok=True)
    print(f"[{cfg.pipeline}] dev {fmt(final.best)}  wall {metrics['wall_s']:.0f}s  -> {out / 'metrics.json'}")
    return metrics


RESUME_IGNORES = ("resume", "progress", "out_dir", "data_dir", "checkpoint_every", "eval_batch_size")


def config_changes(before: dict, cfg: Config) -> str:
    """The settings (but those in RESUME_IGNORES) in which `cfg` differs from a saved config, as
    `name=old (now new), ...`; empty when it is the same run."""
    now = cfg.to_dict()
    return ", ".join(f"{k}={before.get(k)!r} (now {now[k]!r})" for k in now
                     if k not in RESUME_IGNORES and before.get(k) != now[k])


def resume_state(cfg: Config, out: Path, ckpt_file: Path) -> dict | None:
    """The saved state to go on from, after checking the run's config matches the one saved."""
    if not ckpt_file.exists():
        print(f"[{cfg.pipeline}] resume: no checkpoint in {out}; starting from the beginning")
        return None
    changed = config_changes(json.loads((out / "config.json").read_text()), cfg)
    if changed:
        raise ValueError(f"resume: the run in {out} used different {changed}; pass the same values, or a new out_dir")
    return Checkpointer(ckpt_file, 0, None).load()


def load_splits(cfg: Config) -> dict[str, dict[str, D.Split]]:
    """{task: {split: Split}}, validated, cut to max_train / max_eval rows."""
    return {task: {s: split.head(cfg.max_train if s == "train" else cfg.max_eval)
                   for s, split in D.load_task(task, cfg.data_dir, max_bad_fraction=cfg.max_bad_fraction).items()}
            for task in D.TASKS}


def encode_splits(cfg: Config, splits: dict[str, dict[str, D.Split]], tokenizer) -> dict[str, dict[str, D.Encoded]]:
    """{task: {split: Encoded}}, tokenized once with the encoder's tokenizer."""
    return {task: {s: D.encode(split, tokenizer, cfg.max_length) for s, split in by_split.items()}
            for task, by_split in splits.items()}


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
