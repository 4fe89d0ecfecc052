"""The one reader of run folders: a run's per-step log (metrics.jsonl, or metrics.jsonl.gz once compressed), its
metrics.json, and the folders of each notebook's runs (rungs, 06's methods, 07's ablation rows)."""
from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import IO

import pandas as pd

from ..data import TASK_NAMES
from ..notebook import ROOT, shown
from .paper import SAME_RUNS, SINGLE, TASK_PAIRS

LOG = "metrics.jsonl"


def repo_path(path: str | os.PathLike) -> Path:
    """A relative path is taken from the repository root, wherever the notebook kernel was started."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def log_path(out_dir: str | Path) -> Path | None:
    """A run's per-step log: metrics.jsonl while it is live, metrics.jsonl.gz once compressed; None: neither."""
    return next((p for p in (Path(out_dir) / LOG, Path(out_dir) / f"{LOG}.gz") if p.is_file()), None)


def open_log(out_dir: str | Path) -> IO[str]:
    """The run's per-step log (`log_path`) open for reading as text, gzipped or not."""
    path = log_path(out_dir)
    if path is None:
        raise FileNotFoundError(f"{Path(out_dir) / LOG}: no such file (nor {LOG}.gz)")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _records(out_dir: str | Path) -> list[dict]:
    with open_log(out_dir) as f:
        return [json.loads(line) for line in f]


def steps(out_dir: str | Path, stage: str | None = None) -> pd.DataFrame:
    """Per-step telemetry of a run (losses, gradient cosines and norms) as a DataFrame."""
    rows = _records(out_dir)
    df = pd.DataFrame([r for r in rows if r["type"] == "step" and (stage is None or r["stage"] == stage)])
    return df.reset_index(drop=True).rename_axis("global_step").reset_index()


def epochs(out_dir: str | Path) -> pd.DataFrame:
    rows = _records(out_dir)
    return pd.DataFrame([r for r in rows if r["type"] == "epoch"])


def gradient_frame(out_dir: str | Path, stage: str = "multitask", window: int = 25) -> pd.DataFrame:
    """Cosines of the raw task gradients (and their rolling means) and the fraction of each task's
    gradient norm that survives projection, per step of `stage`."""
    s = steps(out_dir, stage)
    for a, b in TASK_PAIRS:
        s[f"cos_{a}_{b}_smooth"] = s[f"cos_{a}_{b}"].rolling(window, min_periods=1).mean()
    for t in ("sst", "para", "sts"):
        s[f"kept_{t}"] = s[f"norm_after_{t}"] / s[f"norm_before_{t}"].clip(lower=1e-12)
        s[f"kept_{t}_smooth"] = s[f"kept_{t}"].rolling(window, min_periods=1).mean()
    return s


def finished_runs(folder: str | Path, pattern: str) -> dict[int, tuple[Path, dict]]:
    """{seed: (run folder, metrics.json)} of the finished runs under `folder` whose metrics.json matches `pattern`
    (a glob whose one `seed*` part names the seed: "seed*/<sub>" for a rung's row, "seed*" for 06's and 07's)."""
    found = {}
    for path in repo_path(folder).glob(f"{pattern}/metrics.json"):
        seed = next(p for p in path.relative_to(repo_path(folder)).parts if p.startswith("seed"))
        found[int(seed.removeprefix("seed"))] = (path.parent, json.loads(path.read_text()))
    return dict(sorted(found.items()))


def seed_runs(runs_dir: str | Path, label: str, sub: str) -> dict[int, dict]:
    """{seed: metrics.json} of the finished runs of one row (<runs_dir>/<label>/seed<k>/<sub>/metrics.json)."""
    return {k: m for k, (_, m) in finished_runs(repo_path(runs_dir) / label, f"seed*/{sub}").items()}


def single_task_runs(runs_dir: str | Path) -> dict[str, dict[int, dict]]:
    """{"05_novel-no-dropout/seed<k>/novel": {seed: metrics.json}} of every novel run of a notebook's folder (01-07)
    whose first stage trained the three single-task models."""
    root, found = repo_path(runs_dir), {}
    for path in sorted(root.glob("0[1-7]_*/**/metrics.json")):
        m = json.loads(path.read_text())
        if {s["name"] for s in m.get("stages", [])} >= set(SINGLE):
            parts = path.parent.relative_to(root).parts
            seed = next((p for p in parts if re.fullmatch(r"seed\d+", p)), None)
            if seed is not None:
                row = "/".join("seed<k>" if p == seed else p for p in parts)
                found.setdefault(row, {})[int(seed[4:])] = m
    return found


def last_epoch(m: dict) -> dict:
    """A finished run's dev metrics at the last epoch of its final stage (from the history metrics.json logs), whichever
    epoch it kept: numbers chosen without looking at dev. `m` itself holds the kept (by default the best) epoch's."""
    final = next((s for s in m.get("stages", []) if s["name"] == m.get("final_stage")), None)
    return final["history"][-1] if final and final.get("history") else m


def method_folder(out: str | Path, method: str, seed: int, config: dict | None = None) -> Path:
    """Where 06's run of `method` and `seed` lies. A rung of the ladder trains the configs of 06's `sum` (03's CS)
    and `pcgrad` (04's CS + GS, paper.SAME_RUNS): their home is the rung's folder beside <out>
    (<out>/../<rung>/seed<k>/<row>), where both notebooks find one run, whichever ran first, and none is copied.
    Every other method, and a shared one whose rung run has another config (`config`: what 06 asks for), lies in
    <out>/<method>/seed<k>."""
    own, shared = Path(out) / method / f"seed{seed}", SAME_RUNS.get(("06_gradient_methods", method))
    if shared is None or own.exists():
        return own
    rung = Path(out).parent / shared[0] / f"seed{seed}" / shared[1]
    if config is not None and (rung / "metrics.json").exists():
        from ..config import Config
        from ..pipelines import changed_keys
        if changed_keys(json.loads((rung / "metrics.json").read_text())["config"], Config.from_dict(config).to_dict()):
            return own
    return rung


