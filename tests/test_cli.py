"""The command line: one clear line and exit code 2 for bad input, metrics for a good run."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def mtlib(*args, env=None):
    """`python -m mtlib ...` in a new process: the real entry point, for the tests that need one."""
    return subprocess.run([sys.executable, "-m", "mtlib", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=300)


@pytest.fixture
def cli(capsys):
    """The same `main`, in this process (a new Python costs ~6 s of imports a call): exit code, stdout, stderr."""
    from mtlib.__main__ import main

    def call(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return call


@pytest.mark.parametrize("args,message", [
    (["run", "learning_rate=1"], "unknown parameter(s) learning_rate; valid names:"),
    (["run", "pooling=max"], "pooling='max' is not valid; choose one of mean, cls, pooler"),
    (["run", "dropout"], "is not key=value"),
    (["frobnicate"], "unknown command"),
    (["merges"], "merges needs a run folder"),
    (["merges", "no/such/run"], "no/such/run/config.json: not a run folder; give the out_dir of a pipeline=novel run"),
])
def test_bad_arguments(args, message, cli):
    r = cli(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_missing_data_dir_says_how_to_download(tmp_path, tiny_encoder, cli):
    r = cli("run", "profile=smoke", f"encoder={tiny_encoder}", f"data_dir={tmp_path / 'nodata'}",
              f"out_dir={tmp_path / 'out'}")
    assert r.returncode == 2 and "python -m mtlib download" in r.stderr and "Traceback" not in r.stderr


def test_unloadable_encoder(tmp_path, tiny_data, cli):
    r = cli("run", "profile=smoke", f"encoder={tmp_path / 'no-such-model'}", f"data_dir={tiny_data}",
              f"out_dir={tmp_path / 'out'}")
    assert r.returncode == 2 and "could not be loaded" in r.stderr and "Traceback" not in r.stderr


def test_out_dir_not_writable(tmp_path, tiny_data, tiny_encoder, cli):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = cli("run", "profile=smoke", f"encoder={tiny_encoder}", f"data_dir={tiny_data}", f"out_dir={blocker / 'x'}")
    assert r.returncode == 2 and "not writable" in r.stderr


@pytest.mark.slow
def test_run_prints_and_writes_metrics(tmp_path, tiny_data, tiny_encoder):
    r = mtlib("run", "pipeline=novel", "profile=smoke", f"encoder={tiny_encoder}", f"data_dir={tiny_data}",
              "dropout=0", "progress=false", f"out_dir={tmp_path / 'out'}")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert f"overall={metrics['overall']:.3f}" in r.stdout
    assert "the report's best row (Novel: CS + GS, no dropout; " in r.stdout and "overall 0.708" in r.stdout
    assert metrics["config"]["dropout"] == 0.0
    assert 0 < metrics["cpu_s"] and metrics["threads"] >= 1       # the run's CPU time, to tell a shared machine
    assert len(list((tmp_path / "out" / "predictions").glob("*-output.csv"))) == 6


def test_report_unknown_label_lists_the_valid_ones(cli):
    r = cli("report", "--execute", "--only", "06_magic")
    assert r.returncode == 2 and "unknown run label(s) 06_magic; valid: 00_data, 01_baseline" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_report_names_the_failing_notebook_and_its_error(tmp_path):
    """A notebook that fails under papermill: one line naming notebook, cell and error, not papermill's traceback."""
    r = mtlib("report", "--execute", "--profile", "smoke", "--only", "01_baseline", "--store", str(tmp_path / "rep"),
              env={"MTLIB_DATA_DIR": str(tmp_path / "nodata")})
    assert r.returncode == 2, r.stderr
    assert "notebooks/01_baseline.ipynb (run 01_baseline, seed 0) failed in cell" in r.stderr
    assert "DataError" in r.stderr and "mtlib download" in r.stderr and "Traceback" not in r.stderr
    from mtlib.store import here
    assert (tmp_path / "rep" / here() / "notebooks" / "01_baseline.ipynb").exists()


def test_make_run_trains_07_beyond_best_configuration():
    """`make run` promises 07_beyond's best configuration: the Makefile's BEST must equal paper.BEST (what
    `python -m mtlib explore` changes) and that notebook's parameters (a value changed in one place only would make
    `make run` train something the README does not describe)."""
    import papermill as pm
    from mtlib.config import parse_params
    from mtlib.report.paper import BEST
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("BEST :="))
    best = parse_params(line.split(":=", 1)[1].split())
    params = pm.inspect_notebook(str(ROOT / "notebooks" / "07_beyond.ipynb"))
    assert best, "Makefile: BEST is empty"
    assert best == {k: str(v) for k, v in BEST.items()}, \
        f"Makefile BEST is {best}, mtlib/report/paper.py's BEST is {BEST}: write the same configuration in both"
    for name, value in best.items():
        assert name in params, f"Makefile BEST sets {name}, which 07_beyond's parameters cell does not have"
        assert str(value) == params[name]["default"].strip("\"'"), \
            f"{name}: Makefile BEST has {value!r}, 07_beyond has {params[name]['default']}"
    knobs = {"pipeline", "combine", "sts_head", "para_head", "sts_loss", "schedule", "warmup", "merge", "dropout"}
    missing = knobs - set(best) - ({"merge"} if best.get("pipeline") != "novel" else set())
    assert not missing, f"Makefile BEST leaves {', '.join(sorted(missing))} to the defaults; 07_beyond sets them"


def test_profile_of_one_run_prints_it_and_leaves_profile_md_alone(tiny_config, cli, monkeypatch):
    from mtlib.report import cost
    from mtlib.pipelines import run
    run(tiny_config)
    written = []
    monkeypatch.setattr(cost, "write_profile", lambda *a, **k: written.append(a))
    r = cli("profile", tiny_config["out_dir"])
    assert r.returncode == 0 and "| whole run |" in r.stdout and "Share of the run's" in r.stdout and not written


@pytest.mark.parametrize("encoder", ["", "all-mpnet-base-v2"])
def test_make_control_trains_into_the_encoders_own_folder(encoder):
    """`make control ENCODER=...` trains that encoder's control into <device key>+<encoder>/control/, where its
    results page and best table read it; without ENCODER, into the device key's folder, with no encoder= at all."""
    from mtlib.report.units import store_key
    from mtlib.store import here
    out = subprocess.run(["make", "-n", "control", "SEEDS=0", "CONTROL_HEADS=sbert-cosine", f"ENCODER={encoder}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = " ".join(out.split())
    assert f"out_dir=reports/runs/{store_key(here(), encoder or None)}/control/seed$k/$h" in line
    assert ("encoder=all-mpnet-base-v2" in line) == bool(encoder)
