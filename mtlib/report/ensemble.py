"""Ensembles of finished runs: `python -m mtlib ensemble RUN... [--out DIR]` averages the runs' probabilities
(each run's probabilities.npz, docs/ensembles.md): SST's softmax (then its argmax), Quora's sigmoid (then > 0.5) and
the STS score, and writes the leaderboard files and dev metrics of the average. `make tables` adds the ensemble of a
row's seeds beside the row (`seed_ensemble`). Runs of two devices, or scored on other data, are never averaged."""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..data import TASKS, load_task, texts_digest
from ..evaluate import METRIC, PROBABILITIES, score, split_record, write_leaderboard
from ..notebook import shown
from ..store import RECORD, record

SPLITS = ("dev", "test")
KEYS = tuple(f"{t}-{s}" for t in TASKS for s in SPLITS)
RESULT = "ensemble.json"      # an ensemble's dev metrics and members (not metrics.json: no tool takes it for a run)
RULE = {"sst": "argmax of the mean softmax", "para": "mean sigmoid > 0.5", "sts": "mean score"}


class EnsembleError(ValueError):
    """Runs that cannot be averaged: unfinished, without probabilities, of another device or other data."""


def member(folder: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metrics.json, the arrays of probabilities.npz) of a finished run; EnsembleError naming the run and the fix."""
    folder = Path(folder)
    if not (folder / "metrics.json").is_file():
        started = (folder / RECORD).is_file() or (folder / "config.json").is_file()
        raise EnsembleError(f"{folder}: " + ("the run has not finished (no metrics.json): let it finish, or go on "
                                             "with resume=true, before ensembling it" if started else
                                             "not a run folder (no metrics.json): give the out_dir of a finished run"))
    m = json.loads((folder / "metrics.json").read_text())
    path = folder / PROBABILITIES
    if not path.is_file():
        raise EnsembleError(f"{path}: no such file: the run (mtlib {m.get('versions', {}).get('mtlib', '?')}) finished "
                            "before runs saved their probabilities; train it again (the command in its run.json) to "
                            "ensemble it")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    needed = [k + part for k in KEYS for part in ("", "-ids", "-data")] + [f"{t}-dev-labels" for t in TASKS]
    missing = [name for name in needed if name not in arrays]
    if missing:
        raise EnsembleError(f"{path} lacks {', '.join(missing)}: not a run's probabilities file (or a damaged one); "
                            "train the run again")
    return m, arrays


def device_of(folder: Path, m: dict) -> str | None:
    return m.get("device_key") or (record(folder) or {}).get("device_key")


def decide(task: str, probs: np.ndarray) -> np.ndarray:
    """Predictions from (mean) probabilities: SST's class of highest probability, Quora's p > 0.5, the STS score."""
    if task == "sst":
        return probs.argmax(axis=1)
    return (probs > 0.5).astype(np.int64) if task == "para" else probs


def ensemble(folders: list[str | Path]) -> dict:
    """The average of finished runs' probabilities: {"metrics": dev metrics (`evaluate.score`, `overall` their mean),
    "probs" and "preds": {"<task>-<split>": array}, "record": the first run's fingerprints and dev labels,
    "members": [one line per run], "device_key"}. EnsembleError (one line: the run and the reason) for fewer than two
    runs, a run given twice, a run unfinished or without probabilities, another device key, other ids or data."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise EnsembleError(f"an ensemble needs two runs or more; got {len(folders)}")
    seen = [f.resolve() for f in folders]
    twice = next((f for i, f in enumerate(folders) if seen[i] in seen[:i]), None)
    if twice is not None:
        raise EnsembleError(f"{twice}: given twice; each run counts once")
    loaded = [member(f) for f in folders]
    first, (m0, a0) = folders[0], loaded[0]
    key = device_of(first, m0)
    for folder, (m, arrays) in zip(folders[1:], loaded[1:]):
        if device_of(folder, m) != key:
            raise EnsembleError(f"{folder}: a run of device {device_of(folder, m)}, and {first} is {key}: an ensemble "
                                "never mixes devices (nor does a row); ensemble each device's runs apart")
        for k in KEYS:
            if arrays[f"{k}-ids"] != a0[f"{k}-ids"]:
                raise EnsembleError(f"{folder}: its {k} examples are not {first}'s (other ids, or another order: "
                                    "another data folder or max_eval); ensemble runs scored on the same examples")
            if arrays[f"{k}-data"] != a0[f"{k}-data"]:
                raise EnsembleError(f"{folder}: its {k} ids are {first}'s but their sentences or labels differ "
                                    "(another copy of the data); ensemble runs scored on the same data")
    probs = {k: np.mean([arrays[k].astype(np.float64) for _, arrays in loaded], axis=0) for k in KEYS}
    preds = {k: decide(k.split("-")[0], p) for k, p in probs.items()}
    metrics = {METRIC[t]: score(t, a0[f"{t}-dev-labels"], preds[f"{t}-dev"]) for t in TASKS}
    metrics["overall"] = float(np.mean(list(metrics.values())))
    members = [{"run": shown(f.resolve()), "device_key": device_of(f, m), "seed": m["config"].get("seed"),
                "mtlib": m.get("versions", {}).get("mtlib"), **{k: m[k] for k in (*METRIC.values(), "overall")}}
               for f, (m, _) in zip(folders, loaded)]
    return {"metrics": metrics, "probs": probs, "preds": preds, "device_key": key, "members": members,
            "record": {k: v for k, v in a0.items() if k not in KEYS}, "config": m0["config"]}


