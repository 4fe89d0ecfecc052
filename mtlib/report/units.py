"""The units of `python -m mtlib report --execute` and `python -m mtlib explore`: one notebook x seed, or one run.

Both commands first build their list of units, then run them in order in this process (`--workers 1`, the default:
no Ray), print them (`--print-commands`), or hand them to Ray (mtlib.report.cluster). A unit carries its own
command line, so each one can run anywhere the repository is installed: `{store}` in it stands for the run store
and `{key}` for the device key of the machine that runs it (mtlib.store).

A unit names the run folders it writes (`outputs`) and reads (`needs`), relative to <store>/<device key>/. Two
units that would write one run are one unit (`dedup`: 06's `sum` run is 03's CS run, paper.SAME_RUNS), and a unit
that reads another's run starts after it (`after`). Units linked so, and the seeds of one row, form a group that
runs on one device kind (`groups`), so that claims can pair them.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable


@dataclass(frozen=True)
class Unit:
    name: str                       # how the lines about it name it: "01_baseline, seed 0"
    row: str                        # its row: the units of one row run on one device kind
    argv: tuple[str, ...]           # "python", "-m", "mtlib", ...: {store} and {key} are filled where it runs
    outputs: tuple[str, ...]        # run folders it writes, relative to <store>/<key>/
    needs: tuple[str, ...] = ()     # run folders it reads (another unit's outputs): it starts after that unit
    call: Callable[[], object] | None = None    # what the sequential path calls; None: another unit trains it there

    def command(self, store: str, key: str) -> str:
        return shlex.join(fill(self.argv, store, key))


def store_key(device: str, encoder: str | None = None) -> str:
    """The store folder a run of `encoder` trained on `device` (its device key) goes to: the device key itself for
    the default encoder, else <device key>+<the encoder's own name> (an alias resolved, a hub name or a folder by its
    last part: `sentence-transformers/all-mpnet-base-v2` -> `+all-mpnet-base-v2`). Rows, claims and results pages are
    per folder, so two encoders' runs never share a row or a claim, and a run of another encoder never trains over
    the default's run of the same label."""
    from ..config import DEFAULT_ENCODER
    from ..encoders import ALIASES
    name = PurePath(ALIASES.get(encoder, encoder) if encoder else DEFAULT_ENCODER).name
    return device if name == DEFAULT_ENCODER else f"{device}+{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-')}"


def split_key(key: str) -> tuple[str, str]:
    """`store_key` read back: (device key, encoder) of a store folder's name; encoder "" for the default's folder."""
    device, _, encoder = key.partition("+")
    return device, encoder


def fill(argv, store: str, key: str) -> list[str]:
    """The command with the run store and the device key in place (replace, not format: a value may hold braces)."""
    return [a.replace("{store}", store).replace("{key}", key) for a in argv]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def dedup(units: list[Unit]) -> list[Unit]:
    """The units without those whose every output an earlier unit writes already (its run is that unit's)."""
    kept: list[Unit] = []
    for unit in units:
        if unit.outputs and all(any(_inside(o, k) for k in (x for u in kept for x in u.outputs)) for o in unit.outputs):
            continue
        kept.append(unit)
    return kept


def after(units: list[Unit]) -> list[set[int]]:
    """For each unit, the indexes of the units that write what it reads."""
    return [{j for j, other in enumerate(units) if j != i and any(_inside(n, o) for n in unit.needs for o in other.outputs)}
            for i, unit in enumerate(units)]


def stages(units: list[Unit]) -> list[list[int]]:
    """The units in waves: each wave's units read only what earlier waves write (a unit's list order is kept)."""
    deps, level = after(units), {}

    def depth(i: int, seen: tuple[int, ...] = ()) -> int:
        if i in seen:
            raise ValueError(f"units {', '.join(units[j].name for j in seen)} read each other's runs")
        if i not in level:
            level[i] = 1 + max((depth(j, seen + (i,)) for j in deps[i]), default=-1)
        return level[i]
    waves: list[list[int]] = []
    for i in range(len(units)):
        d = depth(i)
        waves.extend([] for _ in range(d + 1 - len(waves)))
        waves[d].append(i)
    return waves


def groups(units: list[Unit]) -> list[int]:
    """For each unit, its group's number: units of one row, and units one reads from another, share a group."""
    parent = list(range(len(units)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    first: dict[str, int] = {}
    for i, unit in enumerate(units):
        parent[root(i)] = root(first.setdefault(unit.row, i))
    for i, deps in enumerate(after(units)):
        for j in deps:
            parent[root(i)] = root(j)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(len(units))]


def print_commands(units: list[Unit], store: str, key: str, last: str | None = None) -> None:
    """Each unit's command, one a line, for a SLURM job array or another scheduler. Where some units read others'
    runs, `# wave N` lines split them: a wave's lines are independent, and start once the waves above have ended.
    `last`: a command for after every unit (e.g. `python -m mtlib tables`)."""
    waves = stages(units)
    marked = len(waves) > 1 or last is not None
    for n, wave in enumerate(waves, start=1):
        if marked:
            print(f"# wave {n} of {len(waves) + (last is not None)}: {len(wave)} independent line(s)"
                  + (", after the waves above have ended" if n > 1 else ""))
        for i in wave:
            print(units[i].command(store, key))
    if last is not None:
        print(f"# wave {len(waves) + 1} of {len(waves) + 1}: the tables, once every unit has ended\n{last}")


def check_workers(value: str | int) -> int:
    """--workers: a whole number >= 1, else one line saying what it takes."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise ValueError(f"--workers {value}: give how many units run at once on each device, a whole number: 1 "
                         "(the default) runs them here one by one, 2 or more on Ray (docs/cluster.md)")
    return n
