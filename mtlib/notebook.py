"""The one call of every notebook's setup cell: its parameters -> a checked `Config`, paths from the repo root.

    nb = setup(globals(), pipeline="multitask", combine="sum", sts_head="mlp")   # what this notebook fixes
    baseline = nb.run("baseline")                                                # -> <out_dir>/baseline

Every `Config` field is a parameter: the parameters cell lists the rung's own knobs, and papermill's `-p NAME VALUE`
sets any field, listed or not (papermill injects a cell; `injected_names` reads it); a field in neither takes
Config's default (`profile=None`: $MTLIB_PROFILE). A name papermill injects that is neither a `Config` field nor one of the
notebook's own parameters (EXTRAS) is an error, as on the command line; so is one the notebook fixes.

`setup` also makes the kernel's working folder the repository root (relative paths in a notebook mean the same
under JupyterLab, papermill and nbval), and shows mtlib's warnings without machine paths, so an executed copy
in reports/ carries none.
"""
from __future__ import annotations

import ast
import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
# Parameters of the notebooks themselves, not of a run.
EXTRAS = ("figures_dir", "figure_prefix", "baseline_dir")
PAPERMILL_COMMENT = "# Parameters"        # the first line of the cell papermill injects after `parameters`


@dataclass
class Notebook:
    params: dict[str, Any]       # the Config fields as given (None: the profile's value)
    cfg: Config                  # ... and as a run sees them
    out: Path                    # out_dir, relative to the repository root where it lies inside it
    figures: Path                # figures_dir, else <out_dir>/figures
    extras: dict[str, Any]

    def run(self, name: str, **changes: Any) -> dict:
        """`pipelines.run` into <out_dir>/<name>: with resume (the default here), a finished run with the same
        settings is loaded instead of trained again; changed settings train again."""
        from .pipelines import run
        return run({**self.params, "out_dir": str(self.out / name), **changes})


def setup(namespace: dict[str, Any], **fixed: Any) -> Notebook:
    """Check a notebook's parameters (the globals of its kernel) and build its Config; `fixed` are the Config
    fields the notebook sets itself (its rung of the ladder)."""
    names = {f.name for f in fields(Config)}
    injected = injected_names(namespace)
    unknown = sorted(injected - names - set(EXTRAS))
    if unknown:
        Config.from_dict({name: namespace[name] for name in unknown})        # raises the CLI's error
    clash = sorted(name for name in injected & set(fixed) if namespace[name] != fixed[name])
    if clash:
        raise ConfigError(f"this notebook sets {', '.join(clash)} itself; drop {', '.join(clash)} from the "
                          "parameters (`python -m mtlib run` takes any combination)")
    params = {**{name: namespace[name] for name in names - set(fixed) if name in namespace}, **fixed}
    cfg = Config.from_dict(params)
    at_root()
    out = Path(shown(cfg.out_dir))
    extras = {name: namespace.get(name) for name in EXTRAS if name in namespace}
    figures = Path(shown(extras["figures_dir"])) if extras.get("figures_dir") else out / "figures"
    print(f"profile {cfg.profile}, encoder {cfg.encoder}, device {cfg.device}, seed {cfg.seed}, resume {cfg.resume}; "
          f"out_dir {out}/, figures {figures}/")
    params["out_dir"] = str(out)
    return Notebook(params, Config.from_dict(params), out, figures, extras)


def knobs(namespace: dict[str, Any], own: tuple[str, ...] = (), fixed: tuple[str, ...] = ()) -> dict[str, Any]:
    """For a notebook that trains many configurations (06, 07) in place of `setup`: every Config field its kernel
    holds, from its parameters cell or injected by papermill beyond it (so `make report --set precision=fp32`
    reaches every run), except `own`: the notebook's parameters that are not one run's field even where a field
    has the name (06's per-method combine_options, the notebook's out_dir). A name papermill injected that is
    neither a field, nor one of EXTRAS, nor one of `own` is an error, as in `setup`; so is one in `fixed` (what
    the notebook sets per run), and a bad value."""
    names = {f.name for f in fields(Config)}
    injected = injected_names(namespace)
    unknown = sorted(injected - names - set(EXTRAS) - set(own))
    if unknown:
        Config.from_dict({name: namespace[name] for name in unknown})        # raises the CLI's error
    clash = sorted(injected & set(fixed))
    if clash:
        raise ConfigError(f"this notebook sets {', '.join(clash)} itself, run by run; drop {', '.join(clash)} from "
                          "the parameters (`python -m mtlib run` takes any combination)")
    found = {name: namespace[name] for name in sorted(names - set(own) - set(fixed)) if name in namespace}
    Config.from_dict(found)                                                  # bad values fail before any training
    return found


def at_root() -> None:
    """Make the kernel's working folder the repository root and shorten mtlib's warnings, so that relative paths
    mean the same under JupyterLab, papermill and nbval and an executed copy carries no machine path; `setup`
    does it, and a notebook that runs many configurations (06, 07) calls it itself, then `shown(out_dir)`."""
    os.chdir(ROOT)
    _short_warnings()


def injected_names(namespace: dict[str, Any]) -> set[str]:
    """The names assigned by the last cell papermill injected in this kernel (none outside papermill)."""
    for source in reversed(namespace.get("In") or []):
        if source.lstrip().startswith(PAPERMILL_COMMENT):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                return set()
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    return set()


def shown(path: str | os.PathLike) -> str:
    """A path as notebooks show it: relative to the repository root when it lies inside it or in a folder beside
    it (`../shared/data/cs224n`); under $MTLIB_DATA_DIR elsewhere, as `$MTLIB_DATA_DIR/...`; else (`/tmp/...`), and
    when relative, as given. So an executed notebook carries no machine path."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    for candidate in (os.path.abspath(p), p.resolve()):     # as given first: ../shared may be a symbolic link
        relative = os.path.relpath(candidate, ROOT)
        if not relative.startswith(os.path.join(os.pardir, os.pardir)):
            return relative
    data = os.environ.get("MTLIB_DATA_DIR")
    if data and os.path.isabs(data):
        for candidate in (os.path.abspath(p), p.resolve()):
            relative = os.path.relpath(candidate, os.path.abspath(data))
            if not relative.startswith(os.pardir):
                return "$MTLIB_DATA_DIR" + ("" if relative == os.curdir else "/" + relative)
    return str(p)


def _short_warnings() -> None:
    """Show mtlib's warnings as `DataWarning: <message>` (no source file), with paths as `shown`:
    `../shared/data/cs224n/quora-dev.csv:244: skipped ...`."""
    original = warnings.formatwarning
    if getattr(original, "mtlib", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if not category.__module__.startswith("mtlib"):
            return original(message, category, filename, lineno, line)
        text = str(message)
        for folder in sorted(_folders_in(text), key=len, reverse=True):
            text = text.replace(folder, shown(folder))
        return f"{category.__name__}: {text}\n"

    formatwarning.mtlib = True
    warnings.formatwarning = formatwarning


def _folders_in(text: str) -> set[str]:
    """The folders of the absolute paths a warning names (each token up to its first ':')."""
    return {str(Path(token.split(":", 1)[0]).parent) for token in text.split() if token.startswith(os.sep)}
