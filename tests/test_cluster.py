"""Ray as the executor of `report --execute` and `explore` (mtlib/report/cluster.py, docs/cluster.md): the units and
their order, and, on one local Ray started once for this module (2 CPUs, WORKERS=2: one thread a task), a run equal
to a sequential one of the same thread count, a failing unit, a killed worker, and a task without the store."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT
from mtlib.report.cluster import Cluster, ClusterError, Kind, kinds, start_local
from mtlib.report.execute import after_runs, units
from mtlib.report.units import Unit, groups, stages

# ---------------------------------------------------------------------------------------------------- the units


def test_report_units_share_runs_and_wait_for_what_they_read(tmp_path):
    """06's `sum` runs are 03's (one task), 02 waits for 01's baseline, 06 and 07 for their runs; 03's seeds, 06 and
    its runs form one group (one device kind)."""
    found = units("smoke", None, tmp_path, (0, 1), {}, "k", expand=True)
    names = [u.name for u in found]
    assert "06_gradient_methods: combine=sum, seed 0" not in names            # 03's CS run: no task of its own
    assert "06_gradient_methods: combine=upgrad, seed 1" in names and "07_beyond: best, seed 0" in names
    waves = [[found[i].name for i in wave] for wave in stages(found)]
    assert "01_baseline, seed 1" in waves[0] and "02_gradient_surgery, seed 1" in waves[1]
    assert "06_gradient_methods" in waves[1] and "07_beyond" in waves[1] and len(waves) == 2
    methods = next(u for u in found if u.name == "06_gradient_methods")
    assert methods.needs == ("03_cosine_similarity/seed0/cs", "03_cosine_similarity/seed1/cs",     # smoke: sum, upgrad
                             "06_gradient_methods/upgrad/seed0", "06_gradient_methods/upgrad/seed1")
    group = dict(zip(names, groups(found)))
    assert group["03_cosine_similarity, seed 1"] == group["06_gradient_methods"] != group["04_cs_gs, seed 1"]
    assert group["01_baseline, seed 0"] == group["02_gradient_surgery, seed 1"] != group["05_novel, seed 0"]
    assert group["05_novel, seed 0"] == group["05_novel, seed 1"]
    assert found[1].command("S", "k") == ("python -m mtlib report --execute --no-tables --only 01_baseline --seeds 0 "
                                           "--store S --profile smoke")


@pytest.mark.parametrize("notebook", ["06_gradient_methods", "07_beyond"])
def test_after_runs_are_the_runs_the_notebook_trains(notebook, tmp_path, monkeypatch):
    """What `after_runs` plans for 06 and 07 (each a Ray task before the notebook) is what the notebook's own run loop
    asks for, config and folder: its code run here with pipelines.run recording the calls."""
    import mtlib.pipelines
    calls = []
    monkeypatch.setattr(mtlib.pipelines, "run", lambda config: calls.append(config) or {})
    monkeypatch.chdir(ROOT)
    here = tmp_path / "store" / "k"
    params = {"out_dir": str(here / notebook), "seeds": [0, 2], "resume": True, "progress": False,
              "profile": "smoke", "precision": "fp32"}
    cells = [c for c in json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    namespace: dict = {}
    exec("".join(cells[0]["source"]), namespace)                   # the parameters cell, then papermill's values
    namespace.update(params)
    for cell in cells[1:]:
        try:
            exec("".join(cell["source"]), namespace)
        except Exception:       # the cell after the run loop: tables of runs this stub did not train
            break
    planned = after_runs(notebook, params, here)
    assert calls and len(planned) == len(calls)
    for (_, folder, config), call in zip(planned, calls):
        assert Path(call.pop("out_dir")) == here / folder
        assert config == call


def test_print_commands_and_the_sequential_path_import_no_ray(tmp_path):
    grid = tmp_path / "grid.txt"
    grid.write_text("ema=0.99  seeds=0\n")
    code = ("import sys\nfrom mtlib.__main__ import main\n"
            f"assert main(['report', '--execute', '--print-commands', '--profile', 'smoke', '--seeds', '0', "
            f"'--store', {str(tmp_path)!r}, '--only', '01_baseline', '02_gradient_surgery']) == 0\n"
            f"assert main(['explore', '--grid', {str(grid)!r}, '--store', {str(tmp_path)!r}, '--print-commands']) == 0\n"
            "import mtlib.report.execute, mtlib.report.explore\n"
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'mtlib.report.cluster'))]\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("# wave 1 of 3") and "--only 01_baseline --seeds 0" in lines[1]
    assert lines[2].startswith("# wave 2 of 3") and "--only 02_gradient_surgery" in lines[3]
    assert lines[4].startswith("# wave 3 of 3") and lines[5].startswith("python -m mtlib tables --store ")
    assert lines[6].startswith("python -m mtlib run ") and "/07_explore/ema-0.99/seed0" in lines[6] and len(lines) == 7


@pytest.mark.parametrize("command", [["explore"], ["report", "--execute"]])
def test_workers_must_be_a_whole_number_and_ray_must_be_there(command, tmp_path, capsys):
    from mtlib.__main__ import main
    for bad in ("0", "two", "1.5"):
        assert main([*command, "--workers", bad, "--profile", "smoke", "--store", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"--workers {bad}: give how many units run at once" in err and len(err.splitlines()) == 1
    code = ("import sys; sys.modules['ray'] = None; from mtlib.__main__ import main; "
            f"sys.exit(main({[*command, '--workers', '2', '--profile', 'smoke', '--store', str(tmp_path)]!r}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "Ray, which is not installed: pip install -e '.[ray]' (or make setup)" in r.stderr


def test_device_kinds_of_a_mixed_cluster_and_one_kind_a_group():
    """GPU nodes by Ray's accelerator type, 1/N of a card a task; CPU nodes by their mtlib-cpu-* resource, 1/N of the
    smallest node's cores a task (its thread count); nodes of no kind get no task; a group never spans two kinds."""
    node = lambda **r: {"Alive": True, "Resources": r}                   # noqa: E731
    nodes = [node(CPU=16, GPU=2, **{"accelerator_type:H100": 1}), node(CPU=8, GPU=1, **{"accelerator_type:A10G": 1}),
             node(CPU=8, **{"mtlib-cpu-amd-epyc-fp32": 1e4}), node(CPU=4, **{"mtlib-cpu-amd-epyc-fp32": 1e4}),
             node(CPU=2), {"Alive": False, "Resources": {"CPU": 64, "mtlib-cpu-intel-xeon-bf16": 1e4}}]
    gpus, unnamed = kinds(nodes, 4, gpu=True)
    assert [(k.name, k.slots, k.threads) for k in gpus] == [("A10G", 4, 2), ("H100", 8, 2)] and unnamed == 3
    assert gpus[1].options == {"num_gpus": 0.25, "num_cpus": 2, "accelerator_type": "H100"}
    cpus, unnamed = kinds(nodes, 2, gpu=False)
    assert [(k.name, k.slots, k.threads) for k in cpus] == [("mtlib-cpu-amd-epyc-fp32", 6, 2)] and unnamed == 3
    assert cpus[0].options == {"num_cpus": 2, "resources": {"mtlib-cpu-amd-epyc-fp32": 0.001}}
    cluster = Cluster.__new__(Cluster)
    cluster.kinds = [Kind("a", {}, 1, 4, "a-1t"), Kind("b", {}, 1, 2, "b-1t")]
    rows = [Unit(f"{row}, seed {s}", row, (), (f"{row}/seed{s}",)) for row in "pqrs" for s in range(3)]
    kind_of = cluster._assign(groups(rows))
    by_row = {}
    for unit, g in zip(rows, groups(rows)):
        by_row.setdefault(unit.row, set()).add(kind_of[g].name)
    assert all(len(k) == 1 for k in by_row.values()) and {k for ks in by_row.values() for k in ks} == {"a", "b"}


