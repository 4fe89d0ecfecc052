"""The training loop: one place for multitask, single-task and frozen-encoder training.

Each step draws one batch from every task being trained. Each task's loss is backpropagated on its own (its batch is
its own, so three backward passes cost what one summed backward costs) straight into task t's rows of `TaskGrads` (a
flat T x P buffer plus the touched word-embedding rows); `surgery` turns them into one update (`combine`: sum, PCGrad
or a torchjd weighting) and the step's telemetry. The heads keep their own gradients. A single-task stage needs no
combining and backpropagates straight into .grad; a frozen-encoder stage trains the heads on encoder outputs cached
once (`FrozenFeatures`). Each step record carries its seconds per phase (`PhaseClock`), which `make profile` sums.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
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
from .models import MultitaskModel, training_attention, use_bf16


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
    seconds: dict = field(default_factory=dict)     # outside the steps: eval, checkpoint, log, features


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


class TaskGrads:
    """Each task's gradient of the shared encoder, laid out so that surgery is cheap.

    Dense parameters: a T x P buffer whose row t is task t's gradient, copied there in one pass after
    task t's backward (which starts from .grad = None, so autograd hands over its gradient tensors
    without accumulating into zeros). The word-embedding matrix (half of MiniLM's parameters, of which a
    step touches only the rows of its tokens) backpropagates a sparse gradient instead; the touched rows
    of all tasks form a small T x (U*H) block. Surgery then passes over the dense buffer and the touched
    rows only; the result is the same as with the whole matrix in the buffer, because untouched rows are
    zero for every task.
    """

    def __init__(self, params: list[torch.nn.Parameter], n_tasks: int, embedding: torch.nn.Module | None = None):
        in_params = isinstance(embedding, torch.nn.Embedding) and any(p is embedding.weight for p in params)
        self.embedding = embedding if in_params else None
        self.params = [p for p in params if self.embedding is None or p is not self.embedding.weight]
        self.sizes = [p.numel() for p in self.params]
        device = params[0].device if params else "cpu"
        self.buffer = torch.zeros(n_tasks, sum(self.sizes), device=device)
        self.combined = torch.zeros(sum(self.sizes), device=device)
        self.sparse: list[torch.Tensor] = []               # this step's coalesced embedding gradients
        self.weightings: dict[tuple[str, str], torch.nn.Module] = {}   # torchjd weighting per (combine, options),
        # kept across steps: GradVac's state lives in it (saved in the resume checkpoint)
        if self.embedding is not None:
            self._was_sparse, self.embedding.sparse = self.embedding.sparse, True
            self.embedding_grad = torch.zeros_like(self.embedding.weight)   # dense, for the optimizer
            self._rows = torch.zeros(0, dtype=torch.long, device=device)     # rows written last step

    @classmethod
    def for_model(cls, model: MultitaskModel, n_tasks: int) -> "TaskGrads":
        """For the shared encoder of `model`, its input embedding (if an nn.Embedding) kept sparse."""
        return cls(model.shared_parameters(), n_tasks, model.encoder.get_input_embeddings())

    def point_grads_at(self, flat: torch.Tensor) -> None:
        """Make every dense parameter's .grad a view into `flat` (e.g. the combined update)."""
        for p, g in zip(self.params, flat.split(self.sizes)):
            p.grad = g.view_as(p)

    def start_step(self) -> None:
        self.sparse = []

    def before_backward(self) -> None:
        for p in self.params:
            p.grad = None
        if self.embedding is not None:
            self.embedding.weight.grad = None

    def after_backward(self, task: int) -> None:
        """Copy the dense gradients into row `task` (zeros where the task did not reach a parameter)."""
        torch.cat([p.grad.flatten() if p.grad is not None else p.new_zeros(p.numel()) for p in self.params],
                  out=self.buffer[task])
        if self.embedding is not None:
            w = self.embedding.weight
            g = w.grad if w.grad is not None else torch.sparse_coo_tensor(size=w.shape, device=w.device)
            self.sparse.append(g.coalesce())                   # coalesce: one entry per touched row
            w.grad = None

    def touched_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows U, T x U x H): the word-embedding rows any task touched and each task's gradient on them."""
        rows, where = torch.cat([g.indices()[0] for g in self.sparse]).unique(return_inverse=True)
        block = self.embedding.weight.new_zeros(len(self.sparse), len(rows), self.embedding.weight.shape[1])
        for t, (pos, g) in enumerate(zip(where.split([g.indices().shape[1] for g in self.sparse]), self.sparse)):
            block[t, pos] = g.values()
        return rows, block

    def combine(self, method: str, reduction: str, generator: torch.Generator, options: str = "") -> surgery.SurgeryStats:
        """Combine the task gradients (any of surgery.METHODS, with its `options`) and point every shared
        parameter's .grad at the result."""
        blocks = [self.buffer]
        if self.embedding is not None:
            rows, block = self.touched_rows()
            blocks.append(block.flatten(1))
        weighting = None
        if method in surgery.WEIGHTINGS:
            if (method, options) not in self.weightings:
                self.weightings[method, options] = surgery.make_weighting(method, options)
            weighting = self.weightings[method, options]
        w, stats = surgery.weights(surgery.gram_matrix(blocks), method, reduction, generator, weighting=weighting)
        self.point_grads_at(surgery.weighted_sum(self.buffer, w, out=self.combined))
        if self.embedding is not None:
            self.embedding_grad.index_fill_(0, self._rows, 0.0)
            self.embedding_grad.index_copy_(0, rows, surgery.weighted_sum(blocks[1], w).view(len(rows), -1))
            self._rows = rows
            self.embedding.weight.grad = self.embedding_grad
        return stats

    def close(self) -> None:
        """Give the embedding back its own gradient mode."""
        if self.embedding is not None:
            self.embedding.sparse = self._was_sparse


