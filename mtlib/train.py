"""The training loop: one place for multitask, single-task and frozen-encoder training.

Each step draws one batch from every task being trained. Each task's loss is backpropagated on its
own (its batch is its own, so three backward passes cost what one summed backward costs) straight
into row t of a flat T x P gradient buffer for the shared encoder; `surgery.combine` turns the buffer
into one update (sum or PCGrad) and the step's telemetry. The heads keep their own gradients.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import surgery
from .config import Config
from .data import Encoded, TaskSampler, collate
from .models import MultitaskModel, use_bf16


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a NaN loss); the message names the task and the step."""


@dataclass
class Stage:
    """One stage of a pipeline: which tasks, how many epochs, encoder frozen or not."""
    name: str
    tasks: tuple[str, ...]
    epochs: int
    freeze_encoder: bool = False


@dataclass
class StageResult:
    name: str
    best_epoch: int
    best: dict
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0


class JsonlLog:
    """Appends one JSON object per line (step telemetry and epoch metrics)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, **record) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def tell(self) -> int:
        self._f.flush()
        return self._f.tell()

    def close(self) -> None:
        self._f.close()


class FlatGrads:
    """A T x P buffer whose rows are the shared parameters' gradients, one row per task."""

    def __init__(self, params: list[torch.nn.Parameter], n_tasks: int):
        self.params = params
        self.sizes = [p.numel() for p in params]
        self.buffer = torch.zeros(n_tasks, sum(self.sizes), device=params[0].device if params else "cpu")

    def point_grads_at(self, row: torch.Tensor) -> None:
        """Make every shared parameter's .grad a view into `row`, so backward accumulates there."""
        for p, g in zip(self.params, row.split(self.sizes)):
            p.grad = g.view_as(p)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """The resume file of a run: finished stages, RNG states, the log's length and, mid-stage, everything
    the loop needs to go on (model, optimizer, samplers, PCGrad generator, epoch, step, best so far).
    Written atomically (temp file + rename), so a kill mid-write leaves the previous one intact."""

    def __init__(self, path: Path, every: int, log: JsonlLog):
        self.path, self.every, self.log = path, every, log
        self.completed: list[dict] = []

    def save(self, current: dict | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"completed": self.completed, "rng": rng_state(), "log_bytes": self.log.tell(),
                    "current": current}, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict | None:
        return torch.load(self.path, weights_only=False) if self.path.exists() else None


