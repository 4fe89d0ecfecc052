"""reports/runs.csv: one row per committed run of the store, to load in pandas and group by any column.

    runs = pd.read_csv("reports/runs.csv")
    runs.groupby(["device", "encoder", "label", "row"])[["overall", "last_overall"]].agg(["mean", "std", "count"])

`overall` & co. are the epoch the run's final stage kept (`select`: the last by default; the best on dev for runs
with `select=best` or made before that default), as the results pages show them; `last_*` its last epoch.
`changed` lists the config fields that differ from their defaults; `command` trains the run again (its run.json's,
else rebuilt from its config.json the same way).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..config import field_defaults
from ..pipelines import one_epoch
from ..store import NOT_IN_COMMAND, STORE, command, record
from .runs import log_path, open_log, repo_path
from .units import split_key

METRICS = ("sst_acc", "para_acc", "sts_pearson", "overall")
NOT_CHANGES = (*NOT_IN_COMMAND, "seed")


def finished(store: str | Path = STORE):
    """(device key, run folder, metrics.json) of every finished run under the store, in path order."""
    root = repo_path(store)
    for path in sorted(root.glob("*/**/metrics.json")):
        yield path.relative_to(root).parts[0], path.parent, json.loads(path.read_text())


def steps_logged(folder: Path) -> int | None:
    """Training steps in a run's per-step log; None where it kept none."""
    if log_path(folder) is None:
        return None
    with open_log(folder) as f:
        return sum('"type": "step"' in line for line in f)


def _shown(folder: Path) -> str:
    """A run folder as runs.csv names it: from the repository root where it lies inside it."""
    return folder.relative_to(repo_path(".")).as_posix() if folder.is_relative_to(repo_path(".")) else folder.as_posix()


def row(key: str, folder: Path, m: dict, root: Path) -> dict:
    config, defaults = {**field_defaults(saved=True), **m["config"]}, field_defaults()
    rel = folder.relative_to(root / key).parts
    seed_at = next((i for i, p in enumerate(rel) if p == f"seed{config.get('seed')}"), len(rel))
    final = next((s for s in m.get("stages", []) if s["name"] == m.get("final_stage")), {})
    last = (final.get("history") or [{}])[-1]
    threads = m.get("threads") or 2
    rec = record(folder) or {}
    return {
        # a folder <device key>+<encoder> (another encoder's runs): the device here, the encoder in its own column
        "device": split_key(key)[0], "label": rel[0],
        "row": "/".join(p for i, p in enumerate(rel[1:], 1) if i != seed_at),
        "seed": config.get("seed"), "folder": _shown(folder),
        "changed": " ".join(f"{k}={v}" for k, v in config.items() if k not in NOT_CHANGES and v != defaults.get(k)
                            and not (k == "select" and one_epoch(config))),    # one epoch a stage: nothing to select
        "encoder": m.get("encoder"), "profile": config.get("profile"), "precision": m.get("precision"),
        "commit": m.get("versions", {}).get("mtlib"),
        **{k: m.get(k) for k in METRICS}, "best_epoch": m.get("best_epoch"),
        **{f"last_{k}": last.get(k) for k in METRICS}, "epochs": len(final.get("history", [])),
        "steps": steps_logged(folder), "wall_min": round(m["wall_s"] / 60, 2) if m.get("wall_s") else None,
        "cpu_use": round(m["cpu_s"] / (m["wall_s"] * threads), 3) if m.get("cpu_s") and m.get("wall_s") else None,
        "threads": m.get("threads"), "resumed": m.get("resumed"), "finished_at": m.get("finished_at"),
        "command": rec.get("command") or command(config, _shown(folder)),
    }


def runs_frame(store: str | Path = STORE) -> pd.DataFrame:
    root = repo_path(store)
    return pd.DataFrame([row(key, folder, m, root) for key, folder, m in finished(store)])


def write_index(store: str | Path = STORE, out: str | Path = "reports/runs.csv") -> Path:
    path = repo_path(out)
    runs_frame(store).to_csv(path, index=False, float_format="%.6g")
    return path
