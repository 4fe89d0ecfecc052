"""07's exploration grid: the configurations tried beside 07_beyond's ablation to choose the best one, as a committed
list (reports/explore-07.txt) that `python -m mtlib explore` (`make explore`) trains, resumably.

One configuration a line: the knob=value changes against the best configuration (paper.BEST), space-separated, and
the seeds, e.g.

    ema=0.99  seeds=0,1,2
    epochs=2 steps_per_epoch=0 schedule=linear ema=0.99  seeds=0,1,2     # one row, four changes

`#` starts a comment. Each (line, seed) unit is `pipelines.run(BEST + changes, profile, seed, resume=true)` into
<store>/<device key>/07_explore/<row folder>/seed<k>, the row folder being the changes joined by `+` with each `=`
written as `-` (runs.run_folder; results.md's "Other configurations tried" reads them from there). resume=true: a
finished run with the same config is loaded, not trained again, and an interrupted one goes on from its checkpoint.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, ConfigError
from ..notebook import ROOT, shown
from ..store import STORE
from .paper import BEST
from .runs import run_folder
from .units import Unit, check_workers, print_commands as print_units, store_key

GRID = "reports/explore-07.txt"
LABEL = "07_explore"
# set by the runner for every unit: a line may not set them
RESERVED = ("seed", "seeds", "profile", "out_dir", "resume", "progress", "data_dir", "encoder")


class GridError(ValueError):
    """A line of a grid file that cannot be read: the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Row:
    changes: dict[str, str]      # knob -> value as written in the grid (so the folder name is the committed one)
    seeds: tuple[int, ...]
    line: int

    @property
    def name(self) -> str:
        """"epochs=2, steps_per_epoch=0": how results.md names the row."""
        return ", ".join(f"{k}={v}" for k, v in self.changes.items())

    @property
    def folder(self) -> str:
        return run_folder(self.name)

    def config(self) -> dict:
        return {**BEST, **self.changes}


def parse_grid(text: str, path: str = GRID) -> list[Row]:
    """The rows of a grid file's text (`path` only names it in errors)."""
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue

        def bad(problem: str, fix: str) -> GridError:
            return GridError(f"{path}:{number}: {problem}; {fix} (line: {raw.strip()!r})")

        changes: dict[str, str] = {}
        seeds: tuple[int, ...] | None = None
        for item in line.split():
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                raise bad(f"{item!r} is not knob=value",
                          "write each change as knob=value and the seeds as seeds=0,1,2, e.g. 'ema=0.99  seeds=0,1,2'")
            if key == "seeds":
                if seeds is not None:
                    raise bad("seeds= is given twice", "give one seeds=0,1,2 per line")
                try:
                    seeds = tuple(int(s) for s in value.split(","))
                except ValueError:
                    raise bad(f"seeds={value} is not a comma-separated list of whole numbers",
                              "write e.g. seeds=0,1,2") from None
                if len(set(seeds)) != len(seeds) or min(seeds) < 0:
                    raise bad(f"seeds={value} repeats a seed or has a negative one", "list each seed >= 0 once")
                continue
            if key in RESERVED:
                raise bad(f"{key}= is set for every run by `python -m mtlib explore`",
                          "remove it (--profile, --seeds, --store, --encoder choose those)")
            if key in changes:
                raise bad(f"{key}= is given twice", "keep one value per knob; a second value is another line")
            changes[key] = value
        if seeds is None:
            raise bad("the line has no seeds", "add the seeds to train, e.g. seeds=0,1,2")
        if not changes:
            raise bad("the line changes nothing", "name a knob=value to change against BEST (the best row itself "
                      "is 07_beyond's `best`)")
        try:
            Config.from_dict({**BEST, **changes, "profile": "cpu"})
        except ConfigError as err:
            raise bad(str(err), "fix the change (valid names and values: docs/knobs.md)") from None
        row = Row(changes, seeds, number)
        if row.folder in seen:
            raise bad(f"it is line {seen[row.folder]}'s row again", "merge the two lines' seeds into one line")
        seen[row.folder] = number
        rows.append(row)
    return rows


def read_grid(path: str | Path = GRID) -> list[Row]:
    p = Path(path)
    p = p if p.is_absolute() or p.exists() else ROOT / p      # the default works from any folder
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise GridError(f"{path}: cannot be read ({err.strerror}); give --grid <a grid file, e.g. {GRID}>") from None
    return parse_grid(text, shown(p.resolve()) if p.is_absolute() else str(path))


def select(rows: list[Row], only: list[str] | None = None, seeds: list[int] | None = None) -> list[tuple[Row, int]]:
    """The (row, seed) units to run: each row's seeds (or `seeds` for every row), rows named in `only` (folder or
    `knob=value,...` name) alone."""
    if only:
        known = {r.folder for r in rows} | {r.name for r in rows}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise GridError(f"unknown row(s) {', '.join(unknown)}; valid: {', '.join(r.folder for r in rows)}")
        rows = [r for r in rows if r.folder in only or r.name in only]
    return [(r, s) for r in rows for s in (seeds if seeds else r.seeds)]