# ----------------------------------------------------------------------------- on a local Ray (2 CPUs), once


@pytest.fixture(scope="module")
def tiny(tiny_encoder, tiny_data):
    """A run of a few seconds (tests/conftest.py's tiny encoder and data) with a checkpoint every 2 steps."""
    return dict(profile="smoke", encoder=tiny_encoder, data_dir=str(tiny_data), lr=1e-3, batch_size=8, epochs=3,
                steps_per_epoch=0, max_length=16, max_train=0, max_eval=0, progress=False, checkpoint_every=2)


def run_unit(name: str, params: dict, **changes) -> Unit:
    items = [f"{k}={v}" for k, v in {**params, **changes}.items()]
    return Unit(name, name, ("python", "-m", "mtlib", "run", *items, "resume=true", "out_dir={store}/{key}/" + name),
                (name,))


@pytest.fixture(scope="module")
def sequential(tiny, tmp_path_factory):
    """The same run trained in sequence, `python -m mtlib run` with one torch thread: started first, beside Ray's
    start-up, and waited for by `reference`."""
    out = tmp_path_factory.mktemp("sequential") / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mtlib", "run", *[f"{k}={v}" for k, v in tiny.items()],
                             f"out_dir={out}"], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc, out
    proc.kill()


@pytest.fixture(scope="module")
def reference(sequential) -> dict:
    proc, out = sequential
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def cluster(sequential):
    """One local Ray for the module: 2 CPUs and this machine's kind, so --workers 2 gives each task one thread."""
    ray = pytest.importorskip("ray")
    start_local(ray, 2)
    try:
        yield Cluster(2, None, {"profile": "smoke"})
    finally:
        ray.shutdown()


