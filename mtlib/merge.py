"""Model merging for the `novel` pipeline: k single-task encoders into one, each head from its own model.

`uniform` is the report's element-wise average. `task_arithmetic` (Ilharco et al. 2023) and `ties`
(Yadav et al. 2023) work on task vectors tau_t = theta_t - theta_0, where theta_0 is the encoder before
single-task fine-tuning. All functions are pure: state dicts in, a new state dict out.
"""
from __future__ import annotations

import torch

MERGES = ("uniform", "task_arithmetic", "ties")


def _check_keys(states: list[dict[str, torch.Tensor]]) -> None:
    if not states:
        raise ValueError("nothing to merge: give at least one state dict")
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise ValueError(f"state dicts differ in keys: {sorted(set(keys) ^ set(s.keys()))[:5]}")


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors; integer buffers (e.g. position ids) from the first."""
    _check_keys(states)
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype)
            if states[0][k].is_floating_point() else states[0][k].clone() for k in states[0]}


def task_arithmetic(initial: dict[str, torch.Tensor], states: list[dict[str, torch.Tensor]],
                    lam: float = 1.0) -> dict[str, torch.Tensor]:
    """theta_0 + lam * sum_t (theta_t - theta_0), per floating-point tensor (lam = 1/k is the uniform average)."""
    _check_keys([initial, *states])
    return {k: (initial[k].float() + lam * sum(s[k].float() - initial[k].float() for s in states)).to(initial[k].dtype)
            if initial[k].is_floating_point() else states[0][k].clone() for k in initial}


def ties_tensor(initial: torch.Tensor, tensors: list[torch.Tensor], density: float) -> torch.Tensor:
    """The TIES-merged task vector of one tensor (Yadav et al. 2023, the three steps):

    1. trim: keep each task vector's round(density * n) largest-magnitude entries of this tensor (at least
       one; equal magnitudes broken by torch.topk), zero the rest;
    2. elect: per entry, the sign of the sum of the trimmed values (a zero sum counts as +);
    3. disjoint mean: per entry, the mean of the trimmed values that have the elected sign (0 if none).
    """
    tv = torch.stack([t.float() - initial.float() for t in tensors]).flatten(1)      # T x n
    k = max(1, round(density * tv.shape[1]))
    if k < tv.shape[1]:
        top = tv.abs().topk(k, dim=1).indices
        tv = torch.zeros_like(tv).scatter_(1, top, tv.gather(1, top))
    sign = torch.where(tv.sum(0) >= 0, 1.0, -1.0)
    agree = tv * sign > 0                            # non-zero and with the elected sign
    return ((tv * agree).sum(0) / agree.sum(0).clamp(min=1)).view(initial.shape)


def ties(initial: dict[str, torch.Tensor], states: list[dict[str, torch.Tensor]], lam: float = 1.0,
         density: float = 0.2) -> dict[str, torch.Tensor]:
    """theta_0 + lam * TIES-merged task vector, tensor by tensor.

    Trimming is per tensor (as in PEFT's and mergekit's TIES), not over the whole flattened model as in the
    TIES authors' reference code: each weight matrix keeps the same share of its entries.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density={density} is not valid; use a fraction in (0, 1]")
    _check_keys([initial, *states])
    return {k: (initial[k].float() + lam * ties_tensor(initial[k], [s[k] for s in states], density)).to(initial[k].dtype)
            if initial[k].is_floating_point() else states[0][k].clone() for k in initial}


def merge_states(states: list[dict[str, torch.Tensor]], initial: dict[str, torch.Tensor] | None = None,
                 method: str = "uniform", lam: float = 1.0, density: float = 0.2) -> dict[str, torch.Tensor]:
    """One state from k: `uniform` (ignores initial, lam and density), `task_arithmetic` or `ties`."""
    if method == "uniform":
        return average_state_dicts(states)
    if method not in MERGES:
        raise ValueError(f"merge={method!r} is not valid; choose one of {', '.join(MERGES)}")
    if initial is None:
        raise ValueError(f"merge={method!r} needs the encoder's state before fine-tuning (initial=...)")
    return task_arithmetic(initial, states, lam) if method == "task_arithmetic" else ties(initial, states, lam, density)


def merge_single_task_states(states: dict[str, dict[str, torch.Tensor]], initial: dict[str, torch.Tensor] | None = None,
                             method: str = "uniform", lam: float = 1.0, density: float = 0.2,
                             encoder_prefix: str = "encoder.", head_prefix: str = "heads.") -> dict[str, torch.Tensor]:
    """One MultitaskModel state dict from single-task ones ({task: state}): the encoders merged by `method`
    (from `initial`, the model's state before single-task training, for task_arithmetic and ties), and for
    each task `heads.<task>.*` taken from that task's own model."""
    def encoder(s):
        return {k: v for k, v in s.items() if k.startswith(encoder_prefix)}
    merged = merge_states([encoder(s) for s in states.values()], encoder(initial) if initial is not None else None,
                          method, lam, density)
    first = next(iter(states.values()))
    for key in first:
        if key.startswith(head_prefix):
            owner = key[len(head_prefix):].split(".", 1)[0]
            merged[key] = states[owner][key].clone() if owner in states else first[key].clone()
    return merged
