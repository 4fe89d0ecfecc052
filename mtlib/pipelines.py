"""Pipelines: what the notebooks and the CLI call. `multitask` is rungs 1-4 of the report's ladder
(`combine` x `sts_head`); `novel` is rung 5: single-task x3 -> average -> multitask -> frozen encoder."""
from __future__ import annotations

import json
import platform
import random
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data as D
from . import store
from .config import DEFAULT_ENCODER, Config, field_defaults
from .encoders import SAW_QUORA, weights_sha256
from .evaluate import METRIC, evaluate, write_predictions
from .files import atomic_write_text, compress_log
from .merge import merge_single_task_states
from .models import arithmetic, build_model, pick_device, resolve_encoder
from .train import (Checkpointer, JsonlLog, Stage, StageResult, gradient_cosines, load_checkpoint, set_rng_state,
                    train_stage)

def quora_note(encoder: str = DEFAULT_ENCODER) -> str:
    """The caveat of a run's Quora numbers, naming its encoder (a name, alias or folder)."""
    name = DEFAULT_ENCODER if encoder == "default" else Path(encoder).name
    known = name in SAW_QUORA
    return ("Quora numbers: the shared data's Quora train/dev/test are a split of the official quora-dev.csv (20,214 "
            f"pairs), not the official 141k-pair train set; and {name if known else encoder} {'was' if known else 'may have been'}"
            f" pre-trained on sentence pairs that include Quora duplicates, so its Quora accuracy {'is' if known else 'may be'} "
            "optimistic.")


def make_config(cfg: Config | dict | None = None, **params: Any) -> Config:
    """A Config from a Config, a dict of parameters (a notebook's cell, the CLI) and/or keywords."""
    if isinstance(cfg, Config):
        return cfg.replace(**params) if params else cfg
    return Config.from_dict({**(cfg or {}), **params})


def run(cfg: Config | dict | None = None, **params: Any) -> dict:
    """Run `cfg.pipeline`; write metrics.json, metrics.jsonl, predictions/ and checkpoints to out_dir.

    With resume=true: a finished run whose config matches is loaded, not trained again; an interrupted one goes on
    from its checkpoint. Otherwise the folder's previous outputs are removed first, so nothing stale survives.
    """
    cfg = make_config(cfg, **params)
    start, cpu_start = time.time(), time.process_time()
    commit = git_commit()                    # the code that trains: the checkout may move on during a long run
    out = RunDir(cfg)
    device = pick_device(cfg)
    key = store.device_key(device)
    store.check(out.path, key)               # another device's run is never loaded, resumed or cleared here
    if cfg.resume and (out.path / "metrics.json").exists():
        before, now = out.metrics()["config"], cfg.to_dict()
        used, using = out.metrics().get("precision"), arithmetic_here(cfg)
        changed = changed_keys(before, now, used, using)
        if not changed:
            print(f"[{cfg.pipeline}] {out.path} holds a finished run with these settings: loaded it "
                  "(resume=false trains again)")
            metrics = out.metrics()
            metrics["config"]["out_dir"] = cfg.out_dir    # where it lies now: a run folder can be moved or renamed
            return metrics
        print(f"[{cfg.pipeline}] the finished run in {out.path} used {describe(changed, before, now, used, using)}: "
              "training again with the new settings")
    seed_everything(cfg.seed)
    store.claim(out.path, key, cfg, arithmetic(cfg, device), commit)
    splits = load_splits(cfg)                # validate the data before spending time on the model
    model, tokenizer = model_for(cfg, device)
    data = encode_splits(cfg, splits, tokenizer)
    stages = Stages(cfg, out, model, data, device)
    results = PIPELINES[cfg.pipeline](stages)
    stages.log.close()

    final = results[-1]
    write_predictions(model, {(t, s): data[t][s] for t in D.TASKS for s in ("dev", "test")}, cfg, device, out.path)
    if cfg.noise_batches:                    # 02's noise floor on the final model, while it is in memory
        noise = gradient_cosines(model, data, cfg, device, cfg.noise_batches, cfg.seed)
        atomic_write_text(out.path / "gradient_noise.json", json.dumps(noise))
    metrics = {
        **final.best,
        "final_stage": final.name,
        "best_epoch": final.best_epoch,
        "stages": [vars(r) for r in results],
        # dev accuracy of always answering the most common training label: what a model that learned nothing scores
        "majority": {METRIC[t]: D.majority_class(data[t]["train"], data[t]["dev"])[1] for t in ("sst", "para")},
        "config": cfg.to_dict(),
        "device": device_name(device),
        "device_key": key,
        "precision": arithmetic(cfg, device),
        "encoder": cfg.encoder,
        "encoder_path": (encoder_path := resolve_encoder(cfg.encoder)),
        "encoder_sha256": weights_sha256(encoder_path),    # tells two copies of "one" encoder apart
        "data_dir": str(D.resolve_data_dir(cfg.data_dir)),
        "versions": {"torch": torch.__version__, "transformers": _version("transformers"),
                     "python": platform.python_version(), "mtlib": commit},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - start, 1),
        # CPU seconds of this process, all threads: cpu_s / (wall_s x threads) well below 1 on a CPU run means the
        # machine was shared (another job, a test run), and wall_s is not this run's speed.
        "cpu_s": round(time.process_time() - cpu_start, 1), "threads": torch.get_num_threads(),
        "resumed": stages.resumed,                  # wall_s then counts only the process that finished the run
        "note": quora_note(cfg.encoder),
    }
    out.finish(metrics)
    metrics = out.metrics()                  # as a later resume=true loads it (JSON types)
    print(f"[{cfg.pipeline}] dev {fmt(final.best)}  wall {metrics['wall_s']:.0f}s  -> {out.path / 'metrics.json'}")
    return metrics


