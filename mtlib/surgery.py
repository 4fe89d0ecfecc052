"""Gradient combination for the shared encoder: pure tensor math, no model, no data.

Every combiner takes the T x P matrix G of per-task gradients (one row per task, flattened over
the shared parameters) and returns one P-vector plus per-step statistics. Every method is a map from
the T x T Gram matrix ``K = G G^T`` to weights w, and the update is ``w @ G``: one pass over P builds K
(`gram_matrix`, fp64), T x T math gives w (`weights`), one pass combines (`weighted_sum`); nothing else
touches the P-sized data. `gram_matrix` takes G as column blocks, so a caller can keep part of G in
another layout (the training loop keeps only the touched rows of the word-embedding matrix).

Methods (`METHODS`, the values of ``combine=``):
- `sum`: w = 1 (or 1/T with ``reduction="mean"``);
- `pcgrad`: PCGrad (Yu et al., 2020) in T x T space, mtlib's own (`pcgrad_coefficients`): each projected
  gradient is ``c_i @ G``, which gives the per-task telemetry of what survives projection;
- the Gramian weightings of torchjd (`WEIGHTINGS`): upgrad, mgda, cagrad, imtl_g, aligned_mtl, dualproj,
  gradvac. Their options (`OPTIONS`, e.g. CAGrad's c) are set with a ``"name=value,..."`` string.
  GradVac is stateful (an EMA of the task-pair cosines): keep one weighting object (`make_weighting`)
  for all the steps of a stage and pass it to `weights`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

# combine= name -> the torchjd.aggregation class that maps a Gramian to weights
WEIGHTINGS = {
    "upgrad": "UPGradWeighting",
    "mgda": "MGDAWeighting",
    "cagrad": "CAGradWeighting",
    "imtl_g": "IMTLGWeighting",
    "aligned_mtl": "AlignedMTLWeighting",
    "dualproj": "DualProjWeighting",
    "gradvac": "GradVacWeighting",
}
METHODS = ("sum", "pcgrad", *WEIGHTINGS)
# Each method's options and their defaults: CAGrad's c = 0.4 is the value of Liu et al.'s own multitask
# (NYU-v2, Cityscapes) runs; MGDA's Frank-Wolfe tolerance and iteration cap, GradVac's EMA decay beta and
# Aligned-MTL's eigenvalue scale (the smallest, as in Senushkin et al.'s Algorithm 1) are torchjd's defaults.
OPTIONS: dict[str, dict[str, Any]] = {
    "cagrad": {"c": 0.4},
    "mgda": {"epsilon": 0.001, "max_iters": 100},
    "gradvac": {"beta": 0.5},
    "aligned_mtl": {"scale_mode": "min"},
}
OPTION_CHOICES = {("aligned_mtl", "scale_mode"): ("min", "median", "rmse")}
GRAM_CHUNK = 1 << 16    # columns cast to fp64 at a time: T x 65536 x 8 bytes (1.5 MiB for T = 3) stays in cache


class NonFiniteGradient(ValueError):
    """A task's gradient holds a NaN or an inf; `task` is its row in G."""

    def __init__(self, task: int, squared_norm: float):
        self.task, self.squared_norm = task, squared_norm
        super().__init__(f"task {task}'s gradient has a nan or inf entry (|g|^2 = {squared_norm})")


@dataclass
class SurgeryStats:
    """Telemetry of one step, all derived from the Gram matrix (no extra pass over the gradients)."""
    cosine: torch.Tensor        # T x T cosine similarity of the raw task gradients
    norm_before: torch.Tensor   # T, |g_i|
    norm_after: torch.Tensor    # T, |projected g_i| for pcgrad; |w_i g_i| otherwise (= norm_before for `sum`)
    conflicts: int              # pairs i < j with g_i . g_j < 0
    projections: int            # projections PCGrad actually applied
    norm_combined: float        # |sum_t w_t g_t|, the length of the update direction


def _floor(gram: torch.Tensor, eps: float) -> float:
    """The smallest squared length that counts as non-zero: a gradient shorter than eps times the longest
    is treated as zero (relative to the gradients' scale, so tiny but valid gradients are handled exactly)."""
    return max(eps ** 2 * gram.diagonal().max().item(), torch.finfo(gram.dtype).tiny)