def unit_params(row: Row, seed: int, profile: str, out_dir: str | Path, encoder: str | None = None) -> dict:
    """What `pipelines.run` gets for one unit."""
    return {**row.config(), **({"encoder": encoder} if encoder else {}), "profile": profile, "seed": seed,
            "resume": True, "progress": False, "out_dir": str(out_dir)}


def command_line(params: dict) -> str:
    """The `python -m mtlib run ...` line that runs the same unit."""
    return shlex.join(["python", "-m", "mtlib", "run", *run_items(params)])


def run_items(params: dict) -> list[str]:
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items()]


def this_device(profile: str, encoder: str | None = None) -> str:
    """This machine's store folder for the grid's runs: its device key, +<encoder> for another encoder."""
    from ..store import here
    return store_key(here(Config(profile=profile)), encoder)


def explore(grid: str | Path = GRID, profile: str = "cpu", seeds: list[int] | None = None,
            only: list[str] | None = None, store: str | Path | None = None, print_commands: bool = False,
            key: str | None = None, workers: int = 1, address: str | None = None, shared_fs: bool = True,
            encoder: str | None = None) -> list[dict]:
    """Run (or, with print_commands, print) every unit of the grid; the metrics of each run (none when printing;
    with Ray, whose units run in their own processes, each unit's {name, status, key, attempt})."""
    selected = select(read_grid(grid), only, seeds)
    chosen = {"encoder": encoder} if encoder else {}         # every unit's encoder, where not the default
    root = Path(store) if store is not None else ROOT / STORE
    if profile == "smoke" and root.resolve() == (ROOT / STORE).resolve():
        raise GridError(f"profile=smoke would replace the committed cpu-profile runs in {STORE}/; "
                        "give --store <another folder> for smoke runs")
    found = [Unit(f"{LABEL} {row.name}, seed {seed}", row.folder,
                  ("python", "-m", "mtlib", "run", *run_items(unit_params(row, seed, profile, "{store}/{key}/"
                                                                          f"{LABEL}/{row.folder}/seed{seed}", encoder))),
                  (f"{LABEL}/{row.folder}/seed{seed}",))
             for row, seed in selected]
    if print_commands or workers > 1 or address:
        if print_commands:
            print_units(found, shown(root.resolve()) if root.is_absolute() else str(root), key or this_device(profile, encoder))
            return []
        from .cluster import Cluster
        with Cluster(workers, address, {"profile": profile, **chosen}) as cluster:
            return cluster.run(found, root, shared_fs)
    key = key or this_device(profile, encoder)
    results = []
    for i, (row, seed) in enumerate(selected, start=1):
        out = root / key / LABEL / row.folder / f"seed{seed}"
        params = unit_params(row, seed, profile, shown(out.resolve()) if out.is_absolute() else out, encoder)
        from ..pipelines import run
        print(f"[explore {i}/{len(selected)}] {row.name}, seed {seed} -> {params['out_dir']}", flush=True)
        # the run records out_dir in config.json and its command: relative to the repository root where the run
        # starts there (a committed run carries no machine path), absolute otherwise (a relative one would land
        # under another working directory)
        here = not Path(params["out_dir"]).is_absolute() and Path.cwd().resolve() == ROOT.resolve()
        metrics = run({**params, "out_dir": params["out_dir"] if here else str(out)})
        print(f"[explore {i}/{len(selected)}] {row.name}, seed {seed}: overall={metrics['overall']:.3f}", flush=True)
        results.append(metrics)
    return results


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m mtlib explore",
                                 description="Train 07's exploration grid (BEST with each line's changes), resumably.")
    ap.add_argument("--grid", default=GRID, help=f"the grid file (default {GRID})")
    ap.add_argument("--profile", default="cpu", help="smoke, cpu (default; the committed runs) or paper")
    ap.add_argument("--seeds", type=int, nargs="+", help="these seeds for every line (default: each line's seeds=)")
    ap.add_argument("--only", nargs="+", metavar="ROW", help="these rows alone (folder name, e.g. ema-0.99)")
    ap.add_argument("--store", default=None, help=f"the run store (default {STORE}): runs go to "
                    f"<store>/<device key>/{LABEL}/<row>/seed<k>")
    ap.add_argument("--encoder", default=None, help="the encoder of every run (default: the bundled "
                    "all-MiniLM-L6-v2); another goes to <store>/<device key>+<encoder>/, its own rows and best row")
    ap.add_argument("--print-commands", action="store_true",
                    help="print each unit's `python -m mtlib run ...` line instead of running it")
    ap.add_argument("--workers", default="1", help="units at once on each device: 1 (default) runs them here one "
                    "by one; more runs them on a local Ray, each with 1/N of the cores or of a GPU (docs/cluster.md)")
    ap.add_argument("--address", default=None, help="run the units on the Ray cluster at this address (docs/cluster.md)")
    ap.add_argument("--no-shared-fs", action="store_true", help="with Ray: each task trains in a scratch folder of "
                    "its worker and returns its run, which this process writes into the store")
    args = ap.parse_args(argv)
    explore(args.grid, args.profile, args.seeds, args.only, args.store, args.print_commands,
            workers=check_workers(args.workers), address=args.address, shared_fs=not args.no_shared_fs,
            encoder=args.encoder)