def multitask(stages: "Stages") -> list[StageResult]:
    """Rungs 1-4: one multitask stage (`combine` x `sts_head`)."""
    return [stages.train(Stage("multitask", D.TASKS, stages.cfg.epochs))]


def novel(stages: "Stages") -> list[StageResult]:
    """Rung 5: three single-task models from the same weights -> their encoders averaged (each head from its own
    model) -> multitask -> the heads alone on a frozen encoder. An epoch count of 0 skips its stage."""
    cfg, model, results = stages.cfg, stages.model, []
    if cfg.single_task_epochs:
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        singles = {}
        for task in D.TASKS:
            model.load_state_dict(initial)
            results.append(stages.train(Stage(f"single_{task}", (task,), cfg.single_task_epochs)))
            singles[task] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(merge_single_task_states(singles, initial, cfg.merge, cfg.merge_lambda,
                                                       cfg.merge_density))
        del singles, initial
        stages.log_merged()
    results.append(stages.train(Stage("multitask", D.TASKS, cfg.epochs)))
    if cfg.frozen_epochs:
        results.append(stages.train(Stage("frozen", D.TASKS, cfg.frozen_epochs, freeze_encoder=True)))
    return results


def control(stages: "Stages") -> list[StageResult]:
    """The pre-training control: the encoder as shipped, frozen, and only the heads trained on its features
    (frozen_epochs of them; a cosine STS head has no weights, so STS is the encoder's zero-shot score). What a
    fine-tuned row reaches beyond it is what fine-tuning adds."""
    return [stages.train(Stage("frozen", D.TASKS, stages.cfg.frozen_epochs, freeze_encoder=True))]


PIPELINES = {"multitask": multitask, "novel": novel, "control": control}


class RunDir:
    """A run's out_dir: config.json, metrics.jsonl, checkpoints/, predictions/ and, once finished, metrics.json."""

    OUTPUTS = ("metrics.json", "metrics.jsonl", "metrics.jsonl.gz", "config.json", "checkpoints", "predictions",
               "gradient_noise.json", "probabilities.npz")

    def __init__(self, cfg: Config):
        self.cfg, self.path = cfg, prepare_out_dir(cfg.out_dir)
        self.resume_file = self.path / "checkpoints" / "resume.pt"

    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def saved_state(self, using: str) -> dict | None:
        """The resume checkpoint to go on from (config and arithmetic checked: `using` is this machine's,
        `models.arithmetic`), or None after clearing the folder for a new run."""
        saved = resume_state(self.cfg, self.path, self.resume_file, using) if self.cfg.resume else None
        if saved is None:
            self.clear()
            atomic_write_text(self.path / "config.json", json.dumps(self.cfg.to_dict(), indent=2))
        else:
            with open(self.path / "metrics.jsonl", "r+b") as f:      # drop what was logged after the checkpoint
                f.truncate(saved["log_bytes"])
        return saved

    def clear(self) -> None:
        """Remove a previous run's outputs, so that a crash of this one can never leave them to be read as its own."""
        for name in self.OUTPUTS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    def finish(self, metrics: dict) -> None:
        compress_log(self.path / "metrics.jsonl")
        atomic_write_text(self.path / "metrics.json", json.dumps(metrics, indent=2))
        self.resume_file.unlink(missing_ok=True)


