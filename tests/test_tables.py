"""`make tables`: every device's results page, runs.csv and the README's blocks, regenerated from the store."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from mtlib.report import front
from mtlib.report.execute import tables
from mtlib.report.index import runs_frame

ROOT = Path(__file__).resolve().parent.parent
BEFORE = ROOT / "tests" / "data" / "results-before"     # the three results pages as they were before the store


# Rows renamed or recomputed since the old pages, each for its reason: 07's two-pass rows kept their best dev epoch, and say so
# since `select` defaults to the last epoch (issue 29); their folders were renamed with them.
RENAMED = [("epochs=2, steps_per_epoch=0 |", "epochs=2, steps_per_epoch=0, select=best |"),
           ("epochs=2, steps_per_epoch=0, schedule=linear, ema=0.99 |", "epochs=2, steps_per_epoch=0, schedule=linear, ema=0.99, select=best |"),
           ("epochs-2+steps_per_epoch-0/", "epochs-2+steps_per_epoch-0+select-best/"),
           ("epochs-2+steps_per_epoch-0+schedule-linear+ema-0.99/", "epochs-2+steps_per_epoch-0+schedule-linear+ema-0.99+select-best/"),
           # the Xeon's 06 `sum` row: SST's share of the update, read from step logs kept to 4 significant digits
           # (compress_log's rule, applied to the older committed logs in 5fe9822), sits at a rounding boundary
           ("| 1.000 | 0.000 | 1.480 | 0.29 / 0.12 / 0.56 |", "| 1.000 | 0.000 | 1.480 | 0.30 / 0.12 / 0.56 |")]


# Runs among seeds 0-2 trained after the old pages were made, under reports/runs/. The AMD EPYC's novel pipeline with
# dropout had seed 0 alone there (claims (d) on the novel pipeline and (e) with dropout: n=1).
TRAINED_LATER = {"amd-epyc-fp32-2t/05_novel/seed1", "amd-epyc-fp32-2t/05_novel/seed2"}


def _rows(text: str) -> list[str]:
    """Every table row of a results page above its runs list (whose folder column names the old trees), but 02's
    seed table: its noise floor went from one range over the tasks to each task's median and middle half (issue 29),
    and tests/test_report.py checks that table's cells."""
    head = re.sub(r"\n## 02: PCGrad's gradients, every seed\n.*?(?=\n## )", "", text.split("\n## Runs")[0], flags=re.S)
    # a row's wall time is its runs' (a run trained again, e.g. 02's sum runs for their noise floor, brings its own)
    return [re.sub(r"\| [\d.]+( ± [\d.]+)?( \([^)|]*\))? \|$", "| |", line)
            for line in head.splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """The pages regenerated from the store as it held the runs the old pages were made from: seeds 0-2 (later
    seeds and the control rows came after them), copied without what no table reads."""
    import shutil
    out = tmp_path_factory.mktemp("results")
    later = shutil.ignore_patterns("seed[3-9]", "seed[1-9][0-9]", "control", "predictions", "notebooks", "figures",
                                   "checkpoints")

    def ignore(folder, names):          # and the seeds 0-2 trained after the old pages, named in TRAINED_LATER
        here = Path(folder).relative_to(ROOT / "reports/runs")
        return set(later(folder, names)) | {n for n in names if (here / n).as_posix() in TRAINED_LATER}
    shutil.copytree(ROOT / "reports/runs", out / "runs", ignore=ignore)
    start = time.time()
    tables(store=out / "runs", results=out / "results", readme=None)
    return out / "results", time.time() - start


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(p.stem for p in BEFORE.glob("*.md")))
def test_every_row_and_claim_of_the_old_pages_comes_back_from_the_store(key, regenerated):
    old, new = (BEFORE / f"{key}.md").read_text(), (regenerated[0] / f"{key}.md").read_text()
    for before, after in RENAMED:
        old = old.replace(before, after)
    missing = [row for row in _rows(old) if row not in _rows(new)]
    assert not missing, f"{key}: {len(missing)} rows differ, e.g. {missing[:2]}"
    claims = old.split("claims, tested")[1].split("\n## ")[0] if "claims, tested" in old else ""   # its section
    assert all(line in new for line in claims.splitlines() if line.startswith("- ") or line.startswith("|"))


@pytest.mark.slow
def test_tables_need_no_training_and_take_seconds(regenerated):
    assert regenerated[1] < 60


def test_runs_csv_has_one_row_per_committed_run():
    frame = runs_frame()
    assert len(frame) == len(list((ROOT / "reports/runs").glob("*/**/metrics.json")))
    # a folder <device key>+<encoder> holds another encoder's runs of that device: its rows name the device alone
    assert set(frame["device"]) == {p.name.partition("+")[0] for p in (ROOT / "reports/runs").iterdir() if p.is_dir()}
    assert frame["folder"].is_unique and frame["command"].str.startswith("python -m mtlib run ").all()
    committed = pd.read_csv(ROOT / "reports/runs.csv")
    assert len(committed) == len(frame), "reports/runs.csv is stale: run `make tables`"


