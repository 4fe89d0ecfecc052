"""Model merging for the `novel` pipeline: a uniform average of k encoders, each head from its own model."""
from __future__ import annotations

import torch


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors; integer buffers (e.g. position ids) from the first."""
    if not states:
        raise ValueError("nothing to average: give at least one state dict")
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise ValueError(f"state dicts differ in keys: {sorted(set(keys) ^ set(s.keys()))[:5]}")
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype)
            if states[0][k].is_floating_point() else states[0][k].clone() for k in keys}


def merge_single_task_states(states: dict[str, dict[str, torch.Tensor]],
                             encoder_prefix: str = "encoder.", head_prefix: str = "heads.") -> dict[str, torch.Tensor]:
    """One MultitaskModel state dict from single-task ones ({task: state}): the encoders' average,
    and for each task `heads.<task>.*` taken from that task's own model."""
    encoders = [{k: v for k, v in s.items() if k.startswith(encoder_prefix)} for s in states.values()]
    merged = average_state_dicts(encoders)
    first = next(iter(states.values()))
    for key in first:
        if key.startswith(head_prefix):
            owner = key[len(head_prefix):].split(".", 1)[0]
            merged[key] = states[owner][key].clone() if owner in states else first[key].clone()
    return merged
