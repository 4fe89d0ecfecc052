"""Before and after, in one process, on the embedded encoder and the real data: what issue 9's changes save.

    python benchmarks/stages.py [--steps 12] [--reps 3]        (part of: make profile)

1. frozen stage: the old step (a frozen encoder forward per step) vs the new one (the heads on features cached
   once), plus the one-off cost of caching the rows a 700-step stage draws;
2. single-task step: with the per-task gradient buffer and Gram matrix (old) vs plain backward (new), same batches;
3. resume checkpoint: seconds per save, times the saves of a 700-step epoch at checkpoint_every 50 (old) and 250 (new).
Writes reports/stage-savings.json, which `python -m mtlib profile` shows in reports/profile.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mtlib import data as D  # noqa: E402
from mtlib.config import Config  # noqa: E402
from mtlib.files import atomic_write_text  # noqa: E402
from mtlib.models import build_model, use_bf16  # noqa: E402
from mtlib.pipelines import device_name, encode_splits, git_commit, load_splits  # noqa: E402
from mtlib.train import Checkpointer, FrozenFeatures, JsonlLog, TaskGrads, train_step, upcoming_rows  # noqa: E402


def steps_time(model, data, cfg, tasks, grads, features, seed: int, n: int, device) -> float:
    """Median seconds of n steps on the batches of `seed` (same seed: same batches)."""
    samplers = {t: D.TaskSampler(data[t]["train"], cfg.batch_size, [seed, i]) for i, t in enumerate(tasks)}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, fused=True)
    gen = torch.Generator().manual_seed(seed)
    times = [train_step(model, data, cfg, tasks, samplers, opt, grads, gen, device, use_bf16(cfg, device), "bench",
                        1, i, None, features)["step_s"] for i in range(n)]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--stage-steps", type=int, default=700, help="steps of the stage the savings are projected to")
    ap.add_argument("--out", default="reports/stage-savings.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = Config(profile="cpu", dropout=0.0, progress=False)
    device = torch.device("cpu")
    model, tok = build_model(cfg.encoder, cfg.pooling, "cosine", 0.0, cfg.dropout_impl)
    data = encode_splits(cfg, load_splits(cfg), tok)
    model.train()
    result = {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device_name(device),
              "precision": "bf16-autocast" if use_bf16(cfg, device) else "fp32", "mtlib": git_commit(),
              "steps": args.steps, "reps": args.reps, "stage_steps": args.stage_steps}

    # 1. frozen stage
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    samplers = {t: D.TaskSampler(data[t]["train"], cfg.batch_size, [0, i]) for i, t in enumerate(D.TASKS)}
    t0 = time.perf_counter()
    features = FrozenFeatures(model, data, {t: upcoming_rows(samplers[t], args.stage_steps) for t in D.TASKS},
                              cfg, device)
    build = time.perf_counter() - t0
    old, new = [], []
    for rep in range(args.reps):
        old.append(steps_time(model, data, cfg, D.TASKS, None, None, rep, args.steps, device))
        new.append(steps_time(model, data, cfg, D.TASKS, None, features, rep, args.steps, device))
    result["frozen"] = {"old_step_s": statistics.median(old), "new_step_s": statistics.median(new),
                        "features_s": build}
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    print("frozen", result["frozen"], flush=True)

    # 2. single-task step (Quora, the longest single-task stage)
    grads = TaskGrads.for_model(model, 1)
    old, new = [], []
    for rep in range(args.reps):
        old.append(steps_time(model, data, cfg, ("para",), grads, None, rep, args.steps, device))
        grads.embedding.sparse = False                        # the new path: plain backward, dense embedding grad
        new.append(steps_time(model, data, cfg, ("para",), None, None, rep, args.steps, device))
        grads.embedding.sparse = True
    grads.close()
    result["single_task"] = {"old_step_s": statistics.median(old), "new_step_s": statistics.median(new)}
    print("single-task", result["single_task"], flush=True)

    # 3. resume checkpoint: model + AdamW state (after a step, so the moments exist) + RNG
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    saves = []
    with tempfile.TemporaryDirectory() as tmp:
        log = JsonlLog(Path(tmp) / "log.jsonl")
        ck = Checkpointer(Path(tmp) / "resume.pt", 0, log)
        for _ in range(args.reps):
            t0 = time.perf_counter()
            ck.save({"model": model.state_dict(), "optimizer": opt.state_dict()})
            saves.append(time.perf_counter() - t0)
        size = ck.path.stat().st_size
        log.close()
    result["checkpoint"] = {"save_s": statistics.median(saves), "bytes": size,
                            "saves_old": args.stage_steps // 50 + 1, "saves_new": args.stage_steps // 250 + 1}
    print("checkpoint", result["checkpoint"], flush=True)
    out = ROOT / args.out
    atomic_write_text(out, json.dumps(result, indent=2))
    print(out)


if __name__ == "__main__":
    main()