def seed_ensemble(folders: list[Path]) -> dict | None:
    """What `make tables` shows beside a row: the dev metrics of the ensemble of its runs (`folders`, one per seed)
    where there are two or more and every one saved its probabilities; None where not (runs from before probabilities
    were saved: the committed pages stay as they are); {"refused": reason} where the runs cannot be averaged."""
    if len(folders) < 2 or not all((Path(f) / PROBABILITIES).is_file() for f in folders):
        return None
    try:
        return ensemble(folders)["metrics"]
    except EnsembleError as err:
        return {"refused": str(err)}


def dev_sizes(folder: str | Path) -> dict[str, int]:
    """{metric: how many dev examples scored it} from a run's probabilities.npz (its dev labels); {} without one."""
    path = Path(folder) / PROBABILITIES
    if not path.is_file():
        return {}
    with np.load(path) as arrays:
        return {METRIC[t]: len(arrays[f"{t}-dev-labels"]) for t in TASKS if f"{t}-dev-labels" in arrays.files}


def examples(result: dict, data_dir: str | Path | None = None) -> dict[str, list[str]]:
    """The ids of every dev and test example, from the data (a run does not store them; its fingerprints pin them):
    the CS224N files in `data_dir` (default: $MTLIB_DATA_DIR, else data/cs224n), cut to the runs' max_eval, checked
    against the runs' fingerprints."""
    from ..config import Config
    cfg = Config.from_dict({**result["config"], "data_dir": None if data_dir is None else str(data_dir),
                            "progress": False})
    ids = {}
    for task in TASKS:
        for split, rows in load_task(task, cfg.data_dir, SPLITS, cfg.max_bad_fraction).items():
            rows, k = rows.head(cfg.max_eval), f"{task}-{split}"
            found = split_record(k, rows.ids, texts_digest(rows.texts), rows.labels)
            for part in ("ids", "data"):
                if found[f"{k}-{part}"] != result["record"][f"{k}-{part}"]:
                    raise EnsembleError(f"{rows.path}: not the {k} split the runs were scored on (other "
                                        f"{'ids' if part == 'ids' else 'sentences or labels'}); give --data-dir the "
                                        "data folder the runs used (their metrics.json names it)")
            ids[k] = rows.ids
    return ids


def write_ensemble(folders: list[str | Path], out: str | Path, data_dir: str | Path | None = None) -> dict:
    """Average `folders` (`ensemble`) and write `<out>/predictions/{sst,para,sts}-{dev,test}-output.csv` (the
    leaderboard format, `evaluate.write_leaderboard`) and `<out>/ensemble.json` (dev metrics, the members and their
    mean, the rule). Returns what ensemble.json holds."""
    out = Path(out)
    if (out / "metrics.json").exists() or (out / RECORD).exists():
        raise EnsembleError(f"{out} holds a run: its leaderboard files would be overwritten; give --out a folder of "
                            "its own")
    result = ensemble(folders)
    ids = examples(result, data_dir)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    for k, preds in result["preds"].items():
        task, split = k.split("-")
        write_leaderboard(out / "predictions", task, split, ids[k], preds)
    members = result["members"]
    found = {**result["metrics"], "n": len(members), "device_key": result["device_key"],
             "members_mean": {k: float(np.mean([m[k] for m in members])) for k in result["metrics"]},
             "rule": RULE, "members": members,
             "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out / RESULT).write_text(json.dumps(found, indent=2) + "\n")
    return found


def main(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m mtlib ensemble",
                                 description="Average finished runs' probabilities (docs/ensembles.md).")
    ap.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders (out_dir), one device key")
    ap.add_argument("--out", default="runs/ensemble", help="where the leaderboard files and ensemble.json go "
                                                           "(default: runs/ensemble)")
    ap.add_argument("--data-dir", default=None, help="the data the runs were scored on, for the test ids "
                                                     "(default: $MTLIB_DATA_DIR, else data/cs224n)")
    args = ap.parse_args(argv)
    found = write_ensemble(args.runs, args.out, args.data_dir)
    mean = found["members_mean"]
    print(f"ensemble of {found['n']} runs ({found['device_key']}): "
          + "  ".join(f"{k}={v:.3f} (runs' mean {mean[k]:.3f})" for k, v in found.items() if k in mean)
          + f"\n-> {Path(args.out) / RESULT}, {Path(args.out) / 'predictions'}/")
    return found


def ensemble_cells(found: dict, runs: list[dict], keys=(*METRIC.values(), "overall")) -> list[str]:
    """A table's cells for `seed_ensemble`'s result beside its row's runs: each metric of the ensemble and, in
    brackets, its change from the runs' mean; the reason in the first cell where the runs were refused."""
    if "refused" in found:
        return [f"not averaged: {found['refused']}"] + [""] * (len(keys) - 1)
    return [f"{found[k]:.3f} ({found[k] - np.mean([m[k] for m in runs]):+.3f})" for k in keys]
