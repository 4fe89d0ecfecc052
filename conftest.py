"""Settings for every pytest run in this repository, `pytest --nbval-lax notebooks/05_novel.ipynb` included.

pytest loads this file for any path under the repository (tests/conftest.py only for tests/), and notebook
kernels started by nbval or papermill inherit the environment set here: the seconds-long `smoke` profile, the
CS224N files ($MTLIB_DATA_DIR, else ../shared/data/cs224n beside the repository, as in CI) and no hub look-ups.
Anything already set in the environment wins (`MTLIB_PROFILE=cpu pytest --nbval-lax notebooks/...`).
"""
import os
from pathlib import Path

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
    import pytest
    slow = pytest.mark.slow
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(slow)