def train_stage(model: MultitaskModel, data: dict[str, dict[str, Encoded]], cfg: Config, stage: Stage,
                device: torch.device, log: JsonlLog, ckpt_path: Path,
                evaluate: Callable[[MultitaskModel, tuple[str, ...]], dict],
                checkpointer: Checkpointer | None = None, resume: dict | None = None) -> StageResult:
    """Train `stage`; after every epoch `evaluate(model, tasks)` on dev; keep (and finally reload) the best epoch.

    With a `checkpointer`, the loop's full state is saved every `checkpointer.every` steps and at each
    epoch's end; `resume` (such a saved state) continues exactly where it was taken.
    """
    start = time.time()
    tasks = stage.tasks
    for p in model.encoder.parameters():
        p.requires_grad_(not stage.freeze_encoder)
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = device.type in ("cuda", "cpu") and all(p.dtype == torch.float32 for p in trainable)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    shared = [] if stage.freeze_encoder else model.shared_parameters()
    flat = FlatGrads(shared, len(tasks)) if shared else None
    generator = torch.Generator().manual_seed(cfg.seed)
    samplers = {t: TaskSampler(data[t]["train"], cfg.batch_size, [cfg.seed, i], bucket=cfg.bucket)
                for i, t in enumerate(tasks)}
    steps = math.ceil(max(len(data[t]["train"]) for t in tasks) / cfg.batch_size)
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch)
    bf16 = use_bf16(cfg, device)
    result, first_epoch, first_step = StageResult(stage.name, -1, {}), 1, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        for t, sampler in samplers.items():
            sampler.load_state_dict(resume["samplers"][t])
        result = StageResult(**resume["result"])
        first_epoch, first_step = resume["epoch"], resume["step"]

    def snapshot(epoch: int, step: int) -> None:
        if checkpointer is not None:
            checkpointer.save({"stage": stage.name, "epoch": epoch, "step": step, "model": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                               "samplers": {t: s.state_dict() for t, s in samplers.items()},
                               "result": vars(result).copy()})

    for epoch in range(first_epoch, stage.epochs + 1):
        if first_step < steps:
            model.train()
            bar = tqdm(range(first_step, steps), desc=f"{stage.name} epoch {epoch}/{stage.epochs}",
                       disable=not cfg.progress, leave=False)
            for step in bar:
                record = train_step(model, data, cfg, tasks, samplers, optimizer, flat, generator, device, bf16,
                                    stage.name, epoch, step, checkpointer)
                log.write(**record)
                bar.set_postfix({k[5:]: f"{v:.3f}" for k, v in record.items() if k.startswith("loss_")})
                if checkpointer is not None and checkpointer.every and (step + 1) % checkpointer.every == 0 \
                        and step + 1 < steps:
                    snapshot(epoch, step + 1)
            metrics = evaluate(model, tasks)
            log.write(type="epoch", stage=stage.name, epoch=epoch, **metrics)
            result.history.append({"epoch": epoch, **metrics})
            if result.best_epoch < 0 or metrics["overall"] > result.best["overall"]:
                result.best_epoch, result.best = epoch, metrics
                save_checkpoint(model, ckpt_path)
            snapshot(epoch, steps)           # epoch done: resuming from here starts the next epoch
        first_step = 0
    load_checkpoint(model, ckpt_path)
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    result.wall_s = time.time() - start
    return result


def train_step(model, data, cfg, tasks, samplers, optimizer, flat, generator, device, bf16, stage, epoch, step,
               checkpointer) -> dict:
    """One step: a batch per task, each task's backward into its row of the flat buffer, combine, AdamW."""
    record = {"type": "step", "stage": stage, "epoch": epoch, "step": step}
    step_start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    if flat is not None:
        flat.buffer.zero_()
    for t_idx, task in enumerate(tasks):
        batch = {k: v.to(device, non_blocking=True) for k, v in collate(data[task]["train"], next(samplers[task])).items()}
        if flat is not None:
            flat.point_grads_at(flat.buffer[t_idx])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(task, model(task, batch), batch["labels"])
        if not torch.isfinite(loss):
            last = f"the last good checkpoint is {checkpointer.path}" if checkpointer and checkpointer.path.exists() \
                else "no checkpoint was written yet"
            raise TrainingError(f"stage {stage!r}, epoch {epoch}, step {step}: the {task} loss is {loss.item()}; "
                                f"lower lr (now {cfg.lr}) or use precision=fp32; {last} (resume=true goes on from it)")
        if loss.requires_grad:        # a frozen encoder + the cosine head leave nothing to train
            loss.backward()
        record[f"loss_{task}"] = loss.item()
    if flat is not None:
        combined, stats = surgery.combine(flat.buffer, cfg.combine, cfg.reduction, generator)
        flat.point_grads_at(combined)
        record.update(stats_record(tasks, stats), norm_combined=combined.norm().item())
    optimizer.step()
    record["step_s"] = round(time.perf_counter() - step_start, 4)
    return record


def stats_record(tasks: tuple[str, ...], stats: surgery.SurgeryStats) -> dict:
    rec = {"conflicts": stats.conflicts, "projections": stats.projections}
    for i, a in enumerate(tasks):
        rec[f"norm_before_{a}"] = stats.norm_before[i].item()
        rec[f"norm_after_{a}"] = stats.norm_after[i].item()
        for j in range(i + 1, len(tasks)):
            rec[f"cos_{a}_{tasks[j]}"] = stats.cosine[i, j].item()
    return rec


def save_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Write the model's weights as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save_model
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)


def load_checkpoint(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_model
    load_model(model, str(path), device=str(next(model.parameters()).device))
