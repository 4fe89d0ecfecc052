"""07's exploration grid: the committed list, its parser's errors, and `make explore` training it resumably."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mtlib.report.explore import GRID, GridError, parse_grid, read_grid, select, unit_params
from mtlib.report.paper import BEST
from mtlib.report.runs import run_folder
from mtlib.store import STORE


def test_comments_blank_lines_seeds_and_row_folders():
    rows = parse_grid("# a comment\n\nema=0.99  seeds=0,1,2   # three seeds\n"
                      "epochs=2 steps_per_epoch=0 schedule=linear  seeds=1\n   loss_weights=sts=0.5 seeds=0\n", "g.txt")
    assert [r.changes for r in rows] == [{"ema": "0.99"}, {"epochs": "2", "steps_per_epoch": "0", "schedule": "linear"},
                                         {"loss_weights": "sts=0.5"}]
    assert [r.seeds for r in rows] == [(0, 1, 2), (1,), (0,)] and [r.line for r in rows] == [3, 4, 5]
    assert [r.folder for r in rows] == ["ema-0.99", "epochs-2+steps_per_epoch-0+schedule-linear", "loss_weights-sts=0.5"]
    assert rows[0].config() == {**BEST, "ema": "0.99"}
    assert [(r.folder, s) for r, s in select(rows)] == [("ema-0.99", 0), ("ema-0.99", 1), ("ema-0.99", 2),
                                                        (rows[1].folder, 1), ("loss_weights-sts=0.5", 0)]
    assert [(r.folder, s) for r, s in select(rows, only=["loss_weights=sts=0.5", "ema-0.99"], seeds=[5])] == \
        [("ema-0.99", 5), ("loss_weights-sts=0.5", 5)]
    with pytest.raises(GridError, match="unknown row.s. nope; valid: ema-0.99, epochs-2"):
        select(rows, only=["nope"])


@pytest.mark.parametrize("line,problem,fix", [
    ("ema 0.99  seeds=0", "'ema' is not knob=value", "write each change as knob=value"),
    ("ema=0.99", "the line has no seeds", "add the seeds to train, e.g. seeds=0,1,2"),
    ("ema=0.99  seeds=0,x", "seeds=0,x is not a comma-separated list of whole numbers", "write e.g. seeds=0,1,2"),
    ("ema=0.99  seeds=0,0", "repeats a seed", "list each seed >= 0 once"),
    ("seeds=0", "the line changes nothing", "name a knob=value to change against BEST"),
    ("learning_rate=1e-4  seeds=0", "unknown parameter(s) learning_rate; valid names:", "fix the change"),
    ("ema=2  seeds=0", "ema=2.0 is not valid", "fix the change"),
    ("ema=0.9 ema=0.99  seeds=0", "ema= is given twice", "a second value is another line"),
    ("ema=0.9  profile=smoke  seeds=0", "profile= is set for every run", "--profile, --seeds, --store, --encoder choose"),
    ("encoder=bert-base-uncased  seeds=0", "encoder= is set for every run", "--encoder choose"),
])
def test_a_bad_line_names_file_line_and_fix(line, problem, fix):
    with pytest.raises(GridError) as err:
        parse_grid(f"# header\nschedule=linear  seeds=0\n{line}\n", "reports/my-grid.txt")
    message = str(err.value)
    assert message.startswith("reports/my-grid.txt:3: ") and problem in message and fix in message


def test_a_row_twice_is_an_error():
    with pytest.raises(GridError, match=r"g.txt:2: it is line 1's row again; merge the two lines' seeds"):
        parse_grid("ema=0.99 seeds=0\nema=0.99 seeds=1\n", "g.txt")


def committed_rows(grid: str, encoder: str | None = None) -> dict[str, set[int]]:
    """{row folder: seeds} of the committed 07_explore runs of `encoder` (None: the default's folders, else
    <device>+<encoder>), each checked to be in `grid` and to hold BEST with its line's changes."""
    from mtlib.pipelines import changed_keys, make_config
    rows = {r.folder: r for r in read_grid(grid)}
    committed: dict[str, set[int]] = {}
    for path in (ROOT / STORE).glob("*/07_explore/*/seed*/config.json"):
        seed_dir = path.parent
        if seed_dir.parents[2].name.partition("+")[2] != (encoder or ""):
            continue
        row = seed_dir.parent.name
        committed.setdefault(row, set()).add(int(seed_dir.name.removeprefix("seed")))
        assert row in rows, f"{seed_dir.relative_to(ROOT)}: its row is not in {grid}"
        params = unit_params(rows[row], int(seed_dir.name.removeprefix("seed")), "cpu", seed_dir, encoder)
        saved = json.loads(path.read_text())
        assert not changed_keys(saved, make_config(params).to_dict()), \
            f"{seed_dir.relative_to(ROOT)}: config.json is not BEST + {rows[row].name}"
    return committed