def test_readme_blocks_are_fresh_and_the_front_page_stays_short():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert front.render(text) == text, "README.md's generated tables are stale: run `make tables`"
    assert len(text.split()) <= 1500, "README.md is a front page of at most 1,500 words: move prose to docs/"
    prose = re.sub(r"<!-- tables:(\w+) -->.*?<!-- /tables:\1 -->|```.*?```|`[^`]*`", "", text, flags=re.S)
    typed = re.findall(r"(?<![\w.])[-+]?\d*\.\d+", prose)
    assert not typed, f"numbers typed by hand in README.md's prose (generate them): {typed}"


def test_every_claim_sentence_in_docs_is_generated_from_its_verdicts():
    """docs/findings.md's sentences about the claims are a generated block, fresh; its prose names no verdict."""
    text = (ROOT / "docs/findings.md").read_text(encoding="utf-8")
    assert front.render(text, blocks=front.FINDINGS_BLOCKS) == text, "docs/findings.md is stale: run `make tables`"
    block = text.split("<!-- tables:findings -->")[1].split("<!-- /tables:findings -->")[0]
    assert len([line for line in block.splitlines() if line.startswith("- **(")]) == len(front.CLAIMS)
    prose = re.sub(r"<!-- tables:(\w+) -->.*?<!-- /tables:\1 -->|`[^`]*`", "", text, flags=re.S)
    typed = re.findall(r"\b(?:holds|reversed|not resolved|excluded)\b.{0,20}\b(?:on|where|wherever)\b", prose)
    assert not typed, f"verdicts typed by hand in docs/findings.md (generate them): {typed}"


def test_the_parity_sentences_in_docs_speed_are_generated_and_fresh():
    """docs/speed.md says what parity shows only in its generated block; reports/profile.md is `make tables`' too."""
    from mtlib.report.cost import profile_page
    text = (ROOT / "docs/speed.md").read_text(encoding="utf-8")
    assert front.render(text, blocks=front.SPEED_BLOCKS, where="docs/speed.md") == text, (
        "docs/speed.md is stale: run `make tables`")
    block = text.split("<!-- tables:parity -->")[1].split("<!-- /tables:parity -->")[0]
    assert "What differs: bf16 autocast" in block and "The machine:" in block
    prose = re.sub(r"<!-- tables:(\w+) -->.*?<!-- /tables:\1 -->|`[^`]*`", "", text, flags=re.S)
    typed = re.findall(r"\b(?:keeps parity|lowers|raises|restores|not resolved|higher|lower)\b", prose)
    assert not typed, f"parity verdicts typed by hand in docs/speed.md (generate them): {typed}"
    assert profile_page() == (ROOT / "reports/profile.md").read_text(encoding="utf-8"), (
        "reports/profile.md is stale: run `make tables`")


def test_a_missing_block_says_how_to_add_it():
    with pytest.raises(ValueError, match="<!-- tables:summary -->"):
        front.render("no markers here")


def test_the_committed_record_stays_slim():
    """What a clone unpacks under reports/: at most 40 MiB, per-step logs compressed, no leaderboard files beyond the
    runs behind the headline rows and each notebook's best run on one device (git ignores the rest)."""
    import subprocess
    files = subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    sizes = {f: (ROOT / f).stat().st_size for f in files if (ROOT / f).is_file()}
    assert sum(sizes.values()) <= 40 * 2**20, f"reports/ holds {sum(sizes.values()) / 2**20:.1f} MiB"
    assert not [f for f in sizes if f.endswith("metrics.jsonl")], "commit per-step logs gzip-compressed"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "reports/runs/k/x/seed0/predictions/a.csv"],
                             cwd=ROOT).returncode == 0
    assert ignored, "a new run's leaderboard files must stay out of git unless added on purpose"


def test_wall_time_is_the_quiet_runs_and_says_what_it_left_out():
    """Runs known to be quiet (CPU use ≥ 95%) set a row's minutes; a shared or resumed run never does, and one made
    before CPU use was recorded only where no run is known to be quiet."""
    from mtlib.report.tables import wall_text
    def run(minutes, use=None, **kw):
        return {"wall_s": minutes * 60, "device": "cpu", **({"cpu_s": use * minutes * 120, "threads": 2} if use else {}), **kw}
    quiet, shared, unknown = [run(10, .98), run(12, .97)], run(30, .80), run(45)
    assert wall_text([*quiet, shared, unknown, run(2, .98, resumed=True)]) == (
        "11.0 ± 1.4 (1 shared run, 1 run of unknown CPU use and 1 resumed run left out)")
    assert wall_text([quiet[0], unknown, run(43)]) == "10.0 (2 runs of unknown CPU use left out)"
    assert wall_text([unknown, run(43), shared]) == "44.0 ± 1.4 (1 shared run left out)"     # nothing known quiet
    assert wall_text([shared]) == "30.0 (every run shared)" and wall_text([run(2, resumed=True)]) == "resumed"