class Stages:
    """Trains a pipeline's stages in order into one run folder, skipping those an interrupted run had finished
    and going on mid-stage from the resume checkpoint."""

    def __init__(self, cfg: Config, out: RunDir, model, data, device):
        self.cfg, self.out, self.model, self.data, self.device = cfg, out, model, data, device
        saved = out.saved_state(arithmetic(cfg, device))
        self.log = JsonlLog(out.path / "metrics.jsonl")
        self.checkpointer = Checkpointer(out.resume_file, cfg.checkpoint_every, self.log, arithmetic(cfg, device))
        self.checkpointer.completed = saved["completed"] if saved else []
        self.done = {r["name"]: r for r in self.checkpointer.completed}
        self.pending_rng = saved["rng"] if saved else None
        self.current = saved["current"] if saved else None
        self.resumed = saved is not None
        if saved:          # mid-stage: its stage, epoch and step; else the stages it had finished
            at = self.current or {"stage": "the one after " + (saved["completed"] or [{"name": "none"}])[-1]["name"]}
            print(f"[{cfg.pipeline}] resume: going on in {out.path} from "
                  + ", ".join(f"{k} {at[k]}" for k in ("stage", "epoch", "step") if k in at), flush=True)

    def dev_eval(self, model, tasks) -> dict:
        return evaluate(model, {t: self.data[t]["dev"] for t in tasks}, self.cfg, self.device)

    def train(self, stage: Stage) -> StageResult:
        path = self.out.path / "checkpoints" / f"{stage.name}.safetensors"
        if stage.name in self.done:                          # finished before the interruption
            load_checkpoint(self.model, path)
            return StageResult(**self.done[stage.name])
        if self.pending_rng is not None:
            set_rng_state(self.pending_rng)
        current = self.current if self.current and self.current["stage"] == stage.name else None
        self.pending_rng = self.current = None
        r = train_stage(self.model, self.data, self.cfg, stage, self.device, self.log, path, self.dev_eval,
                        self.checkpointer, current)
        self.checkpointer.completed.append(vars(r).copy())
        self.checkpointer.save()
        print(f"[{stage.name}] kept epoch {r.best_epoch} ({self.cfg.select}): {fmt(r.best)}  ({r.wall_s:.0f}s)")
        return r

    def log_merged(self) -> None:
        """Dev metrics of the averaged model before any multitask step (a resumed run logged them already)."""
        if "multitask" in self.done or (self.current or {}).get("stage") == "multitask":
            return
        merged = self.dev_eval(self.model, D.TASKS)
        self.log.write(type="epoch", stage="merged", epoch=0, **merged)
        print(f"[merged] {fmt(merged)}")


RESUME_IGNORES = ("resume", "progress", "out_dir", "data_dir", "checkpoint_every", "eval_batch_size")


def one_epoch(config: dict) -> bool:
    """Does every stage of this config train a single epoch (so that its last epoch is the one it would select)?"""
    counts = [config.get("epochs")] + ([config.get("single_task_epochs"), config.get("frozen_epochs")]
                                       if config.get("pipeline") == "novel" else [])
    counts += [config.get("frozen_epochs")] if config.get("pipeline") == "control" else []
    return all(c is not None and c <= 1 for c in counts)


def changed_keys(before: dict, now: dict, used: str | None = None, using: str | None = None,
                 mid_run: bool = False) -> list[str]:
    """Config keys whose values differ, leaving out those that change no result. A key the earlier run's config
    lacks (a knob added since) counts as that knob's default, which keeps the old behaviour.

    `precision` also matches where the arithmetic it meant is the same (`used`, the earlier run's, and `using`,
    this machine's, see `models.arithmetic`): a finished `auto` run that trained in fp32 is the run that
    precision=fp32 asks for. `mid_run` (going on from a checkpoint): the arithmetic alone decides where both are
    known, so that no run changes precision halfway (`auto` is bf16 on one machine and fp32 on another)."""
    defaults = field_defaults(saved=True)
    known = bool(used and using)

    def same(k):
        if k == "precision" and known and (mid_run or used == using):
            return used == using
        if k == "select" and one_epoch(now):     # one epoch a stage: its last is its best, the same run
            return True
        return before.get(k, defaults.get(k)) == now[k]
    return [k for k in now if k not in RESUME_IGNORES and not same(k)]


