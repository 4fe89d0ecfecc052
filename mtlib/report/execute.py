"""`python -m mtlib report --execute`: every notebook of PLAN and AFTER with papermill, into this machine's part of
the run store (reports/runs/<device key>/), then `tables`; `python -m mtlib tables` (`make tables`): every results
page, reports/runs.csv and the README's blocks from the runs already there, for every device, without training."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ..config import Config, ConfigError, parse_params
from ..models import pick_device
from ..notebook import ROOT
from ..store import STORE, device_key
from .front import FINDINGS_BLOCKS, devices, write_readme
from .index import write_index
from .paper import AFTER, EQUAL_COMPUTE, FIGURE_SEED, ONCE, PLAN, SEEDS
from .runs import repo_path
from .tables import write_results

RESULTS = "reports/results"        # one generated page per device key: reports/results/<key>.md


class ReportError(RuntimeError):
    """A notebook failed under papermill, or an unknown run label was asked for."""


def execute(profile: str | None = None, only: list[str] | None = None, store: str | Path = STORE,
            seeds: tuple[int, ...] = SEEDS, params: dict | None = None) -> float:
    """Run the notebooks of PLAN with papermill, seed by seed, into <store>/<this device's key>/<label>/seed<k>/,
    then those of AFTER (06, 07) with every seed; returns the wall time (s).

    `params` (Config fields, e.g. {"encoder": "bert-base-uncased", "precision": "fp32"}) go to every notebook; a
    field that a notebook fixes itself (its rung's pipeline, combine, sts_head) or PLAN sets is an error.

    Runs are resumed: a finished run of the same config is loaded, a killed one goes on from its checkpoint, so
    an interrupted `make report` loses at most the steps since the last checkpoint. One executed copy per notebook
    is kept, FIGURE_SEED's (<key>/notebooks/<label>.ipynb, its figures in <key>/figures/, none embedded twice).
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
    key = device_key(pick_device(Config.from_dict({**common, **({"profile": profile} if profile else {})})))
    start, here = time.time(), Path(store) / key          # relative paths are taken from the repository root
    repo_path(here / "notebooks").mkdir(parents=True, exist_ok=True)
    print(f"device key {key}: runs, notebooks and figures go to {here}/", flush=True)
    with tempfile.TemporaryDirectory(prefix="mtlib-report-") as scratch:   # other seeds' copies and figures
        for seed in seeds:
            for notebook, params, label in PLAN:
                if (only and label not in only) or (label in ONCE and seed != seeds[0]):
                    continue
                if "{equal_compute}" in params.values():
                    if key not in EQUAL_COMPUTE:
                        print(f"skipped {label}: no equal-compute step count is fixed for {key}; compute it with "
                              f"mtlib.report.cost.equal_compute_steps('{here}') and add it to EQUAL_COMPUTE in "
                              "mtlib/report/paper.py", flush=True)
                        continue
                    params = {k: EQUAL_COMPUTE[key][0] if v == "{equal_compute}" else v for k, v in params.items()}
                kept = seed == FIGURE_SEED or label in ONCE
                folder = here / label / f"seed{seed}"
                params = {**{k: str(here / v.format(seed=f"seed{seed}")) if k.endswith("_dir") else v
                             for k, v in params.items()},                  # PLAN's *_dir: in this device's store
                          "out_dir": str(folder), "seed": seed, "resume": True, "progress": False,
                          "figures_dir": str(here / "figures" if kept else Path(scratch) / label / f"seed{seed}"),
                          "figure_prefix": label, **({"profile": profile} if profile else {}), **common}
                executed = here / "notebooks" / f"{label}.ipynb" if kept else Path(scratch) / f"{label}-seed{seed}.ipynb"
                _papermill(notebook, executed, params, f"run {label}, seed {seed}")
        for notebook, params, label in AFTER:
            if only and label not in only:
                continue
            params = {**{k: str(here / v) for k, v in params.items()}, "out_dir": str(here / label),
                      "seeds": list(seeds), "resume": True, "progress": False,
                      **({"profile": profile} if profile else {}), **common}
            _papermill(notebook, here / "notebooks" / f"{label}.ipynb", params, f"seeds {', '.join(map(str, seeds))}")
    return time.time() - start


def tables(store: str | Path = STORE, results: str | Path = RESULTS, readme: str | Path | None = "README.md") -> list[Path]:
    """Every device's results page, the runs index and the README's generated blocks, from the store alone."""
    written = [write_results(Path(store) / key, repo_path(results) / f"{key}.md") for key in devices(store)]
    written.append(write_index(store, Path(results).parent / "runs.csv"))
    if readme:            # the README's tables, and docs/findings.md's sentences about each claim
        written.append(write_readme(readme, store))
        written.append(write_readme(Path(readme).parent / "docs" / "findings.md", store, FINDINGS_BLOCKS))
    return written


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
    slim(executed)
    print(f"  done in {(time.time() - t0) / 60:.1f} min", flush=True)


def slim(executed: Path) -> None:
    """Drop the images embedded in an executed notebook: each figure is a file in the figures folder already."""
    path = repo_path(executed)
    if not path.exists():          # papermill writes it even when a cell fails; nothing to slim otherwise
        return
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            for kind in [k for k in output.get("data", {}) if k.startswith("image/")]:
                del output["data"][kind]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m mtlib report")
    ap.add_argument("--execute", action="store_true", help="run the notebooks with papermill first")
    ap.add_argument("--profile", default=None, help="smoke, cpu or paper (default: $MTLIB_PROFILE, else auto)")
    ap.add_argument("--only", nargs="*", help="run labels to execute (default: all)")
    ap.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS), help="seeds to run (default: 0 1 2)")
    ap.add_argument("--store", default=STORE, help="the run store: <store>/<device key>/<label>/... (default: %(default)s)")
    ap.add_argument("--results", default=RESULTS, help="where each device's page goes, <results>/<key>.md, and "
                    "runs.csv beside it (default: %(default)s)")
    ap.add_argument("--readme", default="README.md", help="the README whose generated blocks are refreshed ('' : none)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="Config fields for every notebook, e.g. --set precision=fp32 encoder=bert-base-uncased")
    args = ap.parse_args(argv)
    if args.execute:
        wall = execute(args.profile, args.only, args.store, tuple(args.seeds), parse_params(args.set))
        print(f"notebooks executed in {wall / 60:.1f} min")
    for path in tables(args.store, args.results, args.readme or None):
        print(path)
