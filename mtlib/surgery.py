"""Gradient combination for the shared encoder: pure tensor math, no model, no data.

Every combiner takes the T x P matrix G of per-task gradients (one row per task, flattened over
the shared parameters) and returns one P-vector plus per-step statistics. PCGrad (Yu et al., 2020)
is computed in T x T space: each projected gradient is a linear combination ``c_i @ G`` of the raw
gradients, so every dot product it needs comes from the Gram matrix ``K = G G^T``, and the update
is ``w @ G`` with ``w = sum_i c_i``. One pass over P builds K (`gram_matrix`), T x T math gives w
(`weights`), one pass combines (`weighted_sum`); nothing else touches the P-sized data.
`gram_matrix` takes G as column blocks, so a caller can keep part of G in another layout (the
training loop keeps only the touched rows of the word-embedding matrix).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class SurgeryStats:
    """Telemetry of one step, all derived from the Gram matrix (no extra pass over the gradients)."""
    cosine: torch.Tensor        # T x T cosine similarity of the raw task gradients
    norm_before: torch.Tensor   # T, |g_i|
    norm_after: torch.Tensor    # T, |projected g_i| (equal to norm_before for `sum`)
    conflicts: int              # pairs i < j with g_i . g_j < 0
    projections: int            # projections PCGrad actually applied
    norm_combined: float        # |sum_t w_t g_t|, the length of the update direction


def gram_stats(gram: torch.Tensor, coef: torch.Tensor, w: torch.Tensor, projections: int, eps: float) -> SurgeryStats:
    norm = gram.diagonal().clamp_min(0).sqrt()
    cosine = gram / (norm[:, None] * norm[None, :]).clamp_min(eps)
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
    projections = 0
    for i in range(t):
        for j in torch.randperm(t, generator=generator).tolist():
            if j == i:
                continue
            dot = coef[i] @ gram[:, j]                 # (current g_i) . g_j
            if dot < 0:
                coef[i, j] -= dot / gram[j, j].clamp_min(eps)
                projections += 1
    return coef, projections


def gram_matrix(blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    """K = G G^T (T x T, fp64) of a T x P gradient matrix given as column blocks G = [G_1 | G_2 | ...]."""
    return sum((b @ b.T).double() for b in blocks)


def weights(gram: torch.Tensor, method: str = "sum", reduction: str = "sum",
            generator: torch.Generator | None = None, eps: float = 1e-12) -> tuple[torch.Tensor, SurgeryStats]:
    """w (T, fp64) such that the combined update is ``sum_t w_t g_t``, for `sum` or `pcgrad`; plus telemetry."""
    if method not in ("sum", "pcgrad"):
        raise ValueError(f"combine={method!r} is not valid; choose one of sum, pcgrad")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction={reduction!r} is not valid; choose one of sum, mean")
    t = gram.shape[0]
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
            generator: torch.Generator | None = None, eps: float = 1e-12) -> tuple[torch.Tensor, SurgeryStats]:
    """Combine T task gradients (T x P) into one update direction (P) with `sum` or `pcgrad`."""
    w, stats = weights(gram_matrix([grads]), method, reduction, generator, eps)
    return weighted_sum(grads, w), stats