def cosines(gram: torch.Tensor, floor: float = 1e-30) -> torch.Tensor:
    """T x T cosines of the gradients behind a Gram matrix; a product of two norms below `floor` counts as `floor`."""
    norm = gram.diagonal().clamp_min(0).sqrt()
    return gram / norm.outer(norm).clamp_min(floor)


def gram_stats(gram: torch.Tensor, coef: torch.Tensor, w: torch.Tensor, projections: int, eps: float) -> SurgeryStats:
    norm, cosine = gram.diagonal().clamp_min(0).sqrt(), cosines(gram, _floor(gram, eps))
    after = torch.einsum("it,ts,is->i", coef, gram, coef).clamp_min(0).sqrt()
    conflicts = int((gram.triu(1) < 0).sum())
    combined = (w @ gram @ w).clamp_min(0).sqrt().item()
    return SurgeryStats(cosine, norm, after, conflicts, projections, combined)


def pcgrad_coefficients(gram: torch.Tensor, generator: torch.Generator | None = None,
                        eps: float = 1e-12) -> tuple[torch.Tensor, int]:
    """Coefficients C (T x T) such that the projected gradients are ``C @ G``.

    For each task i, in a fresh random order of the other tasks j, whenever the current g_i
    conflicts with the ORIGINAL g_j (g_i . g_j < 0), remove the component along g_j.
    """
    t = gram.shape[0]
    coef = torch.eye(t, dtype=gram.dtype, device=gram.device)
    floor = _floor(gram, eps)
    projections = 0
    for i in range(t):
        for j in torch.randperm(t, generator=generator).tolist():
            if j == i:
                continue
            dot = coef[i] @ gram[:, j]                 # (current g_i) . g_j
            if dot < 0:
                coef[i, j] -= dot / gram[j, j].clamp_min(floor)
                projections += 1
    return coef, projections


def gram_matrix(blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    """K = G G^T (T x T) of a T x P gradient matrix given as column blocks G = [G_1 | G_2 | ...], in fp64 from
    fp64 inputs: each block is cast GRAM_CHUNK columns at a time (a bf16/fp16/fp32 product would overflow or
    lose digits over millions of terms; casting whole blocks would write a second, double-size copy of G)."""
    t = blocks[0].shape[0]
    gram = torch.zeros(t, t, dtype=torch.float64, device=blocks[0].device)
    for block in blocks:
        for chunk in block.split(GRAM_CHUNK, dim=1):
            chunk = chunk.to(torch.float64)
            gram.addmm_(chunk, chunk.T)
    return gram


def parse_options(method: str, options: str | dict | None = None) -> dict[str, Any]:
    """The options of `method` ("c=0.4" or {"c": 0.4}; "" = the defaults) as typed keywords, defaults filled in."""
    defaults = OPTIONS.get(method, {})
    if isinstance(options, dict):
        given = dict(options)
    else:
        given = {}
        for item in filter(None, (s.strip() for s in (options or "").split(","))):
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"combine_options item {item!r} is not name=value (e.g. c=0.4)")
            given[name.strip()] = value.strip()
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k} (default {v})" for k, v in defaults.items()) or "none"
        raise ValueError(f"combine_options: unknown option(s) {', '.join(unknown)} for combine={method}; "
                         f"valid: {valid}")
    out = dict(defaults)
    for name, value in given.items():
        kind = type(defaults[name])
        try:
            out[name] = _typed(kind, value)
        except (TypeError, ValueError):
            raise ValueError(f"combine_options: {name}={value!r} is not valid for combine={method}; "
                             f"expected {kind.__name__}") from None
        choices = OPTION_CHOICES.get((method, name))
        if choices and out[name] not in choices:
            raise ValueError(f"combine_options: {name}={value!r} is not valid for combine={method}; "
                             f"choose one of {', '.join(choices)}")
    return out


def _typed(kind: type, value: Any) -> Any:
    if kind is int:
        number = float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return kind(value)


