"""benchmarks/gpu.sh's deadline, here on the CPU (SKIP_WHL=1: this environment; no preflight, no environment report,
the tiny encoder, a store in a temporary folder): a job stopped at the deadline comes back with what resumes it, and
the next call, given it, goes on from there."""
import json
import os
import shlex
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT


def gpu_sh(out, store, jobs, deadline: int, **env) -> str:
    jobs_file = out.parent / f"{out.name}-jobs.txt"
    jobs_file.write_text(jobs + "\n")
    r = subprocess.run(["bash", "benchmarks/gpu.sh"], cwd=ROOT, capture_output=True, text=True, timeout=deadline + 240,
                       env={**os.environ, "PY": sys.executable, "SKIP_WHL": "1", "PREFLIGHT": "", "ENVINFO": "0",
                            "KEY": "unused", "OUT": str(out), "STORES": str(store), "JOBS": str(jobs_file), "N": "1",
                            "MARGIN": "0", "DEADLINE": str(deadline), **env})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.slow
def test_a_job_stopped_at_its_deadline_comes_back_resumable_and_the_next_call_resumes_it(tiny_config, tmp_path):
    store = tmp_path / "store"
    run = store / "job"
    cfg = {**tiny_config, "epochs": 3, "steps_per_epoch": 0, "batch_size": 4, "checkpoint_every": 1,
           "out_dir": str(run)}
    command = shlex.join([sys.executable, "-m", "mtlib", "run", *[f"{k}={v}" for k, v in cfg.items()], "resume=true"])
    # the first call: the run is frozen (SIGSTOP) once its first checkpoint is written, so that the deadline finds it
    # mid-run on any machine; the deadline's SIGTERM (and SIGCONT) to the job's process group ends it
    frozen = (f"{command} & p=$!; until [ -f {run}/checkpoints/resume.pt ]; do sleep 0.05; done; "
              "kill -STOP $p; wait $p")
    out1 = tmp_path / "out1"
    # the job waits frozen; the deadline leaves room for its first checkpoint on a loaded machine (at 18 s, a suite
    # run beside a training run saw none written)
    printed = gpu_sh(out1, store, f"tiny sh -c {shlex.quote(frozen)}", deadline=45)
    assert "unfinished runs: 1" in printed and "gpu-resume.tgz: carry it" in printed, printed
    with tarfile.open(out1 / "gpu-resume.tgz") as tar:
        names = set(tar.getnames())
    for name in ("config.json", "run.json", "metrics.jsonl", "checkpoints/resume.pt"):
        assert f"{str(run).lstrip('/')}/{name}" in {n.lstrip("/") for n in names}, (name, names)

    # the next call starts bare: the store is gone until RESUME puts the unfinished run back
    subprocess.run(["rm", "-rf", str(store)], check=True)
    out2 = tmp_path / "out2"
    printed = gpu_sh(out2, store, f"tiny {command}", deadline=240, RESUME=str(out1 / "gpu-resume.tgz"))
    assert "unfinished run(s) put back" in printed and "finished runs: 1" in printed, printed
    with tarfile.open(out2 / "logs.tgz") as tar:
        log = tar.extractfile("logs/tiny.log").read().decode()
    assert f"[multitask] resume: going on in {run} from stage multitask, epoch 1, step " in log, log
    m = json.loads((run / "metrics.json").read_text())
    assert m["resumed"] and not (out2 / "gpu-resume.tgz").exists()
    with tarfile.open(out2 / "gpu-runs.tgz") as tar:
        assert f"{str(run).lstrip('/')}/metrics.json" in tar.getnames()


def test_each_gpu_task_prints_jobs_whose_commands_mtlib_accepts():
    """benchmarks/gpu-jobs/<task>.sh: each line a job, "name command"; a `mtlib run` job's items are a valid Config,
    a `mtlib report` job names notebooks of the plan and Config fields; issue 29's control trains the Makefile's
    CONTROL_HEADS, so a GPU call and `make control` train the same rows."""
    import re

    from mtlib.config import Config, parse_params
    from mtlib.report.paper import PLAN
    env = {**os.environ, "PY": "python", "ENC": ".gpu/minilm-fp16", "KEY": "nvidia-h200",
           "R": "python -m mtlib report --execute --readme '' --results /tmp/results"}
    for task in sorted((ROOT / "benchmarks" / "gpu-jobs").glob("*.sh")):
        lines = subprocess.run(["bash", "-c", f". {task}"], cwd=ROOT, env=env, capture_output=True, text=True,
                               check=True).stdout.splitlines()
        assert lines and len({line.split()[0] for line in lines}) == len(lines), f"{task.name}: job names repeat"
        for line in lines:
            name, *argv = shlex.split(line)
            assert argv[:3] == ["python", "-m", "mtlib"], line
            if argv[3] == "run":
                Config.from_dict(parse_params(argv[4:]))
            else:
                assert argv[3] == "report", line
                only = argv[argv.index("--only") + 1]
                assert only in {label for _, _, label in PLAN}, line
                Config.from_dict(parse_params(argv[argv.index("--set") + 1:argv.index("--profile")]))
    heads = re.search(r"^CONTROL_HEADS \?= (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    lines = subprocess.run(["bash", "-c", ". benchmarks/gpu-jobs/issue29.sh"], cwd=ROOT, env=env, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    # no encoder folder named: it would file the runs under nvidia-h200+<folder>, not in the H200's table
    assert not [line for line in lines if "encoder=" in line]
    trained = {re.search(r"control/seed\d/(\S+)", line).group(1) for line in lines if "pipeline=control" in line}
    assert trained == set(heads)