def same_numbers(a: dict, b: dict) -> None:
    """metrics.json field by field, but for when and where the run ran and how long it took."""
    def numbers(m):
        m = {k: v for k, v in m.items() if k not in ("finished_at", "wall_s", "cpu_s", "resumed")}
        m["config"] = {k: v for k, v in m["config"].items() if k not in ("out_dir", "resume")}
        m["stages"] = [{k: v for k, v in s.items() if k not in ("wall_s", "seconds")} for s in m["stages"]]
        return m
    assert numbers(a) == numbers(b)


def kill_worker_once_checkpointed(folder: Path, found: list, timeout: float = 240) -> None:
    """SIGKILL the Ray worker (the parent of the unit's `python -m mtlib run`) once the run in `folder` has its
    first resume checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline and not (folder / "checkpoints" / "resume.pt").exists():
        time.sleep(0.01)
    for pid in (p.name for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if f"out_dir={folder}" in cmdline and " -m mtlib run " in cmdline:
                worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                found.append(Path(f"/proc/{worker}/cmdline").read_bytes().decode(errors="replace"))
                os.kill(worker, signal.SIGKILL)
                return
        except (OSError, ValueError, IndexError):
            continue


@pytest.fixture(scope="module")
def shared_run(cluster, tiny, tmp_path_factory):
    """One call: a run (to compare with the sequential one), a unit with a bad config, and a run whose worker is
    killed after its first checkpoint."""
    store = tmp_path_factory.mktemp("store")
    found = [run_unit("a-run", tiny), run_unit("bad-config", tiny, learning_rate=0.1), run_unit("killed", tiny)]
    killed: list = []
    killer = threading.Thread(target=kill_worker_once_checkpointed,
                              args=(store / cluster.key / "killed", killed), daemon=True)
    killer.start()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(ClusterError) as err:
        cluster.run(found, store, logs=store / "logs")
    killer.join(1)
    return {"store": store / cluster.key, "lines": out.getvalue(), "error": str(err.value), "killed": killed,
            "logs": store / "logs"}


@pytest.mark.slow
def test_a_ray_run_has_the_numbers_of_a_sequential_run_with_the_same_threads(shared_run, reference, cluster):
    m = json.loads((shared_run["store"] / "a-run" / "metrics.json").read_text())
    assert m["device_key"] == reference["device_key"] == cluster.key and cluster.key.endswith("-1t")
    assert m["threads"] == 1 and not m["resumed"]
    same_numbers(m, reference)


@pytest.mark.slow
def test_a_unit_that_fails_on_its_own_is_not_retried_and_the_others_finish(shared_run):
    lines = shared_run["lines"]
    assert "FAILED bad-config (attempt 1): mtlib: error: unknown parameter(s) learning_rate;" in lines, lines
    assert "ray: 2 done, 1 failed, 1 retried" in lines
    assert shared_run["error"].startswith("1 of 3 unit(s) failed: bad-config;")
    assert "attempt 2" not in (shared_run["logs"] / "bad-config.log").read_text()


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_its_run_resumes_from_its_checkpoint(shared_run, reference):
    assert shared_run["killed"] and "ray::" in shared_run["killed"][0]         # a Ray worker was killed
    assert "done   killed as " in shared_run["lines"] and ", attempt 2" in shared_run["lines"]
    log = (shared_run["logs"] / "killed.log").read_text()
    assert "=== attempt 1 " in log and "=== attempt 2 " in log
    assert "[multitask] resume: going on in " in log.split("=== attempt 2 ")[1] and "from stage multitask, epoch" in log
    m = json.loads((shared_run["store"] / "killed" / "metrics.json").read_text())
    assert m["resumed"]
    same_numbers(m, reference)


@pytest.mark.slow
def test_without_a_shared_file_system_the_driver_writes_the_run_a_task_returns(cluster, tiny, reference, tmp_path):
    """--no-shared-fs: each task trains in its worker's scratch folder and returns its run; a unit that reads that
    run gets it in its own scratch folder. The store gets no checkpoints, and no path of the scratch folder."""
    store = tmp_path / "store"
    reader = Unit("reader", "reader", ("python", "-c", "import json, sys; print(json.load(open(sys.argv[1]))['overall'])",
                                       "{store}/{key}/a-run/metrics.json"), (), ("a-run",))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cluster.run([run_unit("a-run", tiny), reader], store, shared_fs=False, logs=tmp_path / "logs")
    run = store / cluster.key / "a-run"
    m = json.loads((run / "metrics.json").read_text())
    same_numbers(m, reference)
    assert not (run / "checkpoints").exists() and (run / "predictions").is_dir() and (run / "config.json").is_file()
    assert m["config"]["out_dir"] == str(run) and json.loads((run / "config.json").read_text())["out_dir"] == str(run)
    log = (tmp_path / "logs" / "a-run.log").read_text()
    assert f"out_dir={store}" not in log and "/mtlib-ray/" in log                 # it trained in its scratch folder
    assert (tmp_path / "logs" / "reader.log").read_text().strip().endswith(str(reference["overall"]))
    assert "ray: 2 done, 0 failed, 0 retried" in out.getvalue()