def method_runs(out: str | Path, methods, seeds) -> dict[str, dict[int, dict]]:
    """{method: {seed: metrics.json}} of 06's finished runs (`method_folder`)."""
    found = {}
    for method in methods:
        for seed in seeds:
            path = method_folder(repo_path(out), method, seed) / "metrics.json"
            if path.exists():
                found.setdefault(method, {})[seed] = json.loads(path.read_text())
    return found


def method_telemetry(out_dir: str | Path, stage: str = "multitask") -> dict:
    """Median step time, the median step time over the step's own forward + backward time (`per_fb`: the work
    every method shares, so the machine's speed cancels), median pairwise cosine of the raw task gradients (all
    pairs, all steps), mean conflicting pairs per step, and each task's median share of the update (`share <task>`:
    |w_t g_t| over the sum of the three, from the logged norm_after_<task>), from a run's metrics.jsonl; NaN for
    a run that kept no per-step log."""
    if log_path(out_dir) is None:
        return {k: float("nan") for k in ("step_s", "per_fb", "median cos", "conflicts / step",
                                          *(f"share {t}" for t in TASK_NAMES))}
    s = steps(out_dir, stage)
    cosines = s[[f"cos_{a}_{b}" for a, b in TASK_PAIRS if f"cos_{a}_{b}" in s]].to_numpy().ravel()
    per_fb = (s["step_s"] / (s["t_forward"] + s["t_backward"])).median() if "t_forward" in s else float("nan")
    after = [f"norm_after_{t}" for t in TASK_NAMES]
    share = (s[after].div(s[after].sum(axis=1), axis=0).median().to_numpy() if set(after) <= set(s)
             else [float("nan")] * len(after))
    return {"step_s": float(s["step_s"].median()), "per_fb": float(per_fb),
            "median cos": float(pd.Series(cosines).median()), "conflicts / step": float(s["conflicts"].mean()),
            **{f"share {t}": float(v) for t, v in zip(TASK_NAMES, share)}}


def run_folder(name: str) -> str:
    """A folder name for an ablation row: "sts_head=mlp, sts_loss=mse" -> "sts_head-mlp+sts_loss-mse". Only each
    change's first `=` becomes `-`: "loss_weights=sts=0.5" -> "loss_weights-sts=0.5"."""
    return "+".join(change.replace("=", "-", 1) for change in name.split(", "))


def ablation_runs(out: str | Path) -> dict[str, list[dict]]:
    """{row name: [metrics.json of each finished seed]} of an ablation's runs (<out>/<run_folder(name)>/seed<k>),
    the `best` row first: what `ablation_table` reads, from disk."""
    found: dict[str, list[dict]] = {}
    def order(path: Path):                          # best first, then by row name and seed number
        return path.parent.parent.name != "best", path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
    for path in sorted(Path(out).glob("*/seed*/metrics.json"), key=order):
        name = path.parent.parent.name.replace("+", ", ").replace("-", "=")        # run_folder, inverted
        m = json.loads(path.read_text())
        # where it lies now (as `pipelines.run` reports a loaded run): a row's folder is renamed when the best
        # configuration changes and the row it was becomes another
        m["config"]["out_dir"] = shown(path.parent.resolve())
        found.setdefault(name, []).append(m)
    return found


def best_run(seeds: list[dict]) -> dict:
    """The seed's metrics.json with the highest dev `overall` (chosen on dev only)."""
    return max(seeds, key=lambda m: m["overall"])


def runs_by_seed(seeds: list[dict]) -> dict[int, dict]:
    """A row's runs ({seed: metrics.json}), those whose config names their seed: what pairs rows by seed."""
    return {m["config"]["seed"]: m for m in seeds if "seed" in m.get("config", {})}


def cpu_fraction(m: dict) -> float | None:
    """A run's CPU seconds over wall seconds x threads (None where not recorded)."""
    return m["cpu_s"] / (m["wall_s"] * m["threads"]) if m.get("cpu_s") and m.get("threads") else None


def cpu_use(m: dict) -> str:
    return f"{cpu_fraction(m):.0%}" if cpu_fraction(m) is not None else ""


def shared_machine(m: dict) -> bool:
    """Whether a CPU run shared the machine: its CPU seconds below 95% of wall seconds x threads (runs that had
    the 2-core machine to themselves measure 96-98%; one beside the test suite, 72-92%)."""
    use = cpu_fraction(m)
    return not str(m.get("device", "cpu")).startswith("cuda") and use is not None and use < 0.95


def quiet_run(m: dict) -> bool | None:
    """Whether a run's wall time is the code's speed: trained in one process (not resumed), on a machine it had to
    itself (CPU use ≥ 95%). None: not resumed, but made before CPU use was recorded, so it cannot tell."""
    if m.get("resumed") or shared_machine(m):
        return False
    return True if cpu_fraction(m) is not None or str(m.get("device", "")).startswith("cuda") else None


def timed_runs(items: list, meta=lambda x: x) -> tuple[list, bool]:
    """The items (runs, or what `meta` reads a run's metrics from) whose wall time counts as the code's speed: those
    known quiet (True); where there are none, those of unknown CPU use (False)."""
    quiet = [x for x in items if quiet_run(meta(x))]
    return (quiet, True) if quiet else ([x for x in items if quiet_run(meta(x)) is None], False)
