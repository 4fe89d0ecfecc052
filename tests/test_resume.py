"""Crash safety: a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted one (CPU)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from mtlib.pipelines import run
from mtlib.report.runs import open_log


def args_for(cfg: dict, **extra) -> list[str]:
    return [f"{k}={v}" for k, v in {**cfg, **extra}.items()]


def start(cfg: dict, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mtlib", "run", *args_for(cfg, **extra)], cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, log_path, stage: str, epoch: int, step: int, timeout: float = 120) -> None:
    """SIGKILL `proc` as soon as its log shows that `stage` reached (epoch, step)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        if log_path.exists():
            for line in log_path.read_text().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("type") == "step" and r["stage"] == stage and (r["epoch"], r["step"]) >= (epoch, step):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    assert proc.returncode == -signal.SIGKILL
                    return
        time.sleep(0.002)
    pytest.fail("timed out waiting for the kill point")


def same_run(a, b) -> None:
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    # compared as JSON text, so that NaN equals NaN: a smoke run's STS head can predict a constant (Pearson r NaN),
    # which on a bf16 CPU it does, and two bit-identical runs then both score NaN
    for key in ("sst_acc", "para_acc", "sts_pearson", "overall", "best_epoch", "final_stage"):
        assert json.dumps(ma[key]) == json.dumps(mb[key]), key
    assert json.dumps([(s["name"], s["best_epoch"], s["best"], s["history"]) for s in ma["stages"]]) == \
           json.dumps([(s["name"], s["best_epoch"], s["best"], s["history"]) for s in mb["stages"]])
    for f in sorted((a / "predictions").iterdir()):
        assert f.read_text() == (b / "predictions" / f.name).read_text(), f.name
    with np.load(a / "probabilities.npz") as pa, np.load(b / "probabilities.npz") as pb:     # what ensembles average
        assert pa.files == pb.files and all(np.array_equal(pa[k], pb[k]) for k in pa.files)

    def steps(d):
        return [{k: v for k, v in json.loads(l).items() if not (k == "step_s" or k.startswith("t_"))}   # timings
                for l in open_log(d)]
    assert steps(a) == steps(b)          # every loss, cosine and norm of every step, in the same order


# the third case: the lr schedule's, GradVac's and the weight average's states are in the checkpoint (lost ones
# would change the steps or the evaluated weights); the heads' own lr, a second optimizer group, too
@pytest.mark.slow
@pytest.mark.parametrize("pipeline,stage,epoch,step,extra", [
    ("multitask", "multitask", 2, 3, {}),
    ("novel", "single_sst", 1, 4, {}),
    ("multitask", "multitask", 2, 3, {"schedule": "linear", "warmup": 0.3, "sts_head": "cosine", "sts_loss": "cosent",
                                      "para_head": "sbert", "combine": "gradvac", "head_lr": 3e-3, "ema": 0.8}),
    ("multitask", "multitask", 2, 3, {"para_head": "cross", "sts_head": "cross"})])
