"""Dev metrics (the report's score), leaderboard predictions, probabilities for ensembles (docs/ensembles.md)."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score

from .data import Encoded, collate, eval_batches
from .files import atomic_write_text
from .models import use_bf16

METRIC = {"sst": "sst_acc", "para": "para_acc", "sts": "sts_pearson"}
COLUMN = {"sst": "Predicted_Sentiment", "para": "Predicted_Is_Paraphrase", "sts": "Predicted_Similarity"}
FILE = {"sst": "sst", "para": "para", "sts": "sts"}
PROBABILITIES = "probabilities.npz"      # a run's dev and test probabilities, dev labels and data fingerprints


@torch.inference_mode()
def predict(model, enc: Encoded, cfg, device: torch.device, probabilities: bool = False):
    """Predictions for every row of `enc`, in file order (batches are length-sorted internally); with `probabilities`,
    (predictions, what ensembles average: SST's softmax (rows x 5), Quora's sigmoid, the STS score)."""
    model.eval()
    out, probs = np.zeros(len(enc), dtype=np.float64), np.zeros((len(enc), 5) if enc.task == "sst" else len(enc))
    for rows in eval_batches(enc, cfg.eval_batch_size):
        batch = {k: v.to(device) for k, v in collate(enc, rows).items() if k != "labels"}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, device)):
            output = model(enc.task, batch)
            out[rows] = model.predict(enc.task, output).float().cpu().numpy()
        probs[rows] = out[rows] if enc.task == "sts" else (output.float().softmax(-1) if enc.task == "sst"
                                                           else output.float().sigmoid()).cpu().numpy()
    return (out, probs) if probabilities else out


class ConstantPredictionWarning(UserWarning):
    """A model predicted the same STS score for every pair: its Pearson r is undefined (NaN)."""


def score(task: str, labels: np.ndarray, preds: np.ndarray) -> float:
    if task == "sts":
        if np.std(preds) == 0 or np.std(labels) == 0:
            warnings.warn(f"STS: {'the predictions are' if np.std(preds) == 0 else 'the labels are'} constant "
                          f"({len(preds)} pairs), so Pearson r is undefined: reported as NaN", ConstantPredictionWarning,
                          stacklevel=2)
            return float("nan")
        return float(pearsonr(labels, preds).statistic)
    return float(accuracy_score(labels, preds.astype(np.int64)))


def evaluate(model, dev: dict[str, Encoded], cfg, device: torch.device) -> dict[str, float]:
    """sst_acc, para_acc, sts_pearson for the tasks given, and `overall` = their mean (the report's score)."""
    metrics = {METRIC[t]: score(t, enc.labels, predict(model, enc, cfg, device)) for t, enc in dev.items()}
    metrics["overall"] = float(np.mean(list(metrics.values())))
    return metrics


def write_predictions(model, splits: dict[tuple[str, str], Encoded], cfg, device: torch.device,
                      out_dir: Path) -> list[Path]:
    """`<out_dir>/predictions/{sst,para,sts}-{dev,test}-output.csv` in the leaderboard format, and `<out_dir>/
    probabilities.npz`: per "<task>-<split>" its probabilities (float16) and `split_record` (docs/ensembles.md)."""
    folder, arrays, paths = Path(out_dir) / "predictions", {}, []
    folder.mkdir(parents=True, exist_ok=True)
    for (task, split), enc in splits.items():
        preds, probs = predict(model, enc, cfg, device, probabilities=True)
        key = f"{task}-{split}"
        arrays |= {key: probs.astype(np.float16), **split_record(key, enc.ids, enc.texts_digest, enc.labels)}
        paths.append(write_leaderboard(folder, task, split, enc.ids, preds))
    np.savez_compressed(tmp := Path(out_dir) / "probabilities.tmp.npz", **arrays)    # then whole, or not at all
    tmp.replace(Path(out_dir) / PROBABILITIES)
    return paths


def write_leaderboard(folder: Path, task: str, split: str, ids: list[str], preds: np.ndarray) -> Path:
    path = Path(folder) / f"{FILE[task]}-{split}-output.csv"
    lines = [f"id \t {COLUMN[task]} \n"]
    lines += [f"{i} , {int(p) if task != 'sts' else round(float(p), 6)} \n" for i, p in zip(ids, preds)]
    atomic_write_text(path, "".join(lines))
    return path


def split_record(key: str, ids: list[str], texts_digest: str, labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """What probabilities.npz records of split `key` ("sst-dev") beside its probabilities: "<key>-ids", sha256 of its
    ids in order; "<key>-data", of its ids, sentences (`data.texts_digest`) and labels; "<key>-labels" (dev)."""
    listed = None if labels is None else np.asarray(labels).tolist()
    found = {f"{key}-{k}": np.array(hashlib.sha256(json.dumps(v).encode("utf-8")).hexdigest())
             for k, v in (("ids", ids), ("data", [ids, texts_digest, listed]))}
    return found if labels is None else {**found, f"{key}-labels": np.asarray(labels)}
