"""Every bad input ends with exit code 2 and one clear line from the CLI (no traceback)."""
import shutil

import pytest

from mtlib.__main__ import main


def corrupt(folder, name, edit):
    path = folder / name
    path.write_bytes(edit(path.read_bytes()))


def _replace_line(n, new):
    def edit(raw):
        lines = raw.split(b"\n")
        lines[n] = new
        return b"\n".join(lines)
    return edit


CASES = {
    "missing file": (lambda d: (d / "sts-dev.csv").unlink(), ["sts-dev.csv", "python -m mtlib download"]),
    "missing column": (lambda d: corrupt(d, "ids-sst-dev.csv", lambda b: b.replace(b"sentiment", b"label", 1)),
                       ["ids-sst-dev.csv:1", "missing column", "sentiment"]),
    "label out of range": (lambda d: corrupt(d, "ids-sst-train.csv", _replace_line(3, b"2\tdup9\ta film\t7")),
                           ["ids-sst-train.csv:4", "out of range", "0..4"]),
    "empty sentence": (lambda d: corrupt(d, "sts-train.csv", _replace_line(2, b"1\tnew1\t   \tb tale\t3.0")),
                       ["sts-train.csv:3", "empty", "sentence1"]),
    "invalid utf-8": (lambda d: corrupt(d, "quora-dev.csv", _replace_line(5, b"4\tbad\t\xff\xfe why\tok?\t1.0")),
                      ["quora-dev.csv:6", "UTF-8"]),
    "duplicate id": (lambda d: corrupt(d, "ids-sst-dev.csv", lambda b: b.replace(b"sstdev0002", b"sstdev0001")),
                     ["ids-sst-dev.csv", "lines 3 and 4", "sstdev0001"]),
    "unparseable rows past the limit": (lambda d: corrupt(d, "quora-train.csv", _replace_line(4, b"3\tbroken\tonly one field")),
                                        ["quora-train.csv", "5", "max_bad_fraction"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_data(case, tiny_data, tiny_encoder, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    damage, expected = CASES[case]
    damage(data)
    code = main(["run", "profile=smoke", f"encoder={tiny_encoder}", f"data_dir={data}", f"out_dir={tmp_path / 'o'}",
                 "progress=false"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mtlib: error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, (text, err)


@pytest.mark.slow
def test_unparseable_row_within_the_limit_is_skipped_with_a_warning(tiny_data, tiny_encoder, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    corrupt(data, "quora-train.csv", _replace_line(4, b"3\tbroken\tonly one field"))
    with pytest.warns(UserWarning, match="quora-train.csv:5"):
        code = main(["run", "profile=smoke", f"encoder={tiny_encoder}", f"data_dir={data}", "max_bad_fraction=0.05",
                     f"out_dir={tmp_path / 'o'}", "progress=false"])
    assert code == 0


def test_nan_loss_stops_naming_task_and_step_and_keeps_the_checkpoint(tiny_config, tmp_path, capsys, monkeypatch):
    import torch

    from mtlib.models import MultitaskModel
    calls = {"n": 0}
    real = MultitaskModel.loss

    def flaky(self, task, output, labels):
        if task == "sts":
            calls["n"] += 1
            if calls["n"] == 6:
                return torch.tensor(float("nan"))
        return real(self, task, output, labels)
    monkeypatch.setattr(MultitaskModel, "loss", flaky)
    args = ["run"] + [f"{k}={v}" for k, v in {**tiny_config, "checkpoint_every": 2}.items()]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the sts loss is nan" in err and "epoch 2, step 1" in err and "resume.pt" in err  # 4 steps per epoch
    assert (tmp_path / "run" / "checkpoints" / "resume.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("combine", ["sum", "upgrad"])
def test_nan_gradient_stops_naming_task_and_step(tiny_config, capsys, monkeypatch, combine):
    """A finite loss whose gradient holds a NaN (e.g. a bf16 overflow in backward) is not skipped silently."""
    from mtlib.train import TaskGrads
    calls = {"n": 0}
    real = TaskGrads.after_backward

    def flaky(self, task):
        real(self, task)
        if task == 1:                                    # the second task of ("sst", "para", "sts")
            calls["n"] += 1
            if calls["n"] == 7:
                self.buffer[task, 3] = float("nan")
    monkeypatch.setattr(TaskGrads, "after_backward", flaky)
    args = ["run"] + [f"{k}={v}" for k, v in {**tiny_config, "checkpoint_every": 2, "combine": combine}.items()]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage 'multitask', epoch 2, step 2: the para gradient has a nan or inf entry" in err
    assert "resume.pt" in err
