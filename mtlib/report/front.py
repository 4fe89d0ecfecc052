"""The README's generated blocks: the ladder, the best model and the claims, one row per device key, from the store.

`make tables` rewrites what lies between `<!-- tables:NAME -->` and `<!-- /tables:NAME -->` in README.md;
tests/test_front.py fails when a block is stale. Every number in them is computed here from the runs' files.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..store import STORE
from .paper import CLAIMS, PAPER, ROWS
from .runs import ablation_runs, repo_path, seed_runs, single_task_runs
from .stats import claims_table, mean_std
from .tables import wall_text

TASKS = ("sst_acc", "para_acc", "sts_pearson")
COLUMNS = ("SST acc", "Quora acc", "STS r", "mean")
SINGLE = {"single_sst": "sst_acc", "single_para": "para_acc", "single_sts": "sts_pearson"}
BEST = "Novel: CS + GS, no dropout"          # the report's best row


def devices(store: str | Path = STORE) -> list[str]:
    return sorted(p.name for p in repo_path(store).iterdir() if p.is_dir()) if repo_path(store).is_dir() else []


def _paper(name: str) -> str:
    return " / ".join(f"{v:.3f}" for v in PAPER[name])


def _cells(runs: dict[int, dict], keys=(*TASKS, "overall")) -> list[str]:
    return [mean_std([m[k] for m in runs.values()]) for k in keys]


def ladder(store: str | Path = STORE) -> list[str]:
    """Each rung of the report's ladder: the report's row, then ours on every device that ran it."""
    lines = ["| rung | report: SST / Quora / STS r / mean | device | SST acc | Quora acc | STS r | mean | n | min/run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, name, label, sub in ROWS:
        first = True
        for key in devices(store):
            runs = seed_runs(repo_path(store) / key, label, sub)
            if not runs:
                continue
            paper = _paper(name) if name in PAPER else "not in the report"
            lines.append(f"| {name if first else ''} | {paper if first else ''} | {key} | "
                         + " | ".join(_cells(runs)) + f" | {len(runs)} | {wall_text(list(runs.values()))} |")
            first = False
        if first:
            lines.append(f"| {name} | {_paper(name) if name in PAPER else ''} | — | — | — | — | — | 0 | |")
    return lines


def best_model(store: str | Path = STORE) -> list[str]:
    """07's best configuration on each device, beside the report's best row and the single-task models of the same
    encoder (the first stage of each novel run: one model per task, its heads)."""
    lines = ["| model | device | SST acc | Quora acc | STS r | mean | n | min/run |", "|---|---|---|---|---|---|---|---|",
             f"| the report's best ({BEST}; BERT-base) | GPU | " + " | ".join(f"{v:.3f}" for v in PAPER[BEST]) + " | | |"]
    for key in devices(store):
        best = ablation_runs(repo_path(store) / key / "07_beyond").get("best", [])
        if best:
            by_seed = {m["config"]["seed"]: m for m in best}
            lines.append(f"| ours: 07's best configuration | {key} | " + " | ".join(_cells(by_seed))
                         + f" | {len(by_seed)} | {wall_text(best)} |")
        for row, runs in single_task_runs(repo_path(store) / key).items():
            single = {k: {SINGLE[s["name"]]: s["best"][SINGLE[s["name"]]] for s in m["stages"] if s["name"] in SINGLE}
                      for k, m in runs.items()}
            c = next(iter(runs.values()))["config"]
            lines.append(f"| single-task models (`{row.split('/')[0]}`: Quora {c.get('para_head', 'concat')}, "
                         f"STS {c.get('sts_head')}) | {key} | " + " | ".join(_cells(single, TASKS)) + f" | | {len(single)} | |")
    return lines


def claims(store: str | Path = STORE) -> list[str]:
    """Each claim: the report's effect (its rows' difference where both are in it), ours per device with its 95%
    interval over seeds paired by seed, and the verdict."""
    lines = ["| claim | metric | report | device | ours: mean [95% interval] | n | verdict |",
             "|---|---|---|---|---|---|---|"]
    tables = {}
    for key in devices(store):
        rows = {name: seed_runs(repo_path(store) / key, label, sub) for _, name, label, sub in ROWS}
        if any(rows.values()):
            tables[key] = claims_table(rows)
    for i, (tag, text, a, b, metric, _sign) in enumerate(CLAIMS):
        index = ("sst_acc", "para_acc", "sts_pearson", "overall").index(metric)
        report = f"{PAPER[a][index] - PAPER[b][index]:+.3f}" if a in PAPER and b in PAPER else "—"
        first = True
        for key, table in tables.items():
            c = table.iloc[i]
            if c["n"] == 0:
                continue
            ours = f"{c['mean']:+.3f}" + (f" [{c['lo']:+.3f}, {c['hi']:+.3f}]" if c["n"] > 1 else "")
            lines.append(f"| {f'({tag}) {text}' if first else ''} | {metric if first else ''} | "
                         f"{report if first else ''} | {key} | {ours} | {c['n']} | {c['verdict']} |")
            first = False
        if first:
            lines.append(f"| ({tag}) {text} | {metric} | {report} | — | not run | 0 | |")
    return lines


BLOCKS = {"ladder": ladder, "best": best_model, "claims": claims}


def render(text: str, store: str | Path = STORE) -> str:
    """`text` (the README) with each generated block replaced by its fresh table."""
    for name, make in BLOCKS.items():
        start, end = f"<!-- tables:{name} -->", f"<!-- /tables:{name} -->"
        if start not in text or end not in text:
            raise ValueError(f"README.md has no {start} ... {end} block; add the two marker lines where the "
                             f"{name} table goes")
        body = "\n".join([start, *make(store), end])
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: body, text, flags=re.S)
    return text


def write_readme(path: str | Path = "README.md", store: str | Path = STORE) -> Path:
    path = repo_path(path)
    path.write_text(render(path.read_text(encoding="utf-8"), store), encoding="utf-8")
    return path
