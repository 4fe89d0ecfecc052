"""`python -m mtlib report`: `--execute` runs every notebook of PLAN and AFTER with papermill (reports/notebooks/),
then results.md is written from the runs' metrics.json files; without --execute it only rewrites results.md from
the runs already there."""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from ..config import Config, ConfigError, parse_params
from ..notebook import ROOT
from .paper import AFTER, FIGURE_SEED, ONCE, PLAN, SAME_RUNS, SEEDS
from .runs import repo_path
from .tables import write_results


class ReportError(RuntimeError):
    """A notebook failed under papermill, or an unknown run label was asked for."""


def execute(profile: str | None = None, only: list[str] | None = None, reports_dir: str | Path = "reports",
            seeds: tuple[int, ...] = SEEDS, params: dict | None = None) -> float:
    """Run the notebooks of PLAN with papermill, seed by seed, into <reports_dir>/notebooks/<label>-seed<k>.ipynb
    and <reports_dir>/runs/<label>/seed<k>/; returns the wall time (s).

    `params` (Config fields, e.g. {"encoder": "bert-base-uncased", "precision": "fp32"}) go to every notebook; a
    field that a notebook fixes itself (its rung's pipeline, combine, sts_head) or PLAN sets is an error.

    Runs are resumed: a finished run of the same config is loaded, a killed one goes on from its checkpoint, so
    an interrupted `make report` loses at most the steps since the last checkpoint. Figures of FIGURE_SEED (0) go
    to <reports_dir>/figures; every other seed's beside its runs, whichever seeds this call runs.
    """
    labels = [label for _, _, label in PLAN] + [label for _, _, label in AFTER]
    unknown = sorted(set(only or []) - set(labels))
    if unknown:
        raise ReportError(f"unknown run label(s) {', '.join(unknown)}; valid: {', '.join(labels)}")
    common = _common_params(params or {})
    clash = sorted({k for _, p, label in PLAN if not only or label in only for k in p} & set(common))
    if clash:
        raise ConfigError(f"{', '.join(clash)} cannot be set for every notebook: PLAN sets it for some runs "
                          "(e.g. 04_cs_gs-no-dropout's dropout); run those labels without it")
    start, reports = time.time(), Path(reports_dir)       # relative paths are taken from the repository root
    repo_path(reports / "notebooks").mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for notebook, params, label in PLAN:
            if (only and label not in only) or (label in ONCE and seed != seeds[0]):
                continue
            folder = reports / "runs" / label / f"seed{seed}"
            reuse_runs(reports / "runs", label, (seed,))
            params = {**{k: str(reports / v.format(seed=f"seed{seed}")) if k.endswith("_dir") else v
                         for k, v in params.items()},                  # PLAN's *_dir: in reports
                      "out_dir": str(folder), "seed": seed, "resume": True, "progress": False,
                      "figures_dir": str(reports / "figures" if seed == FIGURE_SEED else folder / "figures"),
                      "figure_prefix": label, **({"profile": profile} if profile else {}), **common}
            _papermill(notebook, reports / "notebooks" / f"{label}-seed{seed}.ipynb", params, f"run {label}, seed {seed}")
    for notebook, params, label in AFTER:
        if only and label not in only:
            continue
        reuse_runs(reports / "runs", label, seeds)
        params = {**{k: str(reports / v) for k, v in params.items()}, "out_dir": str(reports / "runs" / label),
                  "seeds": list(seeds), "resume": True, "progress": False, **({"profile": profile} if profile else {}),
                  **common}
        _papermill(notebook, reports / "notebooks" / f"{label}.ipynb", params, f"seeds {', '.join(map(str, seeds))}")
    return time.time() - start


def reuse_runs(runs: Path, label: str, seeds) -> list[Path]:
    """Copy each finished run that SAME_RUNS pairs with one of `label`'s into `label`'s folder (an AFTER notebook's
    <runs>/<label>/<method>/seed<k>, or a rung's <runs>/<label>/seed<k>/<folder>), where that folder does not exist
    yet; leaves out checkpoints (a finished run resumes from metrics.json alone). Returns the folders written."""
    copied = []
    for (after, method), (rung, folder) in SAME_RUNS.items():
        for seed in seeds if label in (after, rung) else ():
            at_after, at_rung = runs / after / method / f"seed{seed}", runs / rung / f"seed{seed}" / folder
            src, dst = (at_rung, at_after) if label == after else (at_after, at_rung)
            if (src / "metrics.json").exists() and not dst.exists():     # a killed run there: the notebook resumes it
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints"))
                print(f"{dst}: {src}'s run (same config; the notebook loads it only if config.json still matches)")
                copied.append(dst)
    return copied


# What execute() sets per notebook, or the rungs fix: not settable for the whole ladder.
_RESERVED = ("pipeline", "combine", "sts_head", "seed", "out_dir", "resume", "progress", "profile")


def _common_params(params: dict) -> dict:
    """Check `execute`'s params: Config fields only, none that each rung or seed sets itself."""
    Config.from_dict({k: v for k, v in params.items() if k not in _RESERVED})   # unknown names, bad values: one line
    reserved = sorted(set(params) & set(_RESERVED))
    if reserved:
        raise ConfigError(f"{', '.join(reserved)} cannot be set for every notebook (each rung or seed sets it; "
                          "--profile and --seeds choose the profile and seeds)")
    return dict(params)


def _papermill(notebook: str, executed: Path, params: dict, what: str) -> None:
    """Execute notebooks/<notebook>.ipynb into `executed`; a failing cell becomes one ReportError line."""
    import papermill as pm
    t0 = time.time()
    print(f"papermill notebooks/{notebook}.ipynb -> {executed} {params}", flush=True)
    try:       # paths relative to the repository root: the executed copy records no machine paths
        os.chdir(ROOT)
        pm.execute_notebook(f"notebooks/{notebook}.ipynb", str(executed), parameters=params, cwd=".",
                            progress_bar=False)
    except pm.PapermillExecutionError as err:
        raise ReportError(f"notebooks/{notebook}.ipynb ({what}) failed in cell [{err.exec_count}]: {err.ename}: "
                          f"{err.evalue.splitlines()[0] if err.evalue else ''}; the full traceback is in {executed}"
                          ) from None
    print(f"  done in {(time.time() - t0) / 60:.1f} min", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mtlib report")
    ap.add_argument("--execute", action="store_true", help="run the notebooks with papermill first")
    ap.add_argument("--profile", default=None, help="smoke, cpu or paper (default: $MTLIB_PROFILE, else auto)")
    ap.add_argument("--only", nargs="*", help="run labels to execute (default: all)")
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS), help="seeds to run (default: 0 1 2)")
    ap.add_argument("--reports", default="reports", help="where --execute writes notebooks/, runs/, figures/ (another "
                    "machine's runs: a folder of their own, e.g. reports/xeon)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="Config fields for every notebook, e.g. --set precision=fp32 encoder=bert-base-uncased")
    ap.add_argument("--runs", default=None, help="the runs results.md is computed from (default: <reports>/runs)")
    ap.add_argument("--out", default=None, help="the results file (default: <reports>/results.md)")
    args = ap.parse_args(argv)
    args.runs = args.runs or f"{args.reports}/runs"
    args.out = args.out or f"{args.reports}/results.md"
    if args.execute:
        wall = execute(args.profile, args.only, args.reports, tuple(args.seeds), parse_params(args.set))
        print(f"notebooks executed in {wall / 60:.1f} min")
    print(write_results(args.runs, args.out))
