"""Dev metrics (the report's score) and predictions in the default-project leaderboard format."""
from __future__ import annotations

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


@torch.inference_mode()
def predict(model, enc: Encoded, cfg, device: torch.device) -> np.ndarray:
    """Predictions for every row of `enc`, in file order (batches are length-sorted internally)."""
    model.eval()
    out = np.zeros(len(enc), dtype=np.float64)
    for rows in eval_batches(enc, cfg.eval_batch_size):
        batch = {k: v.to(device) for k, v in collate(enc, rows).items() if k != "labels"}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, device)):
            out[rows] = model.predict(enc.task, model(enc.task, batch)).float().cpu().numpy()
    return out


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
    """`<out_dir>/predictions/{sst,para,sts}-{dev,test}-output.csv` in the leaderboard format."""
    folder = Path(out_dir) / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (task, split), enc in splits.items():
        preds = predict(model, enc, cfg, device)
        path = folder / f"{FILE[task]}-{split}-output.csv"
        lines = [f"id \t {COLUMN[task]} \n"]
        lines += [f"{i} , {int(p) if task != 'sts' else round(float(p), 6)} \n" for i, p in zip(enc.ids, preds)]
        atomic_write_text(path, "".join(lines))
        paths.append(path)
    return paths