class FrozenFeatures:
    """Pooled encoder outputs of the training rows a frozen-encoder stage will draw, computed once up front.

    Such a stage treats the encoder as a fixed feature extractor: in eval mode (no dropout inside it, whatever
    `dropout` is), so its output for a row cannot change during the stage. One length-sorted pass in large batches
    over the rows the stage's batches will hold (`rows`, from peeking at the samplers) replaces an encoder forward
    per step; rows drawn twice cost nothing the second time. The heads keep their own dropout. A task whose head
    has no parameters (the cosine STS head) has nothing to train there and is left out of the stage's steps.
    """

    def __init__(self, model: MultitaskModel, data: dict[str, dict[str, Encoded]], rows: dict[str, np.ndarray],
                 cfg: Config, device: torch.device):
        self.tasks = tuple(t for t in rows if model.head_trains(t))
        self.features: dict[str, torch.Tensor] = {}
        was_training = model.training
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, device)):
            for task in self.tasks:
                enc = data[task]["train"]
                needed = np.unique(rows[task])
                needed = needed[np.argsort(enc.lengths[needed], kind="stable")]     # little padding per batch
                out = None
                for start in range(0, len(needed), cfg.eval_batch_size):
                    chunk = needed[start: start + cfg.eval_batch_size]
                    batch = {k: v.to(device) for k, v in collate(enc, chunk).items() if k != "labels"}
                    e = model.embed(**batch).float()
                    k = e.shape[0] // len(chunk)                                   # sequences per row
                    if out is None:
                        out = torch.zeros(k, len(enc), e.shape[-1], device=device)
                    out[:, torch.from_numpy(chunk).to(device)] = e.view(k, len(chunk), -1)
                self.features[task] = out
        model.train(was_training)

    def batch(self, task: str, rows: np.ndarray) -> torch.Tensor:
        """The rows' pooled embeddings in the layout `model.head` takes (pairs: all u rows, then all v rows)."""
        f = self.features[task]
        return f[:, torch.from_numpy(rows).to(f.device)].reshape(-1, f.shape[-1])