def make_weighting(method: str, options: str | dict | None = None) -> torch.nn.Module:
    """A fresh torchjd Gramian weighting for `method` (one of WEIGHTINGS) with its options."""
    if method not in WEIGHTINGS:
        raise ValueError(f"combine={method!r} is not a torchjd weighting; choose one of {', '.join(WEIGHTINGS)}")
    kwargs = parse_options(method, options)
    from torchjd import aggregation
    try:
        return getattr(aggregation, WEIGHTINGS[method])(**kwargs)
    except ValueError as err:              # torchjd's own range checks (c >= 0, beta in [0, 1], ...)
        raise ValueError(f"combine_options for combine={method} are not valid: {err}") from None


def check_finite(gram: torch.Tensor) -> None:
    """Raise NonFiniteGradient naming the first task whose gradient holds a NaN or inf. Free: in fp64 the
    Gram matrix of finite fp32/fp16/bf16 gradients cannot overflow, so |g_t|^2 is finite iff g_t is."""
    diagonal = gram.diagonal()
    bad = (~torch.isfinite(diagonal)).nonzero()
    if len(bad):
        t = int(bad[0])
        raise NonFiniteGradient(t, diagonal[t].item())


def _weighting_weights(weighting: torch.nn.Module, gram: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Call a torchjd weighting. Some (GradVac) draw random orders from the global torch RNG: they draw from
    `generator` instead, and the global RNG (dropout masks, ...) is left as it was."""
    if generator is None:
        return weighting(gram)
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        w = weighting(gram)
        generator.set_state(torch.get_rng_state())
    return w


def weights(gram: torch.Tensor, method: str = "sum", reduction: str = "sum",
            generator: torch.Generator | None = None, eps: float = 1e-12,
            weighting: torch.nn.Module | None = None) -> tuple[torch.Tensor, SurgeryStats]:
    """w (T, fp64) such that the combined update is ``sum_t w_t g_t``, plus telemetry.

    `reduction` (sum or mean of the task gradients) applies to `sum` and `pcgrad`; the torchjd methods set
    their own scale. For those, `weighting` is the object from `make_weighting` (a fresh one with the default
    options if None); a stateful one (GradVac) must be the same object at every step.
    """
    if method not in METHODS:
        raise ValueError(f"combine={method!r} is not valid; choose one of {', '.join(METHODS)}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction={reduction!r} is not valid; choose one of sum, mean")
    if reduction == "mean" and method in WEIGHTINGS:
        raise ValueError(f"reduction='mean' is not valid with combine={method}; it applies to sum and pcgrad")
    gram = gram.to(torch.float64)
    check_finite(gram)
    t = gram.shape[0]
    if method in WEIGHTINGS:
        w = _weighting_weights(weighting if weighting is not None else make_weighting(method), gram, generator)
        w = w.to(torch.float64)
        return w, gram_stats(gram, torch.diag(w), w, 0, eps)
    if method == "pcgrad":
        coef, projections = pcgrad_coefficients(gram, generator, eps)
    else:
        coef, projections = torch.eye(t, dtype=gram.dtype, device=gram.device), 0
    w = coef.sum(0) / (t if reduction == "mean" else 1)       # sum_i c_i @ G = (sum_i c_i) @ G
    return w, gram_stats(gram, coef, w, projections, eps)


def weighted_sum(block: torch.Tensor, w: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_t w_t * block[t]`` (a P-vector) in one streaming pass per row, into `out` if given."""
    coefs = w.tolist()
    out = torch.mul(block[0], coefs[0], out=out)
    for row, c in zip(block[1:], coefs[1:]):
        out.add_(row, alpha=c)
    return out


def combine(grads: torch.Tensor, method: str = "sum", reduction: str = "sum",
            generator: torch.Generator | None = None, eps: float = 1e-12,
            weighting: torch.nn.Module | None = None) -> tuple[torch.Tensor, SurgeryStats]:
    """Combine T task gradients (T x P) into one update direction (P) with any of METHODS."""
    w, stats = weights(gram_matrix([grads]), method, reduction, generator, eps, weighting)
    return weighted_sum(grads, w), stats
