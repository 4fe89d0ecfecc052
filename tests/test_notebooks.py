"""The notebooks as a researcher runs them: papermill with injected parameters, then read the run back."""
import ast
import dataclasses
import json
import os
import re
import warnings

import nbformat
import pytest

from conftest import ROOT, SHARED_DATA
from mtlib import notebook
from mtlib.config import Config, ConfigError
from mtlib.data import DataWarning

RUNGS = [ROOT / "notebooks" / f"{stem}.ipynb" for stem in ("01_baseline", "02_gradient_surgery",
                                                             "03_cosine_similarity", "04_cs_gs", "05_novel")]
NOTEBOOKS = [ROOT / "notebooks" / "00_data.ipynb", *RUNGS]
FIELDS = {f.name: f.default for f in dataclasses.fields(Config)}


def test_the_data_notebook_the_five_rungs_and_the_two_beyond_them_exist():
    assert [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))] == [
        "00_data", "01_baseline", "02_gradient_surgery", "03_cosine_similarity", "04_cs_gs", "05_novel",
        "06_gradient_methods", "07_beyond"]


def cells(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    return nb, code, tagged[0]


def assigned(source: str) -> dict:
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.Assign)}


def setup_call(code) -> dict:
    """The keywords of the notebook's `setup(globals(), ...)` call: the Config fields it fixes."""
    calls = [node for c in code for node in ast.walk(ast.parse(c.source))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"]
    assert len(calls) == 1
    return {k.arg: ast.literal_eval(k.value) for k in calls[0].keywords}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_one_parameters_cell(path):
    nb, code, parameters = cells(path)
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert set(assigned(parameters.source)) <= set(FIELDS) | set(notebook.EXTRAS)
    assert "next" in nb.cells[0].source.lower()


def prose(source: str) -> str:
    """A markdown cell without its code spans (`04_cs_gs`, `-p dropout 0`)."""
    return re.sub(r"`[^`]*`", "", source)


@pytest.mark.parametrize("path", RUNGS, ids=lambda p: p.stem)
def test_a_rungs_markdown_states_the_question_and_the_method_without_numbers_that_go_stale(path):
    nb, _, _ = cells(path)
    first = nb.cells[0].source
    assert first.startswith("# ") and "**Question.**" in first and "**Method.**" in first and "**Next:**" in first
    for cell in (c for c in nb.cells if c.cell_type == "markdown"):
        assert "**Cost.**" not in cell.source
        assert not re.search(r"\d\.\d|\d\s*%|≈|\d\s*(min|minutes|h|hours|s)\b", prose(cell.source)), cell.source


@pytest.mark.parametrize("path", RUNGS, ids=lambda p: p.stem)
def test_a_rungs_parameters_cell_lists_its_own_knobs_in_at_most_12_lines(path):
    _, code, parameters = cells(path)
    values, fixed = assigned(parameters.source), setup_call(code)
    assert len(parameters.source.strip().splitlines()) <= 12
    assert set(fixed) <= set(FIELDS) and not set(fixed) & set(values)
    # the defaults are Config's (the report's behaviour), but where a notebook keeps its runs, and resume
    assert {k: v for k, v in values.items() if k in FIELDS and FIELDS[k] != v} == \
        {"out_dir": f"runs/{path.stem}", "resume": True}


@pytest.mark.parametrize("path", RUNGS, ids=lambda p: p.stem)
def test_a_rung_opens_with_its_computed_finding_right_after_the_setup_cell(path):
    _, code, parameters = cells(path)
    at = next(i for i, c in enumerate(code) if "setup(globals()" in c.source)
    assert "nb.run(" in code[at + 1].source and "display(Markdown(finding(" in code[at + 1].source


def test_make_report_passes_only_names_each_rung_takes():
    """What `make report` injects into a rung (execute.py, PLAN): Config fields or EXTRAS, none the rung fixes."""
    from mtlib.report.paper import PLAN
    injected = {"out_dir", "seed", "resume", "progress", "figures_dir", "figure_prefix", "profile"}
    for stem, params, _ in PLAN:
        if stem == "00_data":
            continue
        _, code, _ = cells(ROOT / "notebooks" / f"{stem}.ipynb")
        names = injected | set(params)
        assert names <= set(FIELDS) | set(notebook.EXTRAS) and not names & set(setup_call(code)), stem


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_papermill_parses_every_line_of_the_parameters_cell(path, caplog):
    """papermill reads each parameter's name, type and comment from its line (`papermill --help-notebook`, and
    JupyterLab's parameter view); a comment it cannot parse (an '=' or a quote in it) drops the line there."""
    import papermill as pm
    with caplog.at_level("WARNING", logger="papermill"):
        seen = pm.inspect_notebook(str(path))
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert set(seen) == set(assigned(cells(path)[2].source))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """setup() changes the working folder and the warning format: both are restored after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)


def injected(**params) -> dict:
    """A kernel namespace after papermill injected `params` (IPython keeps each cell's source in In)."""
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    return {"In": ["", "profile = None\n", source], **params}


def test_setup_passes_every_field_through_config(fresh):
    nb = notebook.setup({**injected(precision="fp32", device="cpu", frozen_epochs=2, resume=False),
                         "out_dir": "runs/x", "figure_prefix": "x"}, pipeline="novel")
    assert (nb.cfg.precision, nb.cfg.device, nb.cfg.frozen_epochs, nb.cfg.resume) == ("fp32", "cpu", 2, False)
    assert nb.cfg.pipeline == "novel" and str(nb.out) == "runs/x" and str(nb.figures) == "runs/x/figures"
    assert os.getcwd() == str(ROOT)                     # relative paths start at the repository root


@pytest.mark.parametrize("params, fixed, message", [
    ({"dropuot": 0}, {}, "unknown parameter.*dropuot.*valid names"),
    ({"combine": "pcgrad"}, {"combine": "sum"}, "sets combine itself"),
    ({"dropout": "lots"}, {}, "dropout='lots' is not valid"),
])
def test_setup_rejects_what_the_cli_rejects(fresh, params, fixed, message):
    with pytest.raises(ConfigError, match=message):
        notebook.setup(injected(**params), **fixed)


def test_knobs_of_a_notebook_of_many_runs_take_every_field_given_and_reject_what_setup_rejects():
    params = {"precision": "fp32", "dropout": 0, "methods": ["sum"], "out_dir": "runs/x", "combine_options": {}}
    found = notebook.knobs({**injected(**params), "profile": None}, own=("methods", "combine_options", "out_dir"),
                           fixed=("combine", "seed"))
    assert found == {"precision": "fp32", "dropout": 0, "profile": None}      # injected beyond the cell, too
    with pytest.raises(ConfigError, match="unknown parameter.*dropuot"):
        notebook.knobs(injected(dropuot=0), own=("methods",))
    with pytest.raises(ConfigError, match="sets combine itself, run by run"):
        notebook.knobs(injected(combine="pcgrad"), fixed=("combine",))
    with pytest.raises(ConfigError, match="precision='fp8' is not valid"):
        notebook.knobs(injected(precision="fp8"))


# what a test that executes a notebook to check its plumbing (not its numbers) trains: the smoke profile, shorter still
SHORT = {"epochs": 1, "steps_per_epoch": 2}


@pytest.mark.slow
def test_papermill_06_passes_a_field_its_parameters_cell_does_not_list_to_every_run(tmp_path):
    """`make report --set precision=fp32` injects precision into 06, whose parameters cell lists a few fields. (fp32,
    not bf16: on a CPU without native bf16, bf16 autocast is emulated and made this test take minutes.)"""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA} (python -m mtlib download)")
    import papermill as pm
    out = tmp_path / "06"
    pm.execute_notebook(str(ROOT / "notebooks" / "06_gradient_methods.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"profile": "smoke", "out_dir": str(out), "progress": False, "methods": ["sum"],
                                    "precision": "fp32", "weight_decay": 0.01, **SHORT}, progress_bar=False)
    # `sum` is 03's CS rung: its run lies in the rung's folder beside 06's (runs.method_folder), none in 06's own
    config = json.loads((tmp_path / "03_cosine_similarity" / "seed0" / "cs" / "config.json").read_text())
    assert (config["precision"], config["weight_decay"], config["combine"]) == ("fp32", 0.01, "sum")
    assert not (out / "sum").exists()


def test_setup_shows_mtlib_warnings_without_machine_paths(fresh):
    notebook.setup({})
    data_file = ROOT.parent / "shared" / "data" / "quora-dev.csv"          # a data folder beside the repository
    text = warnings.formatwarning(f"{data_file}:244: skipped unparseable row (empty label)", DataWarning,
                                  str(ROOT / "mtlib" / "data.py"), 189)
    assert text == "DataWarning: ../shared/data/quora-dev.csv:244: skipped unparseable row (empty label)\n"
    assert notebook.shown(ROOT / "runs" / "x") == "runs/x" and notebook.shown("runs/x") == "runs/x"
    assert warnings.formatwarning("x", UserWarning, "/elsewhere/a.py", 1).startswith("/elsewhere/a.py:1: UserWarning")


def test_a_data_folder_beside_the_repository_shows_relative_when_it_is_a_symbolic_link(tmp_path, monkeypatch):
    (tmp_path / "elsewhere" / "data").mkdir(parents=True)
    (tmp_path / "work" / "repo").mkdir(parents=True)
    (tmp_path / "work" / "shared").symlink_to(tmp_path / "elsewhere")     # ../shared -> a folder further away
    monkeypatch.setattr(notebook, "ROOT", tmp_path / "work" / "repo")
    assert notebook.shown(tmp_path / "work" / "shared" / "data" / "quora-dev.csv") == "../shared/data/quora-dev.csv"
    assert notebook.shown(tmp_path / "elsewhere" / "data") == str(tmp_path / "elsewhere" / "data")
    monkeypatch.setenv("MTLIB_DATA_DIR", str(tmp_path / "elsewhere" / "data"))     # data outside, named by the variable
    assert notebook.shown(tmp_path / "elsewhere" / "data") == "$MTLIB_DATA_DIR"
    assert notebook.shown(tmp_path / "elsewhere" / "data" / "sts-dev.csv") == "$MTLIB_DATA_DIR/sts-dev.csv"
    assert notebook.shown(tmp_path / "elsewhere" / "other") == str(tmp_path / "elsewhere" / "other")


def run_injected(path, parameters: dict) -> dict:
    """A notebook's code cells run in this process, in order, after papermill's own injection
    (`papermill.parameterize`), each source appended to `In` as a kernel's history is: what papermill's kernel runs,
    without the seconds of starting one. Stops at the first error, as papermill does; returns the namespace."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    nb = parameterize_notebook(load_notebook_node(str(path)), parameters)
    namespace: dict = {"In": [], "__name__": "__main__"}
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        namespace["In"].append(cell.source)
        exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", RUNGS, ids=lambda p: p.stem)
def test_an_injected_unknown_parameter_stops_a_rung_before_it_trains(tmp_path, path):
    with pytest.raises(ConfigError, match="unknown parameter.*dropuot"):
        run_injected(path, {"dropuot": 0, "out_dir": str(tmp_path / "run")})
    assert not (tmp_path / "run").exists()                 # stopped before any training


@pytest.mark.slow
def test_papermill_rejects_an_unknown_parameter_in_a_kernel(tmp_path):
    """The same through papermill and a kernel, once: the error reaches papermill as the cell's failure."""
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match="unknown parameter.*dropuot"):
        pm.execute_notebook(str(RUNGS[0]), str(tmp_path / "out.ipynb"),
                            parameters={"dropuot": 0, "out_dir": str(tmp_path / "run")}, progress_bar=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_papermill_data_notebook_writes_its_figures(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA} (python -m mtlib download)")
    import papermill as pm
    pm.execute_notebook(str(ROOT / "notebooks" / "00_data.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"profile": "smoke", "figures_dir": str(tmp_path / "figures")}, progress_bar=False)
    for name in ("00_data-labels.png", "00_data-lengths.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    shown = outputs(tmp_path / "out.ipynb")
    assert "quora-train.csv:11400" in shown and "20,214" in shown
    assert str(SHARED_DATA.resolve()) not in shown and f"{ROOT}/" not in shown


def outputs(path) -> str:
    executed = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/markdown", "")
                   for c in executed.cells if c.cell_type == "code" for o in c.outputs)


def test_a_notebook_run_keeps_zero_meaning_no_cap(fresh, monkeypatch):
    seen = {}
    monkeypatch.setattr("mtlib.pipelines.run", lambda params: seen.update(params) or {})
    nb = notebook.setup({**injected(steps_per_epoch=0, profile="cpu"), "out_dir": "runs/x"})
    nb.run("a", dropout=0)
    cfg = Config.from_dict(seen)
    assert cfg.steps_per_epoch is None and cfg.dropout == 0 and seen["out_dir"] == "runs/x/a"


@pytest.mark.slow
def test_papermill_07_shows_its_runs_from_the_repository_root(tmp_path):
    """07 runs many configurations without `setup`; its executed copy must still carry no machine path."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the CS224N data at {SHARED_DATA} (python -m mtlib download)")
    import shutil

    import papermill as pm
    out = ROOT / "runs" / f"test-07-{os.getpid()}"            # inside the repository (runs/ is ignored by git)
    try:
        pm.execute_notebook(str(ROOT / "notebooks" / "07_beyond.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", "out_dir": str(out), "progress": False,
                                        "ablate": ["schedule"], **SHORT}, progress_bar=False)  # one row beside the best
        shown = outputs(tmp_path / "out.ipynb")
        assert f"from `runs/test-07-{os.getpid()}/best/seed0`" in shown           # the published leaderboard files
        assert f"{ROOT}/" not in shown
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_a_notebooks_quora_caveat_names_its_own_encoder(path):
    """`quora_note()` names the default encoder whatever `-p encoder` says; a notebook calls quora_note(<its encoder>)."""
    source = "\n".join(c.source for c in cells(path)[1])
    assert "quora_note()" not in source
    if "Caveat" in source:
        assert re.search(r"quora_note\((nb\.cfg\.encoder|encoder)\)", source), path.stem
