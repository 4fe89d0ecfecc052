"""Whose a run is: the device key, and the record (run.json) that files a run folder under it.

Numbers from two machines can differ in the third decimal (bf16 autocast on one, fp32 on another; a GPU), so no
row or claim mixes them: every committed run lives in reports/runs/<device key>/..., and a run folder that holds
another device's run is never loaded, resumed or cleared here (`claim`). The key names what changes the numbers:

    intel-xeon-bf16-2t     a CPU: its model, the arithmetic `precision=auto` resolves to there (bf16 where the CPU
                           has native bf16, else fp32) and the torch thread count
    nvidia-h200            a GPU: its model
"""
from __future__ import annotations

import json
import platform
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path

import torch

from .config import Config, field_defaults
from .files import atomic_write_text

STORE = "reports/runs"             # the committed run tree: STORE/<device key>/<label>/...
RECORD = "run.json"                # a run folder's device key, precision, commit and command, written at its start
NOT_IN_COMMAND = ("out_dir", "resume", "progress", "data_dir")   # where and how it ran, not what it is


class DeviceMismatch(ValueError):
    """A run folder holds a run of another device key."""


def slug(name: str) -> str:
    """'Intel(R) Xeon(R) Processor' -> 'intel-xeon'; 'NVIDIA H200' -> 'nvidia-h200'."""
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$|\b\d+-core\b", " ", name.lower())
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_key(device: torch.device, threads: int | None = None) -> str:
    """The key of this machine as `device` trains on it (see the module's docstring)."""
    from .models import arithmetic
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    native = arithmetic(Config(precision="auto", device="cpu", profile="smoke"), device) == "bf16-autocast"
    return f"{slug(cpu_model())}-{'bf16' if native else 'fp32'}-{threads or torch.get_num_threads()}t"


def here(cfg: Config | None = None) -> str:
    """This machine's device key for `cfg` (default: the default Config: a GPU if there is one, else the CPU)."""
    from .models import pick_device
    return device_key(pick_device(cfg or Config()))


def command(config: dict, out_dir: str | None = None) -> str:
    """The `python -m mtlib run ...` line that trains this config again: every field that differs from its default
    (profile-resolved values included, so the line does not depend on a profile's later defaults)."""
    defaults = field_defaults()
    items = [f"{k}={_value(v)}" for k, v in config.items() if k not in NOT_IN_COMMAND and v != defaults.get(k)]
    out = out_dir if out_dir is not None else config.get("out_dir")
    return shlex.join(["python", "-m", "mtlib", "run", *items, *([f"out_dir={out}"] if out else [])])


def _value(v) -> str:
    return "None" if v is None else repr(v) if isinstance(v, float) else str(v)


def record(folder: Path) -> dict | None:
    path = Path(folder) / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def claim(folder: Path, key: str, cfg: Config, precision: str, commit: str) -> None:
    """Check that `folder` holds no run of another device key (else DeviceMismatch: nothing is loaded, resumed or
    cleared), and file it under `key` with the command that reproduces it."""
    check(folder, key)
    atomic_write_text(Path(folder) / RECORD, json.dumps({
        "device_key": key, "precision": precision, "mtlib": commit, "command": command(cfg.to_dict()),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2) + "\n")   # last start


def check(folder: Path, key: str) -> None:
    """DeviceMismatch if `folder` holds a run (finished or not) that another device key trained."""
    found = record(folder)
    if found and found.get("device_key") != key:
        raise DeviceMismatch(
            f"{folder} holds a run of device {found.get('device_key')}, and this machine is {key}: runs of two "
            f"devices never share a folder; give an out_dir of this device's (e.g. {STORE}/{key}/...)")
