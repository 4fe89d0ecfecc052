"""Writing files that readers, or a crash, never see half-written; compressing a finished run's log."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so a reader (or a crash) never sees it half-written."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def compress_log(path: Path, digits: int = 4) -> Path:
    """A finished run's per-step log, gzip-compressed beside it (<path>.gz, deterministic bytes), each float of a
    step's telemetry (losses, norms, cosines, timings; not its lr) kept to `digits` significant digits: the medians
    and rolling means read from them need no more, and a 700-step run's log then adds some 50 KB to the committed
    record instead of half a megabyte. Epoch records (dev metrics) stay exact. The plain log is removed."""
    path = Path(path)
    out = path.with_name(path.name + ".gz")
    with open(path, encoding="utf-8") as src, open(out.with_name(out.name + ".tmp"), "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as dst:
        for line in src:
            record = json.loads(line)
            if record.get("type") == "step":
                record = {k: float(f"{v:.{digits}g}") if isinstance(v, float) and k != "lr" else v
                          for k, v in record.items()}
            dst.write((json.dumps(record) + "\n").encode("utf-8"))
    os.replace(out.with_name(out.name + ".tmp"), out)
    path.unlink()
    return out