def test_every_committed_multitask_run_trained_the_steps_its_config_names():
    """runs.csv's `steps` (counted from each run's step log) against epochs × steps_per_epoch: a run cut short, as the
    first equal-data runs were by the one-pass cap (1,013 of 1,237), fails here rather than in a reviewer's eyes."""
    committed, short = pd.read_csv(ROOT / "reports/runs.csv"), []
    for r in committed.itertuples():
        c = json.loads((ROOT / r.folder / "metrics.json").read_text())["config"]
        if c["pipeline"] == "multitask" and c["steps_per_epoch"] and not pd.isna(r.steps):
            short += [f"{r.folder}: {r.steps:.0f} steps logged"] if r.steps != c["epochs"] * c["steps_per_epoch"] else []
    assert not short, short


def test_the_front_page_lists_the_reports_claims_and_leaves_the_others_to_findings():
    from mtlib.report.paper import OFF_FRONT
    table, said = "\n".join(front.claims()), "\n".join(front.findings())
    for tag in OFF_FRONT:
        assert f"| ({tag}) " not in table and f"- **({tag}) " in said
    assert "| (e') " in table and "| (e) " in table                 # (e') asks whether (e) is fair: it stays


def test_docs_encoders_cost_table_is_generated_and_fresh():
    text = (ROOT / "docs/encoders.md").read_text(encoding="utf-8")
    assert front.render(text, blocks=front.ENCODER_BLOCKS, where="docs/encoders.md") == text, (
        "docs/encoders.md is stale: run `make tables`")


def test_the_encoder_cost_table_puts_measured_runs_beside_projections(tmp_path, monkeypatch):
    """A measured <device>+<encoder> best row gives its quiet runs' minutes; a projection page without runs gives
    its own estimate; each beside the default encoder's best on that device; a page that lost its line fails."""
    from conftest import fake_run
    (tmp_path / "reports/encoder-cost").mkdir(parents=True)
    (tmp_path / "reports/encoder-cost/slow+big.md").write_text(
        "# ...\n\n**One big run of 07's best configuration on `slow`: about 150 min, projected** (median)\n")
    for key, minutes in (("fast", (6, 8)), ("fast+big", (16, 18)), ("slow", (20, 20))):
        for seed, m in enumerate(minutes):
            fake_run(tmp_path / f"reports/runs/{key}/07_beyond/best/seed{seed}", wall_s=60 * m, cpu_s=120 * m, threads=2,
                     config={"seed": seed})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mtlib.report.runs.ROOT", tmp_path, raising=False)
    lines = front.encoder_cost(tmp_path / "reports/runs")
    assert lines[2].startswith("| big | fast | 07's best | 17.0±1.4 | measured, 2 runs (2026-11-28; ")
    assert lines[2].endswith("| 7.0±1.4 (2026-11-28) |")
    assert lines[3].startswith("| big | slow | 07's best | 150 | projected")
    assert lines[3].endswith("| 20.0±0.0 (2026-11-28) |")
    assert len(lines) == 4                                  # no grid at fast+big: no choice, nothing projected for one
    # the default encoder's best trained again on `fast` in a later session: its minutes and day beside the first
    fake_run(tmp_path / "reports/runs/fast/rerun/07_beyond/best/seed0", wall_s=180, cpu_s=360, threads=2,
             config={"seed": 0}, finished_at="2026-12-07T13:20:00+00:00")
    lines = front.encoder_cost(tmp_path / "reports/runs")
    assert lines[2].endswith("| 7.0±1.4 (2026-11-28); trained again: 3.0 (2026-12-07) |")
    # the encoder's grid picks a two-pass row with 3 seeds on `fast`: its measured minutes, and on `slow` the
    # projection of 07's best scaled by the choice's minutes over the best's on `fast` (34 / 17)
    for seed in range(3):
        fake_run(tmp_path / f"reports/runs/fast+big/07_explore/epochs-2/seed{seed}", wall_s=60 * (33 + seed),
                 cpu_s=120 * (33 + seed), threads=2, sst_acc=0.5, config={"seed": seed})     # above the best
    lines = front.encoder_cost(tmp_path / "reports/runs")
    assert lines[3].startswith("| big | fast | its grid's choice: epochs=2 | 34.0±1.0 | measured, 3 runs")
    assert lines[5] == ("| big | slow | its grid's choice: epochs=2 | 300 | projected: the line above × 2.00, the "
                        "choice's minutes over 07's best's on fast | |")
    (tmp_path / "reports/encoder-cost/slow+big.md").write_text("# edited by hand\n")
    with pytest.raises(ValueError, match="slow\\+big.md.*make encoder-cost"):
        front.encoder_cost(tmp_path / "reports/runs")
