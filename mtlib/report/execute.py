"""`python -m mtlib report --execute`: every notebook of PLAN and AFTER with papermill, into this machine's part of
the run store (reports/runs/<device key>/), then `tables`; `python -m mtlib tables` (`make tables`): every results
page, reports/runs.csv and the README's blocks from the runs already there, for every device, without training."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from ..config import Config, ConfigError, field_defaults, parse_params
from ..models import pick_device
from ..notebook import ROOT
from ..store import STORE, device_key
from .front import ENCODER_BLOCKS, FINDINGS_BLOCKS, SPEED_BLOCKS, devices, write_readme
from .index import write_index
from .paper import AFTER, CPU_ONLY, FIGURE_SEED, ONCE, PLAN, SEEDS, equal_compute_epochs
from .runs import repo_path
from .tables import write_results
from .units import Unit, check_workers, dedup, print_commands as print_units, store_key

RESULTS = "reports/results"        # one generated page per device key: reports/results/<key>.md


class ReportError(RuntimeError):
    """A notebook failed under papermill, or an unknown run label was asked for."""


def execute(profile: str | None = None, only: list[str] | None = None, store: str | Path = STORE,
            seeds: tuple[int, ...] = SEEDS, params: dict | None = None, workers: int = 1, address: str | None = None,
            shared_fs: bool = True, print_commands: bool = False, last: str | None = None) -> float:
    """Run the notebooks of PLAN with papermill, seed by seed, into <store>/<this device's key>/<label>/seed<k>/,
    then those of AFTER (06, 07) with every seed; returns the wall time (s). With an encoder other than the default
    (`params`), the folder is <device key>+<encoder> (units.store_key): its rows and claims are its own.

    `params` (Config fields, e.g. {"encoder": "bert-base-uncased", "precision": "fp32"}) go to every notebook; a
    field that a notebook fixes itself (its rung's pipeline, combine, sts_head) or PLAN sets is an error.

    Runs are resumed: a finished run of the same config is loaded, a killed one goes on from its checkpoint, so
    an interrupted `make report` loses at most the steps since the last checkpoint. One executed copy per notebook
    is kept, FIGURE_SEED's (<key>/notebooks/<label>.ipynb, its figures in <key>/figures/, none embedded twice).

    The units (each notebook x seed; with Ray or print_commands also each run of 06 and 07, which their notebook
    then loads) run here one by one (`workers` 1, no address: no Ray), or as Ray tasks (mtlib.report.cluster:
    `workers` at once on each device, or on the cluster at `address`; `shared_fs` False: each task trains in a
    scratch folder and returns its runs), or are printed one a line (print_commands, then `last`, e.g. the tables'
    command), then nothing runs.
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
    config = {**common, **({"profile": profile} if profile else {})}
    start = time.time()
    # this machine's store folder: its device key, +<encoder> for another encoder (Ray's workers find their own)
    key = store_key(device_key(pick_device(Config.from_dict(config))), config.get("encoder"))
    if print_commands or workers > 1 or address:
        if print_commands:
            found = units(profile, only, store, seeds, common, key, expand=True)
            print_units(found, str(store), key, last)
            return 0.0
        from .cluster import Cluster
        with Cluster(workers, address, config) as cluster:
            cluster.run(units(profile, only, store, seeds, common, cluster.key, expand=True), repo_path(store),
                        shared_fs)
        return time.time() - start
    here = Path(store) / key                       # relative paths are taken from the repository root
    repo_path(here / "notebooks").mkdir(parents=True, exist_ok=True)
    print(f"device key {key}: runs, notebooks and figures go to {here}/", flush=True)
    with tempfile.TemporaryDirectory(prefix="mtlib-report-") as scratch:   # other seeds' copies and figures
        for unit in units(profile, only, store, seeds, common, key, scratch=scratch):
            unit.call()
    return time.time() - start


def units(profile: str | None, only: list[str] | None, store: str | Path, seeds: tuple[int, ...], common: dict,
          key: str, scratch: str | None = None, expand: bool = False) -> list[Unit]:
    """`execute`'s units, in the order it runs them one by one: PLAN's notebooks seed by seed, then AFTER's.
    `scratch`: where the copies and figures of the seeds not kept go. `expand`: each run of an AFTER notebook is a
    unit too, before the notebook (which then loads it); one that a rung trains already is that rung's unit."""
    here = Path(store) / key
    scratch = Path(scratch or tempfile.gettempdir())
    resolved = Config.from_dict({**common, **({"profile": profile} if profile else {})}).profile
    found, skipped = [], set()
    for seed in seeds:
        for notebook, params, label in PLAN:
            if (only and label not in only) or (label in ONCE and seed != seeds[0]):
                continue
            why = (f"its step count is the cpu profile's novel pipeline's, and this is the {resolved} profile"
                   if label in CPU_ONLY and resolved != "cpu" else
                   f"no equal-compute step count is fixed for {key}; compute it with mtlib.report.cost."
                   f"equal_compute_steps('{here}') and add it to EQUAL_COMPUTE in mtlib/report/paper.py"
                   if "{equal_compute}" in params.values() and not equal_compute_epochs(key) else None)
            if why:
                if label not in skipped:             # on stderr: --print-commands' stdout is a list of commands
                    print(f"skipped {label}: {why}", file=sys.stderr, flush=True)
                skipped.add(label)
                continue
            if "{equal_compute}" in params.values():
                params = {**{k: v for k, v in params.items() if v != "{equal_compute}"},
                          **equal_compute_epochs(key)}
            kept = seed == FIGURE_SEED or label in ONCE
            folder = here / label / f"seed{seed}"
            p = {**{k: str(here / v.format(seed=f"seed{seed}")) if k.endswith("_dir") else v
                    for k, v in params.items()},                      # PLAN's *_dir: in this device's store
                 "out_dir": str(folder), "seed": seed, "resume": True, "progress": False,
                 "figures_dir": str(here / "figures" if kept else scratch / label / f"seed{seed}"),
                 "figure_prefix": label, **({"profile": profile} if profile else {}), **common}
            executed = here / "notebooks" / f"{label}.ipynb" if kept else scratch / f"{label}-seed{seed}.ipynb"
            needs = tuple(v.format(seed=f"seed{seed}") for k, v in params.items() if k.endswith("_dir"))
            found.append(Unit(f"{label}, seed {seed}", label, _report_argv(label, [seed], profile, common),
                              (f"{label}/seed{seed}",), needs,
                              partial(_papermill, notebook, executed, p, f"run {label}, seed {seed}")))
    for notebook, params, label in AFTER:
        if only and label not in only:
            continue
        p = {**{k: str(here / v) for k, v in params.items()}, "out_dir": str(here / label),
             "seeds": list(seeds), "resume": True, "progress": False,
             **({"profile": profile} if profile else {}), **common}
        runs = after_runs(notebook, p, here) if expand else []
        found += [Unit(f"{label}: {name}", label, ("python", "-m", "mtlib", "run", *_items(config),
                                                   "out_dir={store}/{key}/" + folder), (folder,))
                  for name, folder, config in runs]
        found.append(Unit(label, label, _report_argv(label, seeds, profile, common), (),
                          tuple(folder for _, folder, _ in runs),
                          partial(_papermill, notebook, here / "notebooks" / f"{label}.ipynb", p,
                                  f"seeds {', '.join(map(str, seeds))}")))
    return dedup(found)


def after_runs(notebook: str, params: dict, here: Path) -> list[tuple[str, str, dict]]:
    """(name, run folder relative to `here`, config) of each run that 06 or 07 trains with these papermill
    parameters: what its run loop computes from its parameters cell (tests/test_cluster.py holds them equal)."""
    from ..surgery import METHODS
    from .paper import SMOKE_METHODS, ablation_configs
    from .runs import method_folder, run_folder
    ns = {**parameters_cell(notebook), **params}
    fields = {f.name for f in dataclasses.fields(Config)}
    smoke = Config(profile=ns.get("profile")).profile == "smoke"
    seeds = list(ns["seeds"] if ns.get("seeds") is not None else ([0] if smoke else [0, 1, 2]))
    out = repo_path(ns["out_dir"])
    runs = []
    if notebook == "06_gradient_methods":
        knobs = {k: v for k, v in ns.items() if k in fields - {"methods", "seeds", "combine_options", "out_dir",
                                                                 "pipeline", "combine", "sts_head", "seed"}}
        for method in list(ns.get("methods") or (SMOKE_METHODS if smoke else METHODS)):
            for seed in seeds:
                config = {**knobs, "pipeline": "multitask", "combine": method,
                          "combine_options": (ns.get("combine_options") or {}).get(method, ""), "sts_head": "cosine",
                          "seed": seed}
                folder = method_folder(out, method, seed, config)
                runs.append((f"combine={method}, seed {seed}", str(folder.relative_to(repo_path(here))), config))
    elif notebook == "07_beyond":
        knobs = {k: v for k, v in ns.items() if k in fields - {"seeds", "ablate", "out_dir", "seed"}}
        best = {k: ns[k] for k in ("pipeline", "combine", "sts_head", "para_head", "sts_loss", "schedule", "warmup",
                                   "merge", "merge_lambda", "merge_density")}
        for name, config in ablation_configs(best, list(ns["ablate"])).items():
            for seed in seeds:
                folder = out / run_folder(name) / f"seed{seed}"
                runs.append((f"{name}, seed {seed}", str(folder.relative_to(repo_path(here))),
                             {**knobs, **config, "seed": seed}))
    return runs


def parameters_cell(notebook: str) -> dict:
    """The values that notebooks/<notebook>.ipynb's `parameters` cell assigns."""
    nb = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def _items(config: dict) -> list[str]:
    """`key=value` items of a run's config for `python -m mtlib run`, leaving out what is the field's default."""
    defaults = field_defaults()
    return [f"{k}={_text(v)}" for k, v in config.items()
            if k in ("pipeline", "seed", "resume", "progress") or k not in defaults or v != defaults[k]]


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else "None" if value is None else str(value)


def _report_argv(label: str, seeds, profile: str | None, common: dict) -> tuple[str, ...]:
    """The `python -m mtlib report` command that executes one notebook for `seeds` alone, no tables."""
    return ("python", "-m", "mtlib", "report", "--execute", "--no-tables", "--only", label,
            "--seeds", *map(str, seeds), "--store", "{store}", *(("--profile", profile) if profile else ()),
            *(("--set", *(f"{k}={_text(v)}" for k, v in common.items())) if common else ()))


def tables(store: str | Path = STORE, results: str | Path = RESULTS, readme: str | Path | None = "README.md") -> list[Path]:
    """Every device's results page, the runs index, the README's and docs' generated blocks and reports/profile.md,
    from the store alone."""
    written = [write_results(Path(store) / key, repo_path(results) / f"{key}.md") for key in devices(store)]
    written.append(write_index(store, Path(results).parent / "runs.csv"))
    if readme:            # the README's tables, docs/findings.md's sentence on each claim, docs/speed.md's on parity
        written.append(write_readme(readme, store))
        written.append(write_readme(Path(readme).parent / "docs" / "findings.md", store, FINDINGS_BLOCKS))
        written.append(write_readme(Path(readme).parent / "docs" / "speed.md", store, SPEED_BLOCKS))
        written.append(write_readme(Path(readme).parent / "docs" / "encoders.md", store, ENCODER_BLOCKS))
        from .cost import PROFILED_KEY, profile_runs, write_profile     # here, not at the top: cost imports this
        if profile_runs(Path(store) / PROFILED_KEY):                      # the device profile.md profiles
            written.append(write_profile(out=Path(readme).parent / "reports" / "profile.md", store=store))
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


def _fields_beyond_the_cell(record: logging.LogRecord) -> bool:
    """papermill warns of each parameter its notebook's parameters cell does not list. Every Config field is a
    parameter by design, listed or not, and `mtlib.notebook.setup` checks what papermill injects (a name that is no
    field fails there, with the valid choices): so those lines, e.g. for the progress this module sets, are noise."""
    return not record.getMessage().startswith("Passed unknown parameter")


def _papermill(notebook: str, executed: Path, params: dict, what: str) -> None:
    """Execute notebooks/<notebook>.ipynb into `executed`; a failing cell becomes one ReportError line."""
    import papermill as pm
    if _fields_beyond_the_cell not in logging.getLogger("papermill").filters:
        logging.getLogger("papermill").addFilter(_fields_beyond_the_cell)
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
    ap.add_argument("--workers", default="1", help="units at once on each device: 1 (default) runs them here one "
                    "by one; more runs them on a local Ray, each with 1/N of the cores or of a GPU (docs/cluster.md)")
    ap.add_argument("--address", default=None, help="run the units on the Ray cluster at this address (docs/cluster.md)")
    ap.add_argument("--no-shared-fs", action="store_true", help="with Ray: each task trains in a scratch folder of "
                    "its worker and returns its runs, which this process writes into the store")
    ap.add_argument("--print-commands", action="store_true", help="with --execute: print each unit's command, one "
                    "a line in waves (for a SLURM job array or another scheduler), and run nothing")
    ap.add_argument("--no-tables", action="store_true", help="execute without regenerating the tables after")
    args = ap.parse_args(argv)
    workers = check_workers(args.workers)
    if args.print_commands and not args.execute:
        raise ReportError("--print-commands prints the units of --execute; add --execute")
    if args.execute:        # the tables only once every unit has ended: execute returns then, or raises
        last = None if args.no_tables else shlex.join(
            ["python", "-m", "mtlib", "tables", "--store", args.store, "--results", args.results, "--readme", args.readme])
        wall = execute(args.profile, args.only, args.store, tuple(args.seeds), parse_params(args.set), workers,
                       args.address, not args.no_shared_fs, args.print_commands, last)
        if args.print_commands:
            return
        print(f"notebooks executed in {wall / 60:.1f} min")
    if args.no_tables:
        return
    for path in tables(args.store, args.results, args.readme or None):
        print(path)