def test_committed_grid_holds_every_committed_07_explore_row_and_its_seeds():
    """reports/explore-07.txt lists every row under reports/runs/<device>/07_explore/ with the seeds committed for it
    (on any device), and each run's config.json is BEST with that line's changes."""
    committed = committed_rows(GRID)
    assert committed, f"no committed 07_explore runs under {STORE}"
    assert {r.folder: set(r.seeds) for r in read_grid(GRID)} == committed


def test_the_mpnet_grid_is_planned_within_issue_30s_budget_and_holds_what_was_trained():
    """reports/explore-07-mpnet.txt, written before any of it trained: at most eight single-seed rows; every committed
    run under <device>+all-mpnet-base-v2/07_explore/ is one of its rows (the grid is the record of what was tried).
    A row has 3 seeds only if it was the screening's choice when it got them: the highest seed-0 overall among the
    configurations whose seed 0 had finished before its seed 1 did; and the choice now is one of them."""
    from mtlib.report.runs import ablation_runs
    from mtlib.report.tables import screening_choice
    grid = "reports/explore-07-mpnet.txt"
    rows = read_grid(grid)
    assert len(rows) <= 8 and all(r.seeds[0] == 0 for r in rows)
    committed = committed_rows(grid, "all-mpnet-base-v2")
    more = [r for r in rows if r.seeds != (0,)]              # beyond one seed: a choice of the screening, 3 seeds
    assert all(r.seeds == (0, 1, 2) for r in more), more
    for key in {p.parents[3] for p in (ROOT / STORE).glob("*+all-mpnet-base-v2/07_explore/*/seed*/config.json")}:
        best, tried = ablation_runs(key / "07_beyond").get("best", []), ablation_runs(key / "07_explore")
        chosen, _, _ = screening_choice(best, tried)
        assert chosen in {r.name for r in more}, (more, chosen)
        seed0 = {name: next(m for m in runs if m["config"]["seed"] == 0) for name, runs in {"best": best, **tried}.items()}
        for r in (r for r in more if len(tried.get(r.name, [])) > 1):
            seed1 = next(m for m in tried[r.name] if m["config"]["seed"] == 1)["finished_at"]
            before = {name: m["overall"] for name, m in seed0.items() if m["finished_at"] < seed1}
            assert max(before, key=before.get) == r.name, (r.name, before)
    for r in more:
        assert committed.get(r.folder, set()) <= set(r.seeds)


