"""The package's shape: a thin training core that never imports the report side (mtlib.report)."""
import subprocess
import sys
from pathlib import Path

import pytest

CORE = ("config", "data", "models", "surgery", "merge", "train", "evaluate", "pipelines", "notebook", "files", "store",
        "encoders")
PACKAGE = Path(__file__).resolve().parent.parent / "mtlib"


def _loaded(code: str, prefixes: tuple[str, ...] = ("mtlib",)) -> list[str]:
    """The modules named `prefixes`* in sys.modules after `code` runs in a fresh interpreter."""
    probe = code + f"; import sys; print('\\n'.join(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    return out.split()


@pytest.mark.slow
def test_the_core_never_imports_the_report_side():
    loaded = _loaded("import " + ", ".join(f"mtlib.{m}" for m in CORE))
    assert {f"mtlib.{m}" for m in CORE} <= set(loaded)
    assert not [m for m in loaded if m.startswith("mtlib.report")], loaded


def test_config_is_checked_without_surgery_or_torch():
    loaded = _loaded("import mtlib.config; mtlib.config.Config(profile='cpu', combine='upgrad')", ("mtlib", "torch"))
    assert "mtlib.surgery" not in loaded and "torch" not in loaded


def test_the_core_stays_thin():
    files = [PACKAGE / f"{m}.py" for m in (*CORE, "__main__", "__init__")]
    total = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
    assert total <= 2800, f"the core has {total} lines"