def upcoming_rows(sampler: TaskSampler, n: int) -> np.ndarray:
    """The rows of a sampler's next n batches, without moving it."""
    state = sampler.state_dict()
    rows = np.concatenate([next(sampler) for _ in range(n)]) if n else np.zeros(0, dtype=np.int64)
    sampler.load_state_dict(state)
    return rows


def gradient_cosines(model: MultitaskModel, data: dict[str, dict[str, Encoded]], cfg: Config, device: torch.device,
                     n_batches: int = 16, seed: int = 0) -> list[dict]:
    """Cosines between task gradients of the shared encoder, measured on a fixed model: for each of `n_batches`
    rounds, every task's gradient on a fresh training batch. Rows: (round, task a, task b, cosine) for every pair of
    tasks in a round, and for one task on rounds 2i and 2i+1: the noise floor, i.e. how similar two gradients of one
    task are when only the batch differs. Disjoint pairs of rounds make the n_batches / 2 floor values of a task
    independent, and keep two rounds of gradients in memory rather than all of them."""
    model.train()
    shared = model.shared_parameters()
    samplers = {t: TaskSampler(data[t]["train"], cfg.batch_size, [seed, 1000 + i], bucket=cfg.bucketed(t), pool=cfg.bucket_pool)
                for i, t in enumerate(data)}
    # rounds: at most one pass of each sampler, made even (a small train set would cycle and pair overlapping batches)
    n_batches = min(n_batches, *(len(s.batches) for s in samplers.values())) // 2 * 2
    tasks, rows, previous = list(data), [], []
    for r in range(n_batches):
        grads = []
        for task in tasks:
            batch = {k: v.to(device) for k, v in collate(data[task]["train"], next(samplers[task])).items()}
            with training_attention(device), torch.autocast(device.type, dtype=torch.bfloat16,
                                                             enabled=use_bf16(cfg, device)):
                loss = model.loss(task, model(task, batch), batch["labels"])
            g = torch.autograd.grad(loss, shared, allow_unused=True)
            grads.append([torch.zeros_like(p) if x is None else x.to_dense() if x.is_sparse else x for x, p in zip(g, shared)])
        # one fp64 Gram matrix, parameter by parameter, of this round's gradients (and, on odd rounds, the previous)
        both, n = grads + (previous if r % 2 else []), len(tasks)
        cos = surgery.cosines(surgery.gram_matrix([torch.stack([g[k].flatten() for g in both]) for k in range(len(shared))]))
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)] + ([(n + i, i) for i in range(n)] if r % 2 else [])
        rows += [{"round": r - (i >= n), "round_b": r - (j >= n), "task_a": tasks[i % n], "task_b": tasks[j % n],
                  "cosine": float(cos[i, j])} for i, j in pairs]
        previous = grads
    return rows


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
    """The resume file of a run: finished stages, RNG states, the log's length, the arithmetic it trains in
    (`models.arithmetic`: a run goes on in the precision it began in) and, mid-stage, everything the loop needs to go on
    (model, optimizer, samplers, PCGrad generator, epoch, step, best so far). Written atomically (temp file + rename),
    so a kill mid-write leaves the previous one intact."""

    def __init__(self, path: Path, every: int, log: JsonlLog, precision: str | None = None):
        self.path, self.every, self.log, self.precision = path, every, log, precision
        self.completed: list[dict] = []

    def save(self, current: dict | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"completed": self.completed, "rng": rng_state(), "log_bytes": self.log.tell(),
                    "current": current, "precision": self.precision}, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict | None:
        return torch.load(self.path, weights_only=False) if self.path.exists() else None