def test_sigkill_then_resume_is_bit_identical(tiny_config, tmp_path, pipeline, stage, epoch, step, extra):
    cfg = {**tiny_config, "pipeline": pipeline, "batch_size": 4, "epochs": 3, "single_task_epochs": 3,
           "steps_per_epoch": 0, "checkpoint_every": 2, "combine": "pcgrad", "dropout": 0.1, **extra}
    reference = tmp_path / "reference"
    run({**cfg, "out_dir": str(reference)})

    crashed = tmp_path / "crashed"
    proc = start(cfg, out_dir=crashed)
    kill_when(proc, crashed / "metrics.jsonl", stage, epoch, step)
    assert not (crashed / "metrics.json").exists() and (crashed / "checkpoints" / "resume.pt").exists()
    r = subprocess.run([sys.executable, "-m", "mtlib", "run", *args_for(cfg, out_dir=crashed, resume="true")],
                       cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    same_run(reference, crashed)
    assert not (crashed / "checkpoints" / "resume.pt").exists()


def interrupted(out):
    """A finished run's folder made to look interrupted: a resume checkpoint, and the per-step log a live run keeps
    plain (a finished run compresses it)."""
    import gzip
    (out / "checkpoints" / "resume.pt").write_bytes(b"")
    (out / "metrics.jsonl").write_text(gzip.open(out / "metrics.jsonl.gz", "rt").read())
    (out / "metrics.jsonl.gz").unlink()


@pytest.mark.slow
def test_resume_refuses_a_changed_config(tiny_config, tmp_path):
    cfg = {**tiny_config, "checkpoint_every": 1}
    out = tmp_path / "run"
    run({**cfg, "out_dir": str(out)})
    interrupted(out)
    with pytest.raises(ValueError, match=r"lr=0.001 \(now 0.002\)"):
        run({**cfg, "out_dir": str(out), "resume": True, "lr": 2e-3})


@pytest.mark.slow
def test_resume_of_a_checkpoint_without_its_config_fails_naming_the_fix(tiny_config, tmp_path):
    out = tmp_path / "run"
    run({**tiny_config, "out_dir": str(out)})
    interrupted(out)                                        # an interrupted run's folder, copied without its config
    (out / "metrics.json").unlink()
    (out / "config.json").unlink()
    with pytest.raises(ValueError, match=r"has a checkpoint but no config.json; .* delete .*resume.pt to start"):
        run({**tiny_config, "out_dir": str(out), "resume": True})
    assert (out / "checkpoints" / "resume.pt").exists()      # nothing removed


def test_resume_of_a_finished_run_returns_its_metrics(tiny_config, tmp_path):
    first = run({**tiny_config, "out_dir": str(tmp_path / "r")})
    again = run({**tiny_config, "out_dir": str(tmp_path / "r"), "resume": True})
    assert again["overall"] == first["overall"] and again["finished_at"] == first["finished_at"]


def test_resume_of_a_finished_run_loads_it_before_building_anything(tiny_config, tmp_path, monkeypatch, capsys):
    first = run({**tiny_config, "out_dir": str(tmp_path / "r")})

    def no_model(*args, **kwargs):
        raise AssertionError("a finished run with the same settings must not build a model")
    monkeypatch.setattr("mtlib.pipelines.build_model", no_model)
    again = run({**tiny_config, "out_dir": str(tmp_path / "r"), "resume": True, "progress": True})
    assert again == first and "loaded it" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_of_a_finished_run_with_changed_settings_trains_again(tiny_config, tmp_path, capsys):
    first = run({**tiny_config, "out_dir": str(tmp_path / "r")})
    again = run({**tiny_config, "out_dir": str(tmp_path / "r"), "resume": True, "lr": 2e-3})
    assert "lr=0.001 (now 0.002)" in capsys.readouterr().out
    assert again["config"]["lr"] == 2e-3 and again["finished_at"] >= first["finished_at"]
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["config"]["lr"] == 2e-3


@pytest.mark.slow
def test_a_moved_finished_run_loads_from_where_it_lies_now(tiny_config, tmp_path):
    """A finished run folder moved to another row (07's best, chosen after the fact) is loaded with its new folder,
    so its leaderboard files are found there (the config it recorded names the old one)."""
    from mtlib.report.tables import publish_predictions
    run({**tiny_config, "out_dir": str(tmp_path / "old")})
    os.rename(tmp_path / "old", tmp_path / "new")
    again = run({**tiny_config, "out_dir": str(tmp_path / "new"), "resume": True})
    assert again["config"]["out_dir"] == str(tmp_path / "new")
    files = publish_predictions(again, tmp_path / "published")
    assert sorted(f.name for f in files) == sorted(f"{t}-{s}-output.csv" for t in ("sst", "para", "sts")
                                                   for s in ("dev", "test"))


def test_precision_matches_by_the_arithmetic_it_meant():
    from mtlib.pipelines import changed_keys
    auto, fp32 = {"precision": "auto"}, {"precision": "fp32"}
    # a finished run: `auto` that trained in fp32 is what precision=fp32 asks for, and `auto` stays `auto`
    assert changed_keys(auto, fp32, "fp32", "fp32") == [] and changed_keys(fp32, auto, "fp32", "fp32") == []
    assert changed_keys(auto, fp32, "bf16-autocast", "fp32") == ["precision"]
    assert changed_keys(fp32, auto, "fp32", "bf16-autocast") == ["precision"]
    assert changed_keys(auto, auto, "fp32", "bf16-autocast") == []
    assert changed_keys(auto, fp32) == ["precision"]                        # arithmetic unknown: the values decide
    # going on mid-run: never in other arithmetic than the run began in, whatever the config says
    assert changed_keys(auto, auto, "fp32", "bf16-autocast", mid_run=True) == ["precision"]
    assert changed_keys(auto, fp32, "fp32", "fp32", mid_run=True) == []


@pytest.mark.slow
def test_a_finished_run_loads_where_its_arithmetic_is_the_one_asked_for(tiny_config, tmp_path, capsys):
    out = tmp_path / "r"
    first = run({**tiny_config, "out_dir": str(out), "precision": "fp32"})
    m = json.loads((out / "metrics.json").read_text())
    m["config"]["precision"] = "auto"            # as an `auto` run on a CPU without native bf16 records it
    (out / "metrics.json").write_text(json.dumps(m))
    again = run({**tiny_config, "out_dir": str(out), "precision": "fp32", "resume": True})
    assert again["finished_at"] == first["finished_at"] and "loaded it" in capsys.readouterr().out
    other = run({**tiny_config, "out_dir": str(out), "precision": "bf16", "resume": True})
    assert "precision='auto', fp32 (now 'bf16', bf16-autocast on this machine)" in capsys.readouterr().out
    assert other["precision"] == "bf16-autocast"


@pytest.mark.slow
def test_a_run_never_goes_on_in_other_arithmetic_than_it_began_in(tiny_config, tmp_path):
    import torch
    from mtlib.pipelines import resume_state
    from mtlib.config import Config
    out = tmp_path / "r"
    run({**tiny_config, "out_dir": str(out)})
    interrupted(out)
    ckpt = out / "checkpoints" / "resume.pt"
    torch.save({"completed": [], "rng": None, "log_bytes": 0, "current": None, "precision": "bf16-autocast"}, ckpt)
    cfg = Config.from_dict({**tiny_config, "out_dir": str(out)})
    with pytest.raises(ValueError, match=r"precision='auto', bf16-autocast \(now 'auto', fp32 on this machine\)"):
        resume_state(cfg, out, ckpt, "fp32")          # `auto` began as bf16 on one machine; here it would be fp32
    assert resume_state(cfg, out, ckpt, "bf16-autocast")["precision"] == "bf16-autocast"
    fp32 = Config.from_dict({**tiny_config, "out_dir": str(out), "precision": "fp32"})
    torch.save({"completed": [], "rng": None, "log_bytes": 0, "current": None, "precision": "fp32"}, ckpt)
    assert resume_state(fp32, out, ckpt, "fp32")["precision"] == "fp32"   # config says auto, arithmetic agrees


def test_the_arithmetic_here_is_unknown_for_a_device_this_machine_lacks():
    import torch
    from mtlib.config import Config
    from mtlib.pipelines import arithmetic_here
    assert arithmetic_here(Config(profile="smoke", precision="fp32", device="cpu")) == "fp32"
    assert arithmetic_here(Config(profile="smoke", precision="bf16", device="cpu")) == "bf16-autocast"
    if not torch.cuda.is_available():           # a GPU run's folder read on a CPU machine: decided by its config
        assert arithmetic_here(Config(profile="smoke", device="cuda")) is None


def test_a_run_saved_before_select_existed_kept_its_best_epoch_and_new_runs_keep_their_last():
    """select defaults to `last`; a saved config without the knob (every run before it) means `best`: a multi-epoch
    run of those loads only with select=best, and a one-epoch run either way (its last epoch is its best)."""
    from mtlib.config import Config
    from mtlib.pipelines import changed_keys
    assert Config().select == "last"
    three = {**Config(epochs=3).to_dict()}
    saved = {k: v for k, v in three.items() if k != "select"}
    assert changed_keys(saved, {**three, "select": "last"}) == ["select"]
    assert changed_keys(saved, {**three, "select": "best"}) == []
    one = {**Config(epochs=1, profile="cpu").to_dict()}
    assert changed_keys({k: v for k, v in one.items() if k != "select"}, one) == []