def test_print_commands_lists_each_unit(tmp_path, capsys):
    from mtlib.__main__ import main
    grid = tmp_path / "grid.txt"
    grid.write_text("ema=0.99  seeds=0,1\n")
    assert main(["explore", "--grid", str(grid), "--store", str(tmp_path / "store"), "--print-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(x.startswith("python -m mtlib run pipeline=multitask ") for x in lines)
    assert " ema=0.99 profile=cpu seed=1 resume=true progress=false out_dir=" in lines[1]
    assert lines[1].endswith("/07_explore/ema-0.99/seed1")
    # another encoder: every run gets it, in the device's folder for that encoder (a row of its own, a best of its own)
    from mtlib.store import here
    from mtlib.config import Config
    assert main(["explore", "--grid", str(grid), "--store", str(tmp_path / "store"), "--print-commands",
                 "--encoder", "sentence-transformers/all-mpnet-base-v2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(" encoder=sentence-transformers/all-mpnet-base-v2 " in x for x in lines)
    assert lines[0].endswith(f"/store/{here(Config(profile='cpu'))}+all-mpnet-base-v2/07_explore/ema-0.99/seed0")


def test_bad_grid_exits_2_with_one_line(tmp_path, capsys):
    from mtlib.__main__ import main
    grid = tmp_path / "grid.txt"
    grid.write_text("ema 0.99\n")
    assert main(["explore", "--grid", str(grid), "--print-commands"]) == 2
    err = capsys.readouterr().err
    assert f"{grid}:1: 'ema' is not knob=value" in err and "Traceback" not in err
    assert main(["explore", "--grid", str(grid.with_name("none.txt"))]) == 2
    assert "none.txt: cannot be read" in capsys.readouterr().err


def test_smoke_runs_may_not_go_into_the_committed_store(capsys):
    from mtlib.__main__ import main
    assert main(["explore", "--profile", "smoke", "--only", "ema-0.99"]) == 2
    assert "give --store <another folder> for smoke runs" in capsys.readouterr().err


@pytest.mark.slow
def test_make_explore_trains_each_unit_once_then_loads_it(tmp_path):
    """`make explore` on the smoke profile into a temporary store: the (line, seed) has its run folder and
    metrics.json with the line's changes; a second `make explore` trains nothing again. (One unit: reading several
    lines and seeds is parse_grid's and select's, tested above without training.)"""
    grid = tmp_path / "grid.txt"
    grid.write_text("# one row, one seed, two steps\nschedule=linear warmup=0.2 epochs=1 steps_per_epoch=2  seeds=0\n")
    store = tmp_path / "store"

    def make_explore():
        # -o: the venv counts as set up (`make test` has it); PY: this interpreter
        r = subprocess.run(["make", "-o", ".venv/.installed", "explore", f"PY={sys.executable}", "PROFILE=smoke",
                            f"STORE={store}", f"GRID={grid}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={k: v for k, v in os.environ.items() if k not in ("SEEDS", "MAKEFLAGS")})
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    out = make_explore()
    runs = list(store.glob("*/07_explore/*/seed0/metrics.json"))
    assert len({p.parts[-5] for p in runs}) == 1, runs                        # one device key: this machine's
    key = runs[0].parts[-5]
    expected = {"schedule-linear+warmup-0.2+epochs-1+steps_per_epoch-2": {"schedule": "linear", "warmup": 0.2,
                                                                           "epochs": 1, "steps_per_epoch": 2}}
    mtimes = {}
    for folder, changes in expected.items():
        path = store / key / "07_explore" / folder / "seed0" / "metrics.json"
        assert path.is_file(), f"{path} missing; make explore printed:\n{out}"
        config = json.loads(path.read_text())["config"]
        assert {k: config[k] for k in changes} == changes
        assert config["profile"] == "smoke" and config["seed"] == 0 and config["combine"] == BEST["combine"]
        assert config["para_head"] == BEST["para_head"]
        mtimes[folder] = path.stat().st_mtime_ns
    assert len(runs) == 1 and run_folder("schedule=linear, warmup=0.2") == "schedule-linear+warmup-0.2"

    again = make_explore()
    assert "holds a finished run with these settings: loaded it" in again
    assert {f: (store / key / "07_explore" / f / "seed0" / "metrics.json").stat().st_mtime_ns for f in expected} == mtimes


def test_a_grid_run_started_at_the_root_records_a_relative_out_dir(monkeypatch):
    """Runs of the committed store record reports/runs/... in config.json and run.json, not this machine's path."""
    import mtlib.pipelines
    from mtlib.report.explore import explore
    seen = []
    monkeypatch.setattr(mtlib.pipelines, "run", lambda params: seen.append(params["out_dir"]) or {"overall": 0.5})
    monkeypatch.chdir(ROOT)
    explore(GRID, "cpu", None, [read_grid(GRID)[0].folder], None)
    assert seen and all(not Path(o).is_absolute() and o.startswith(f"{STORE}/") for o in seen), seen
    monkeypatch.chdir(ROOT / "tests")                       # elsewhere: absolute, so the run lands in the store
    explore(GRID, "cpu", None, [read_grid(GRID)[0].folder], None)
    assert Path(seen[-1]).is_absolute() and Path(seen[-1]).is_relative_to(ROOT / STORE)