def train_stage(model: MultitaskModel, data: dict[str, dict[str, Encoded]], cfg: Config, stage: Stage,
                device: torch.device, log: JsonlLog, ckpt_path: Path,
                evaluate: Callable[[MultitaskModel, tuple[str, ...]], dict],
                checkpointer: Checkpointer | None = None, resume: dict | None = None) -> StageResult:
    """Train `stage`; after every epoch `evaluate(model, tasks)` on dev; keep (and finally reload) the best epoch on
    dev, or with cfg.select="last" the last (`result.best` is the kept epoch's metrics either way).

    With a `checkpointer`, the loop's full state is saved every `checkpointer.every` steps and at each
    epoch's end; `resume` (such a saved state) continues exactly where it was taken.
    """
    start = time.time()
    tasks = stage.tasks
    for p in model.encoder.parameters():
        p.requires_grad_(not stage.freeze_encoder)
    groups = param_groups(model, cfg)
    fused = device.type in ("cuda", "cpu") and all(p.dtype == torch.float32 for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    # per-task gradient rows only where there is something to combine: several tasks and a trainable encoder
    # (one task's gradient is its own update, so a single-task stage backpropagates straight into .grad)
    grads = TaskGrads.for_model(model, len(tasks)) if len(tasks) > 1 and not stage.freeze_encoder else None
    generator = torch.Generator().manual_seed(cfg.seed)
    samplers = {t: TaskSampler(data[t]["train"], cfg.batch_size, [cfg.seed, i], bucket=cfg.bucketed(t), pool=cfg.bucket_pool)
                for i, t in enumerate(tasks)}
    steps = math.ceil(max(len(data[t]["train"]) for t in tasks) / cfg.batch_size)     # one pass over the largest set
    if len(tasks) > 1 and (cfg.steps_per_epoch or 0) > steps:         # a cap past the pass trains no more: say so
        print(f"[{stage.name}] steps_per_epoch={cfg.steps_per_epoch} > one pass ({steps} steps): raise epochs for more")
    steps = min(steps, cfg.steps_per_epoch or steps)
    scheduler = None if cfg.schedule == "constant" else linear_schedule(optimizer, cfg.warmup, stage.epochs * steps)
    bf16 = use_bf16(cfg, device)
    averaged = weight_average(model, cfg.ema) if cfg.ema and not stage.freeze_encoder else None
    kept = model if averaged is None else averaged.module        # the weights evaluated and kept as the best
    result, first_epoch, first_step = StageResult(stage.name, -1, {}), 1, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        if averaged is not None:
            averaged.load_state_dict(resume["averaged"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        if grads is not None:
            grads.weightings = resume.get("weightings", {})      # GradVac's EMA state
        for t, sampler in samplers.items():
            sampler.load_state_dict(resume["samplers"][t])
        result = StageResult(**resume["result"])
        first_epoch, first_step = resume["epoch"], resume["step"]

    spent = result.seconds          # seconds outside the steps (evaluation, checkpoints, logging), for the profile
    for key in ("eval", "checkpoint", "log", "features"):
        spent.setdefault(key, 0.0)
    features = None
    if stage.freeze_encoder:
        t0 = time.perf_counter()
        remaining = (stage.epochs - first_epoch + 1) * steps - first_step
        features = FrozenFeatures(model, data, {t: upcoming_rows(samplers[t], remaining) for t in tasks
                                                if model.head_trains(t)}, cfg, device)
        spent["features"] += time.perf_counter() - t0

    def snapshot(epoch: int, step: int) -> None:
        if checkpointer is not None:
            t0 = time.perf_counter()
            checkpointer.save({"stage": stage.name, "epoch": epoch, "step": step, "model": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                               "scheduler": scheduler.state_dict() if scheduler is not None else None,
                               "weightings": grads.weightings if grads is not None else {},
                               "averaged": averaged.state_dict() if averaged is not None else None,
                               "samplers": {t: s.state_dict() for t, s in samplers.items()},
                               "result": vars(result).copy()})
            spent["checkpoint"] += time.perf_counter() - t0

    try:
        for epoch in range(first_epoch, stage.epochs + 1):
            if first_step < steps:
                model.train()
                bar = tqdm(range(first_step, steps), desc=f"{stage.name} epoch {epoch}/{stage.epochs}",
                           disable=not cfg.progress, leave=False)
                for step in bar:
                    record = train_step(model, data, cfg, tasks, samplers, optimizer, grads, generator, device, bf16,
                                        stage.name, epoch, step, checkpointer, features)
                    record["lr"] = optimizer.param_groups[0]["lr"]      # the lr this step used (the encoder's where it trains)
                    if scheduler is not None:
                        scheduler.step()
                    if averaged is not None:
                        averaged.update_parameters(model)
                    t0 = time.perf_counter()
                    log.write(**record)
                    bar.set_postfix({k[5:]: f"{v:.3f}" for k, v in record.items() if k.startswith("loss_")})
                    spent["log"] += time.perf_counter() - t0
                    if checkpointer is not None and checkpointer.every and (step + 1) % checkpointer.every == 0 \
                            and step + 1 < steps:
                        snapshot(epoch, step + 1)
                t0 = time.perf_counter()
                metrics = evaluate(kept, tasks)
                spent["eval"] += time.perf_counter() - t0
                log.write(type="epoch", stage=stage.name, epoch=epoch, **metrics)
                result.history.append({"epoch": epoch, **metrics})
                if result.best_epoch < 0 or cfg.select == "last" or better(metrics["overall"], result.best["overall"]):
                    result.best_epoch, result.best = epoch, metrics
                    t0 = time.perf_counter()
                    save_checkpoint(kept, ckpt_path)
                    spent["checkpoint"] += time.perf_counter() - t0
                snapshot(epoch, steps)           # epoch done: resuming from here starts the next epoch
            first_step = 0
    finally:
        if grads is not None:
            grads.close()
    load_checkpoint(model, ckpt_path)
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    result.wall_s = time.time() - start
    return result


def better(new: float, best: float) -> bool:
    """Is `new` a better dev score than `best`? A NaN (undefined STS r) is worse than any number."""
    return (not math.isnan(new)) and (math.isnan(best) or new > best)


def weight_average(model: MultitaskModel, decay: float):
    """An exponential moving average of `model`'s parameters (torch's AveragedModel: a copy of the model, updated
    after every optimizer step as avg <- decay * avg + (1 - decay) * weights; the first update copies them)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def param_groups(model: MultitaskModel, cfg: Config) -> list[dict]:
    """AdamW's parameter groups: the trainable encoder parameters, then the heads' at cfg.head_lr (None: cfg.lr).

    The encoder's top layer (and anything above it, a pooler) trains at cfg.lr; with layer_decay < 1 (layer-wise
    lr decay, as in ELECTRA, Clark et al. 2020) each layer below at layer_decay times the one above, the embeddings
    below the bottom layer. Groups with nothing to train are left out (a frozen encoder; the cosine head alone)."""
    layers = model.encoder.config.num_hidden_layers
    by_depth: dict[int, list] = {}
    for name, p in model.encoder.named_parameters():
        if p.requires_grad:
            by_depth.setdefault(layer_depth(name, layers), []).append(p)
    groups = [{"params": by_depth[d], "lr": cfg.lr * cfg.layer_decay ** d} for d in sorted(by_depth)]
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    if heads:
        groups.append({"params": heads, "lr": cfg.lr if cfg.head_lr is None else cfg.head_lr})
    return groups


def layer_depth(name: str, layers: int) -> int:
    """How many layers an encoder parameter lies below the top: 0 in the last transformer layer (or above it),
    `layers` in the embeddings. Layers are found by their `layer.<i>.` name (BERT, RoBERTa, DistilBERT, ...)."""
    found = re.search(r"(?:^|\.)layer\.(\d+)\.", name)
    if found:
        return layers - 1 - int(found.group(1))
    return layers if "embeddings" in name else 0


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: float, total: int):
    """Linear warm-up over round(warmup * total) steps to cfg.lr, then linear decay to 0 at `total`
    (transformers' get_linear_schedule_with_warmup); stepped once after every optimizer step."""
    from transformers import get_linear_schedule_with_warmup
    return get_linear_schedule_with_warmup(optimizer, round(warmup * total), total)


def train_step(model, data, cfg, tasks, samplers, optimizer, grads, generator, device, bf16, stage, epoch, step,
               checkpointer, features: "FrozenFeatures | None" = None) -> dict:
    """One step: a batch per task, all forwards in one autocast region, then each task's backward into its own
    gradient rows, combine, AdamW. The record carries the step's seconds per phase (t_data, t_forward,
    t_backward, t_surgery: gradient copy + Gram + combine, t_optimizer), the profile `make profile` reads back."""
    record = {"type": "step", "stage": stage, "epoch": epoch, "step": step}
    clock = PhaseClock()
    optimizer.zero_grad(set_to_none=True)
    if grads is not None:
        grads.start_step()
    losses = {}
    with training_attention(device), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        # one autocast region for all tasks: each weight is cast to bf16 once a step
        for task in tasks:
            if features is None:
                batch = {k: v.to(device, non_blocking=True) for k, v in collate(data[task]["train"], next(samplers[task])).items()}
                clock.lap("data")
                losses[task] = model.loss(task, model(task, batch), batch["labels"])
            elif task in features.tasks:            # frozen encoder: its cached outputs go straight to the head
                rows = next(samplers[task])
                labels = torch.from_numpy(data[task]["train"].labels[rows]).to(device)
                clock.lap("data")
                losses[task] = model.loss(task, model.head(task, features.batch(task, rows)), labels)
            clock.lap("forward")
    for t_idx, (task, loss) in enumerate(losses.items()):
        if not torch.isfinite(loss):
            raise TrainingError(f"stage {stage!r}, epoch {epoch}, step {step}: the {task} loss is {loss.item()}; "
                                f"lower lr (now {cfg.lr}) or use precision=fp32; {_resume_hint(checkpointer)}")
        if grads is not None:
            grads.before_backward()
        weight = cfg.loss_weight(task) if len(tasks) > 1 else 1.0
        if loss.requires_grad:        # a frozen encoder + the cosine head leave nothing to train
            # the graphs share only the cached bf16 weight casts, which save no tensors
            (loss * weight if weight != 1.0 else loss).backward()
        record[f"loss_{task}"] = loss.item()
        clock.lap("backward")
        if grads is not None:
            grads.after_backward(t_idx)
            clock.lap("surgery")
    if grads is not None:
        try:
            stats = grads.combine(cfg.combine, cfg.reduction, generator, cfg.combine_options)
        except surgery.NonFiniteGradient as err:
            raise TrainingError(f"stage {stage!r}, epoch {epoch}, step {step}: the {tasks[err.task]} gradient has a nan "
                                f"or inf entry (|g|^2 = {err.squared_norm}); lower lr (now {cfg.lr}) or use "
                                f"precision=fp32; {_resume_hint(checkpointer)}") from None
        record.update(stats_record(tasks, stats))
        clock.lap("surgery")
    optimizer.step()
    clock.lap("optimizer")
    record["step_s"] = round(clock.total(), 4)
    record.update(clock.record())
    return record


class PhaseClock:
    """Seconds spent per named phase, accumulated lap by lap (time.perf_counter)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.spent: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.spent[phase] = self.spent.get(phase, 0.0) + now - self.last
        self.last = now

    def total(self) -> float:
        return self.last - self.start

    def record(self) -> dict[str, float]:
        return {f"t_{k}": round(v, 4) for k, v in self.spent.items()}


def _resume_hint(checkpointer) -> str:
    last = f"the last good checkpoint is {checkpointer.path}" if checkpointer and checkpointer.path.exists() \
        else "no checkpoint was written yet"
    return f"{last} (resume=true goes on from it)"


def stats_record(tasks: tuple[str, ...], stats: surgery.SurgeryStats) -> dict:
    rec = {"conflicts": stats.conflicts, "projections": stats.projections, "norm_combined": stats.norm_combined}
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