def arithmetic_here(cfg: Config) -> str | None:
    """What `precision` means for `cfg` on this machine (`models.arithmetic`); None where its device is not here
    (device=cuda on a machine without a GPU: a finished run still loads, by its config)."""
    try:
        return arithmetic(cfg, pick_device(cfg))
    except ValueError:
        return None


def describe(changed: list[str], before: dict, now: dict, used: str | None = None, using: str | None = None) -> str:
    """"lr=1e-05 (now 5e-05), seed=0 (now 1)": the changed keys, old and new values (precision: with what it meant)."""
    return ", ".join(f"precision={before.get(k)!r}, {used} (now {now[k]!r}, {using} on this machine)"
                     if k == "precision" and used and using else f"{k}={before.get(k)!r} (now {now[k]!r})"
                     for k in changed)


def resume_state(cfg: Config, out: Path, ckpt_file: Path, using: str | None = None) -> dict | None:
    """The saved state to go on from, after checking the run's config matches the one saved, and the arithmetic
    it trained in (a checkpoint records it) the one `using` names."""
    if not ckpt_file.exists():
        print(f"[{cfg.pipeline}] resume: no checkpoint in {out}; starting from the beginning")
        return None
    missing = [name for name in ("config.json", "metrics.jsonl") if not (out / name).is_file()]
    if missing:        # e.g. a folder copied without them: the checkpoint cannot be checked against its config
        raise ValueError(f"resume: {out} has a checkpoint but no {' or '.join(missing)}; restore the run's files, "
                         f"or delete {ckpt_file} to start the run over")
    before = json.loads((out / "config.json").read_text())
    now = cfg.to_dict()
    changed = [k for k in changed_keys(before, now) if k != "precision"]
    saved = None if changed else Checkpointer(ckpt_file, 0, None).load()
    used = saved.get("precision") if saved else None   # None: a checkpoint from before it was recorded
    changed += changed_keys(before, now, used, using, mid_run=True) if saved else []
    if changed:
        raise ValueError(f"resume: the run in {out} used different {describe(changed, before, now, used, using)}; "
                         "pass the same values (precision=fp32 or bf16 names the arithmetic), or a new out_dir")
    return saved


def model_for(cfg: Config, device: torch.device):
    """The model and tokenizer `cfg` describes, on `device`."""
    model, tokenizer = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, cfg.dropout_impl,
                                   cfg.para_head, cfg.sts_features, cfg.sts_loss)
    return model.to(device), tokenizer


def run_config(out: Path, kind: str = "finished run") -> Config:
    """The Config a finished run in `out` trained with (its config.json), for tools that rebuild its models."""
    if not (out / "config.json").exists():
        raise FileNotFoundError(f"{out / 'config.json'}: not a run folder; give the out_dir of a {kind}")
    return Config.from_dict({**json.loads((out / "config.json").read_text()), "progress": False})


def load_splits(cfg: Config) -> dict[str, dict[str, D.Split]]:
    """{task: {split: Split}}, validated, cut to max_train / max_eval rows."""
    return {task: {s: split.head(cfg.max_train if s == "train" else cfg.max_eval)
                   for s, split in D.load_task(task, cfg.data_dir, max_bad_fraction=cfg.max_bad_fraction).items()}
            for task in D.TASKS}


def encode_splits(cfg: Config, splits: dict[str, dict[str, D.Split]], tokenizer) -> dict[str, dict[str, D.Encoded]]:
    """{task: {split: Encoded}}, tokenized once with the encoder's tokenizer."""
    return {task: {s: encode_split(cfg, split, tokenizer) for s, split in by_split.items()}
            for task, by_split in splits.items()}


def encode_split(cfg: Config, split: D.Split, tokenizer) -> D.Encoded:
    """One split tokenized as `cfg`'s heads take it: pairs apart, or as one sequence for a cross head."""
    return D.encode(split, tokenizer, cfg.max_length, joint=cfg.joint(split.task))


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
    return f"cpu: {store.cpu_model()}, {torch.get_num_threads()} threads"


def git_commit() -> str:
    """The mtlib source's git commit (with '+changes' when the tree differs from it), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mtlib"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+changes" if dirty else "")) if sha else "unknown"


def fmt(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float))


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)
