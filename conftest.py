"""Settings for every pytest run in this repository, `pytest --nbval-lax notebooks/05_novel.ipynb` included.

pytest loads this file for any path under the repository (tests/conftest.py only for tests/), and notebook
kernels started by nbval or papermill inherit the environment set here: the seconds-long `smoke` profile, the
CS224N files ($MTLIB_DATA_DIR, else ../shared/data/cs224n beside the repository, as in CI) and no hub look-ups.
Anything already set in the environment wins (`MTLIB_PROFILE=cpu pytest --nbval-lax notebooks/...`).
"""
import functools
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
    `make test-fast` (-m "not slow") leaves them out, `make test` runs them. Then the order, longest first."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
    # Longest first, for `make test`'s workers: the files that run as one group (`whole`) and hold a slow test (a
    # notebook, the Ray module), then the other files with a slow test, then the hundreds of short tests, which even
    # out the workers' ends. Whole files, in their own order: a module fixture is built once.
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (0 if item.path in slow and whole(item.path) else 1 if item.path in slow else 2))


@functools.cache
def whole(path: Path) -> bool:
    """Whether `path`'s tests run in order on one worker: a notebook's cells (one kernel), or a module that declares a
    module-scoped fixture (a local Ray, a store read once), which is then built once."""
    return path.suffix == ".ipynb" or (path.suffix == ".py" and 'scope="module"' in path.read_text(encoding="utf-8"))


@pytest.hookimpl(optionalhook=True)   # pytest-xdist's hook: absent without it (plain `pytest --nbval-lax`)
def pytest_xdist_make_scheduler(config, log):
    """`make test`'s `--dist loadgroup`, grouped here: the tests of a `whole` file each go to one worker, in order;
    every other test goes to whichever worker is free. That evens the workers' loads, where whole files
    (`--dist loadfile`) left one idle while another ran a long file. Hand-written because xdist_group marks
    do not reach pytest 9's node ids (pytest-xdist 3.8 still sets the old `_nodeid`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Groups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if whole(config.rootpath / path) else nodeid
    return Groups(config, log)
