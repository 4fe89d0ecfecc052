"""`python -m mtlib merges RUN_DIR`: a finished novel run's single-task models merged each way, scored on dev before
any multitask step (the starting point each merge gives the multitask stage). Reads the run's stage checkpoints and
trains nothing: an analysis of a run, so it lives beside the other readers of runs, not in the training core."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import data as D
from ..evaluate import evaluate
from ..files import atomic_write_text
from ..merge import merge_single_task_states
from ..models import arithmetic, pick_device
from ..pipelines import (device_name, encode_split, fmt, git_commit, load_splits, model_for, quora_note,
                         run_config)
from ..train import load_checkpoint


# (merge, lambda, density) that `merge_grid` tries: the report's average, task arithmetic at three scales (lambda =
# 1/3 would be the average again), TIES at the paper's density 0.2 and two larger ones (lambda 1, as Yadav et al.)
MERGE_GRID = (("uniform", 1.0, 1.0), ("task_arithmetic", 0.5, 1.0), ("task_arithmetic", 0.7, 1.0),
              ("task_arithmetic", 1.0, 1.0), ("ties", 1.0, 0.2), ("ties", 1.0, 0.5), ("ties", 1.0, 1.0))


def merge_grid(out_dir: str | Path, grid=MERGE_GRID) -> dict:
    """Dev metrics of a `novel` run's three single-task models merged each way of `grid` ((merge, lambda, density)
    triples), before any multitask step: the starting point each merge gives the multitask stage. Rebuilds the
    encoder before fine-tuning from the run's config.json and reads its stage checkpoints
    (checkpoints/single_<task>.safetensors), so it needs no training; writes <out_dir>/merges.json."""
    out = Path(out_dir)
    cfg = run_config(out, "pipeline=novel run")
    files = {t: out / "checkpoints" / f"single_{t}.safetensors" for t in D.TASKS}
    missing = [str(f) for f in files.values() if not f.exists()]
    if cfg.pipeline != "novel" or missing:
        raise FileNotFoundError(f"{out}: merge_grid needs a novel run's single-task checkpoints; missing "
                                f"{', '.join(missing) or 'nothing, but the run is ' + cfg.pipeline}. Run pipeline=novel "
                                f"into this out_dir, and keep its checkpoints/ folder")
    start = time.time()
    device = pick_device(cfg)
    model, tokenizer = model_for(cfg, device)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    singles = {}
    for task, f in files.items():
        load_checkpoint(model, f)
        singles[task] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    dev = {t: {"dev": encode_split(cfg, split["dev"], tokenizer)} for t, split in load_splits(cfg).items()}
    rows = []
    for method, lam, density in grid:
        model.load_state_dict(merge_single_task_states(singles, initial, method, lam, density))
        metrics = evaluate(model, {t: dev[t]["dev"] for t in D.TASKS}, cfg, device)
        rows.append({"merge": method, "lambda": lam, "density": density, **metrics})
        print(f"[merge {method} lambda={lam} density={density}] {fmt(metrics)}")
    found = {"rows": rows, "config": cfg.to_dict(), "device": device_name(device),
             "precision": arithmetic(cfg, device), "mtlib": git_commit(),
             "wall_s": round(time.time() - start, 1), "note": quora_note(cfg.encoder)}
    atomic_write_text(out / "merges.json", json.dumps(found, indent=2))
    return found
