"""Settings for every pytest run in this repository, `pytest --nbval-lax notebooks/05_novel.ipynb` included.

pytest loads this file for any path under the repository (tests/conftest.py only for tests/), and notebook
kernels started by nbval or papermill inherit the environment set here: the seconds-long `smoke` profile, the
CS224N files ($MTLIB_DATA_DIR, else ../shared/data/cs224n beside the repository, as in CI) and no hub look-ups.
Anything already set in the environment wins (`MTLIB_PROFILE=cpu pytest --nbval-lax notebooks/...`).
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("MTLIB_DATA_DIR") or ROOT.parent / "shared" / "data" / "cs224n")

os.environ.setdefault("MTLIB_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if SHARED_DATA.is_dir():
    os.environ.setdefault("MTLIB_DATA_DIR", str(SHARED_DATA))

# Under pytest-xdist (`make test` runs TEST_WORKERS workers): one torch thread per worker, and per notebook kernel or
# subprocess it starts, so that the workers share the cores instead of each spinning two threads on them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Every notebook cell nbval collects is `slow` (each notebook trains on the smoke profile in its own kernel):
    `make test-fast` (-m "not slow") leaves them out, `make test` runs them."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)   # pytest-xdist's hook: absent without it (plain `pytest --nbval-lax`)
def pytest_xdist_make_scheduler(config, log):
    """`make test`'s `--dist loadgroup`, grouped here: a notebook's cells (they share one kernel and run in order) and
    the tests of a module that declares a module-scoped fixture (a local Ray, a store read once: built once) each go
    to one worker; every other test goes to whichever worker is free. That evens the two workers' loads, where whole
    files (`--dist loadfile`) left one idle while the other ran a long file. Hand-written because xdist_group marks
    do not reach pytest 9's node ids (pytest-xdist 3.8 still sets the old `_nodeid`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from functools import cache

    from xdist.scheduler import LoadGroupScheduling

    @cache
    def whole(path: str) -> bool:
        file = config.rootpath / path
        return path.endswith(".ipynb") or (file.suffix == ".py" and 'scope="module"' in file.read_text(encoding="utf-8"))

    class Groups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if whole(path) else nodeid
    return Groups(config, log)
