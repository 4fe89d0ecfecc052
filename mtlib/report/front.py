"""The generated blocks of the front pages: the README's ladder, best model and claims (one row per device key),
docs/findings.md's sentence per claim, docs/speed.md's parity sentences and docs/encoders.md's cost table, all from
the store.

`make tables` rewrites what lies between `<!-- tables:NAME -->` and `<!-- /tables:NAME -->` in README.md;
tests/test_tables.py fails when a block is stale. Every number in them is computed here from the runs' files.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..store import STORE
from .paper import CLAIMS, OFF_FRONT, PAPER, ROWS
from .ensemble import ensemble_cells, seed_ensemble
from .runs import ablation_runs, last_epoch, repo_path, seed_runs, single_task_runs, timed_runs
from .stats import MIN_SEEDS, claims_table, mean_std
from .units import split_key
from ..notebook import shown
from .tables import chosen_text, grid_choice, wall_text

TASKS = ("sst_acc", "para_acc", "sts_pearson")
COLUMNS = ("SST acc", "Quora acc", "STS r", "mean")
SINGLE = {"single_sst": "sst_acc", "single_para": "para_acc", "single_sts": "sts_pearson"}
BEST = "Novel: CS + GS, no dropout"          # the report's best row


def devices(store: str | Path = STORE) -> list[str]:
    return sorted(p.name for p in repo_path(store).iterdir() if p.is_dir()) if repo_path(store).is_dir() else []


def _paper(name: str) -> str:
    return " / ".join(f"{v:.3f}" for v in PAPER[name])


def _cells(runs: dict[int, dict], keys=(*TASKS, "overall")) -> list[str]:
    """"0.460±0.004" per metric: the ladder's form, one word a cell on a front page capped in words."""
    return [mean_std([m[k] for m in runs.values()]).replace(" ± ", "±") for k in keys]


def minutes(runs: list[dict], unit: str = "") -> str:
    """Minutes per run over the runs that had the machine to themselves and ran in one process (`wall_text`'s
    rule, without its note: the device's results page says how many were left out), "shared" where none did."""
    text = wall_text(runs)
    return (text.split(" (")[0].replace("resumed", "—").replace(" ± ", "±") + unit
            + (" shared" if text.endswith("(every run shared)") else ""))


def off_front_rows() -> set[str]:
    """Rows that only OFF_FRONT claims compare (02's mean reduction): on the results pages, not the README's ladder.
    A control row, which no claim compares, stays (the ladder reads each rung against it)."""
    front = {n for tag, _, a, b, _, _ in CLAIMS if tag not in OFF_FRONT for n in (a, b)}
    return {n for tag, _, a, b, _, _ in CLAIMS if tag in OFF_FRONT for n in (a, b)} - front - set(PAPER)


# The control with 07's heads: on the front page in the best-model table, beside 07's best, per task (results pages:
# in their control table too); the ladder keeps the controls of the rungs' own heads.
BEST_CONTROL = ("control", "sbert-cosine")


def ladder(store: str | Path = STORE) -> list[str]:
    """Each rung of the report's ladder that some device ran: the report's mean, then ours on every device that ran
    a rung (a folder with 07's best or the control alone, e.g. another encoder's, gets no column of dashes), and the
    controls of the rungs' heads."""
    keys = [k for k in devices(store) if any(seed_runs(repo_path(store) / k, label, sub)
                                             for _, _, label, sub in ROWS if label != "control")]
    lines = ["| rung | report | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for _, name, label, sub in ROWS:
        if name in off_front_rows() or (label, sub) == BEST_CONTROL:
            continue
        cells = []
        for key in keys:
            runs = seed_runs(repo_path(store) / key, label, sub)
            if not runs:
                cells.append("")            # not run on that device: an empty cell (no word on a capped page)
                continue
            last = [last_epoch(m)["overall"] for m in runs.values()]
            best = [m["overall"] for m in runs.values()]
            chosen = "" if last == best else f" (selected on dev: {mean_std(best).replace(' ± ', '±')})"
            cells.append(f"{mean_std(last).replace(' ± ', '±')}{chosen} n={len(runs)}, {minutes(list(runs.values()))}")
        if any(cells):                     # a row no device has run yet: the results pages list it as not run
            lines.append(f"| {name.replace(' (not in the report)', '')} | "
                         f"{f'{PAPER[name][3]:.3f}' if name in PAPER else '—'} | " + " | ".join(cells) + " |")
    return lines


def _ensemble_row(label: str, key: str, runs: list[dict]) -> list[str]:
    """A row's seeds averaged (`seed_ensemble`), beside their mean: one table line, or none where a seed saved no
    probabilities."""
    found = seed_ensemble([repo_path(m["config"]["out_dir"]) for m in runs])
    return [f"| {label} | {key} | " + " | ".join(ensemble_cells(found, runs)) + f" | {len(runs)} | |"] if found else []


def best_model(store: str | Path = STORE) -> list[str]:
    """07's best configuration on each device, beside the report's best row and the single-task models of the same
    encoder (the first stage of each novel run: one model per task, its heads)."""
    lines = ["| model | device | SST acc | Quora acc | STS r | mean | n | min/run |", "|---|---|---|---|---|---|---|---|",
             f"| the report's best ({BEST}; BERT-base) | GPU | " + " | ".join(f"{v:.3f}" for v in PAPER[BEST]) + " | | |"]
    for key in devices(store):
        best = ablation_runs(repo_path(store) / key / "07_beyond").get("best", [])
        if best:
            by_seed = {m["config"]["seed"]: m for m in best}
            lines.append(f"| 07's best ({chosen_text(repo_path(store) / key)}) "
                         f"| {key} | " + " | ".join(_cells(by_seed))
                         + f" | {len(by_seed)} | {minutes(best)} |")
            shown_choice = False
            if split_key(key)[1]:      # another encoder: its own grid's choice, once trained with MIN_SEEDS seeds
                tried = ablation_runs(repo_path(store) / key / "07_explore")
                chosen, scored = grid_choice(best, tried)
                if chosen:
                    runs = {m["config"]["seed"]: m for m in tried[chosen]}
                    lines.append(f"| 07's grid at this scale: {chosen} (chosen on dev among {scored}) | {key} | "
                                 + " | ".join(_cells(runs)) + f" | {len(runs)} | {minutes(tried[chosen])} |")
                    lines += _ensemble_row(f"{chosen}, ensemble of its {len(runs)} seeds", key, tried[chosen])
                    shown_choice = True
            if not shown_choice:        # one ensemble an encoder on the front page: its choice's (all: results pages)
                lines += _ensemble_row(f"07's best, ensemble of its {len(best)} seeds", key, best)
        for row, runs in single_task_runs(repo_path(store) / key).items():
            c = next(iter(runs.values()))["config"]
            if not best or c.get("para_head", "concat") != best[0]["config"].get("para_head"):
                continue            # beside the best model: the single-task models with its heads, where they ran
            single = {k: {SINGLE[s["name"]]: s["best"][SINGLE[s["name"]]] for s in m["stages"] if s["name"] in SINGLE}
                      for k, m in runs.items()}
            lines.append(f"| single-task models (Quora {c.get('para_head', 'concat')} head) | {key} | "
                         + " | ".join(_cells(single, TASKS)) + f" | | {len(single)} | |")
        control = seed_runs(repo_path(store) / key, *BEST_CONTROL)
        if control:
            lines.append(f"| pre-training control (07's heads, frozen encoder) | {key} | " + " | ".join(_cells(control))
                         + f" | {len(control)} | {minutes(list(control.values()))} |")
    return lines


def claims_tables(store: str | Path = STORE) -> dict:
    """{device key: its `claims_table`} for every device of the store that ran a rung."""
    tables = {}
    for key in devices(store):
        rows = {name: seed_runs(repo_path(store) / key, label, sub) for _, name, label, sub in ROWS}
        if any(rows.values()):
            tables[key] = claims_table(rows)
    return tables


def summary(store: str | Path = STORE) -> list[str]:
    """The front page's first reading (`summary_lines`) from the store's claims tables and 07's best rows; at another
    encoder, its own grid's choice where that has MIN_SEEDS seeds (what its best-model row shows, labelled)."""
    means, chosen = {}, {}
    for key in devices(store):
        best = ablation_runs(repo_path(store) / key / "07_beyond").get("best", [])
        if not best:
            continue
        if split_key(key)[1]:
            tried = ablation_runs(repo_path(store) / key / "07_explore")
            row, scored = grid_choice(best, tried)
            if row:
                best, chosen[key] = tried[row], f"{row}, chosen on dev among {scored}"
        means[key] = {k: sum(m[k] for m in best) / len(best) for k in (*TASKS, "overall")}
    return summary_lines(claims_tables(store), means, chosen)


def summary_lines(tables: dict, best_means: dict, chosen: dict | None = None) -> list[str]:
    """Counted from each device's `claims_table`: how many of the report's own claims hold on every device that ran
    them with at least MIN_SEEDS paired seeds (a device with fewer has tested nothing yet), on some, on none, and for
    how many our interval excludes the report's effect size on every device; then,
    from 07's best configuration's mean on each device ({key: {metric: mean}}), the metrics where it is above the
    report's best row on every device and those where it is below on every device: one line per encoder (a key
    <device>+<encoder> is another encoder's runs), so that a larger encoder's rows never mix with the default's.
    `chosen` ({key: label}) names the keys whose means are their own grid's choice, not 07's best."""
    chosen = chosen or {}
    ran_on = {}
    for i, (_tag, _text, a, b, _metric, _sign) in enumerate(CLAIMS):
        cells = [t.iloc[i] for t in tables.values() if t.iloc[i]["n"] >= MIN_SEEDS]   # fewer: no test yet
        if a in PAPER and b in PAPER and cells:             # the report's own claims: (e') and (f) are ours
            ran_on[i] = cells
    every = [i for i, cells in ran_on.items() if all(c["verdict"] == "holds" for c in cells)]
    some = [i for i, cells in ran_on.items() if i not in every and any(c["verdict"] == "holds" for c in cells)]
    sizes = [{c["size"] for c in cells} for cells in ran_on.values()]
    excluded = [s for s in sizes if all(v.startswith("excluded") for v in s)]
    smaller, larger = (sum(s == {f"excluded (ours {w})"} for s in excluded) for w in ("smaller", "larger"))
    lines = [f"- Of the report's {len(ran_on)} claims (table below), {len(every)} hold on every device that ran them "
             f"({MIN_SEEDS}+ seeds), "
             f"{len(some)} on some, {len(ran_on) - len(every) - len(some)} on none; on every device our interval "
             f"excludes the report's effect size for {len(excluded)} (smaller: {smaller}, larger: {larger})."]
    keys, caveat = (*TASKS, "overall"), " (Quora caveat above)"       # said on the first line that names Quora
    for encoder in sorted({split_key(k)[1] for k in best_means}):   # one line per encoder, the default's first
        keys_of = [k for k in best_means if split_key(k)[1] == encoder]
        means = [best_means[k] for k in keys_of]
        above = [k for k in keys if all(m[k] > PAPER[BEST][keys.index(k)] for m in means)]
        below = [k for k in keys if all(m[k] < PAPER[BEST][keys.index(k)] for m in means)]

        def names(found: list[str]) -> str:
            found = [METRIC[k] for k in found]
            return " and ".join([", ".join(found[:-1]), found[-1]] if len(found) > 1 else found) or "nothing"
        labels = sorted({chosen.get(k, "07's best where it has none") for k in keys_of})
        what = (f"07's grid with {encoder} ({'; '.join(labels)})" if chosen.keys() & set(keys_of)
                else f"07's best{f' with {encoder}' if encoder else ''}")
        lines.append(f"- {what} against the report's best row, mean over "
                     f"seeds, on every device: above on {names(above)}"
                     + (f", below on {names(below)}" if below else "")
                     + (caveat if "para_acc" in above + below else "") + ".")
        if "para_acc" in above + below:
            caveat = ""
    return lines


def claims(store: str | Path = STORE) -> list[str]:
    """Each claim: the report's effect (its two rows' difference), ours per device (mean [95% interval], n) and the
    verdict, paired by seed within the device."""
    tables = claims_tables(store)
    lines = ["| claim | metric | report | " + " | ".join(tables) + " |", "|---|---|---|" + "---|" * len(tables)]
    for i, (tag, text, a, b, metric, _sign) in enumerate(CLAIMS):
        index = ("sst_acc", "para_acc", "sts_pearson", "overall").index(metric)
        report = f"{PAPER[a][index] - PAPER[b][index]:+.3f}" if a in PAPER and b in PAPER else "—"
        cells = []
        for table in tables.values():
            c = table.iloc[i]
            if c["n"] < 2:
                cells.append("" if c["n"] == 0 else f"{c['mean']:+.3f} n={c['n']}: no interval")
                continue
            size = "too wide" if c["size"].startswith("too wide to tell") else SIZE.get(c["size"], c["size"])
            cells.append(f"{c['mean']:+.3f} [{c['lo']:+.3f},{c['hi']:+.3f}] n={c['n']}: {c['verdict']}, {size}")
        if any(cells) and tag not in OFF_FRONT:
            lines.append(f"| ({tag}) {text} | {METRIC[metric]} | {report} | " + " | ".join(cells) + " |")
    return lines


def findings(store: str | Path = STORE) -> list[str]:
    """One sentence a claim, written from its verdicts on every device that ran both rows (docs/findings.md)."""
    return claim_sentences({key: claims_table({name: seed_runs(repo_path(store) / key, label, sub)
                                                for _, name, label, sub in ROWS}) for key in devices(store)})


def claim_sentences(tables: dict) -> list[str]:
    """From each device's `claims_table`: the direction, then the size against the report's effect ((e'): against
    our (e)), each naming its devices. Where an interval holds both zero and that effect ("not resolved" and
    "consistent" at once), the sentence says so: the size verdict asks whether the effect could be there, the
    direction whether anything is."""
    lines = []
    for i, (tag, text, *_rest) in enumerate(CLAIMS):
        ran = {key: t.iloc[i] for key, t in tables.items() if t.iloc[i]["n"] > 0}
        if not ran:
            lines.append(f"- **({tag}) {text}:** not run on any device yet.")
            continue

        def grouped(column: str) -> str:
            by = {}
            for key, c in ran.items():
                by.setdefault(c[column], []).append(key)
            return "; ".join(f"{v} on {', '.join(keys)}" for v, keys in by.items())
        against = "our (e)" if tag == "e'" else "the report's effect"
        size = (f" Size against {against}: {grouped('size')}." if any(c["size"] != "no effect in the report"
                                                                       for c in ran.values()) else " Not in the report.")
        both = [key for key, c in ran.items() if c["verdict"] == "not resolved" and c["size"] == "consistent"]
        if both:
            size += (f" On {', '.join(both)} the interval holds zero as well, so these seeds cannot tell an effect "
                     f"of that size from none.")
        lines.append(f"- **({tag}) {text}:** {grouped('verdict')}.{size}")
    return lines


def parity(store: str | Path = STORE) -> list[str]:
    """docs/speed.md's sentences on the fast path's parity (`cost.parity_findings`; imported here, not at the top:
    cost imports execute, which imports this module)."""
    from .cost import parity_findings
    return parity_findings(store)


def _quiet_minutes(runs: list[dict]) -> float | None:
    """The mean minutes of the runs `minutes` counts (quiet, one process); None where none did."""
    alone, _ = timed_runs([m for m in runs if not m.get("resumed")])
    return sum(m["wall_s"] for m in alone) / 60 / len(alone) if alone else None


def _dates(runs: list[dict]) -> str:
    """The days runs finished on ("2026-11-29", or "2026-11-29 to 2026-11-30"): one device key's machines can differ
    in speed from one session to the next, so minutes are compared only where their days say they are one session."""
    days = sorted({m["finished_at"][:10] for m in runs if m.get("finished_at")})
    return " to ".join(dict.fromkeys([days[0], days[-1]])) if days else "no date"


def encoder_cost(store: str | Path = STORE) -> list[str]:
    """docs/encoders.md's table: what one run costs with each encoder beyond the default, per device, for 07's best
    configuration and for the encoder's own grid's choice (`grid_choice`, once it has its seeds): measured (the quiet
    runs' minutes of <device>+<encoder>/07_beyond/best, or of 07_explore/<row>) or projected (`make encoder-cost`'s
    page reports/encoder-cost/<device>+<encoder>.md, its bold projection of 07's best; the choice's projection is
    that times the choice's minutes over 07's best's on a device that measured both), beside the default encoder's
    07's best on the same device, with the days each ran (and that configuration's reruns, `cost.reruns`, where a
    later session trained it again: minutes compare only within one session)."""
    from .cost import reruns           # here, not at the top: cost imports execute, which imports this module
    lines = ["| encoder | device | configuration | one run (min) | measured or projected | the default encoder's 07's "
             "best (min) |", "|---|---|---|---|---|---|"]
    root = repo_path(store)
    bests = {k: ablation_runs(root / k / "07_beyond").get("best") for k in devices(store) if split_key(k)[1]}
    bests = {k: runs for k, runs in bests.items() if runs}
    keys = set(bests)
    pages = {p.stem: p for p in repo_path("reports/encoder-cost").glob("*+*.md")}
    again_by_key = {}                  # device key: its default-encoder 07 best's reruns
    for r in reruns(store):
        if r["run"].startswith("07_beyond/best/") and r["config"]:
            again_by_key.setdefault(r["key"], []).append(r["again"])
    choices = {}                       # key: (the grid's choice, its runs, 07's best's runs), where it has one
    for key, best in bests.items():
        tried = ablation_runs(root / key / "07_explore")
        chosen = grid_choice(best, tried)[0]
        if chosen:
            choices[key] = (chosen, tried[chosen], best)
    for key in sorted(keys | set(pages)):
        device, encoder = split_key(key)
        default = ablation_runs(root / device / "07_beyond").get("best", [])
        again = again_by_key.get(device, [])
        beside = (f"{minutes(default)} ({_dates(default)})" if default else "—") + (
            f"; trained again: {minutes(again)} ({_dates(again)})" if again else "")
        if key in keys:
            runs = bests[key]
            lines.append(f"| {encoder} | {device} | 07's best | {minutes(runs)} | measured, {len(runs)} "
                         f"run{'s' * (len(runs) > 1)} ({_dates(runs)}; `{shown(root / key / '07_beyond' / 'best')}/`) "
                         f"| {beside} |")
            if key in choices:
                chosen, runs, _ = choices[key]
                lines.append(f"| {encoder} | {device} | its grid's choice: {chosen} | {minutes(runs)} | measured, "
                             f"{len(runs)} runs ({_dates(runs)}; `{shown(Path(runs[0]['config']['out_dir']).parent)}/`) "
                             "| |")
            continue
        text = pages[key].read_text(encoding="utf-8")
        found = re.search(r"\*\*One .*?: about (\d+) min, projected\*\*", text)
        if not found:
            raise ValueError(f"{shown(pages[key])}: no '**One ... about N min, projected**' line; "
                             "write the page again with `make encoder-cost`")
        lines.append(f"| {encoder} | {device} | 07's best | {found.group(1)} | projected from the step-time ratio "
                     f"(`{shown(pages[key])}`) | {beside} |")
        for other, (chosen, runs, best) in sorted(choices.items()):
            pair = (_quiet_minutes(runs), _quiet_minutes(best)) if split_key(other)[1] == encoder else (None, None)
            if all(pair):
                ratio = pair[0] / pair[1]
                lines.append(f"| {encoder} | {device} | its grid's choice: {chosen} | {int(found.group(1)) * ratio:.0f} "
                             f"| projected: the line above × {ratio:.2f}, the choice's minutes over 07's best's on "
                             f"{split_key(other)[0]} | |")
                break
    return lines


SIZE = {"excluded (ours smaller)": "excluded↓", "excluded (ours larger)": "excluded↑", "no effect in the report": "—"}
METRIC = {"sst_acc": "SST", "para_acc": "Quora", "sts_pearson": "STS r", "overall": "mean"}
BLOCKS = {"summary": summary, "ladder": ladder, "best": best_model, "claims": claims, "findings": findings,
          "parity": parity, "encoder_cost": encoder_cost}
README_BLOCKS, FINDINGS_BLOCKS = ("summary", "ladder", "best", "claims"), ("findings",)   # README.md's; findings.md's
SPEED_BLOCKS, ENCODER_BLOCKS = ("parity",), ("encoder_cost",)                     # docs/speed.md's, encoders.md's


def render(text: str, store: str | Path = STORE, blocks=README_BLOCKS, where: str = "README.md") -> str:
    """`text` (the README, or `where`) with each generated block replaced by its fresh table."""
    for name in blocks:
        make, start, end = BLOCKS[name], f"<!-- tables:{name} -->", f"<!-- /tables:{name} -->"
        if start not in text or end not in text:
            raise ValueError(f"{where} has no {start} ... {end} block; add the two marker lines where the "
                             f"{name} table goes")
        body = "\n".join([start, *make(store), end])
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: body, text, flags=re.S)
    return text


def write_readme(path: str | Path = "README.md", store: str | Path = STORE, blocks=README_BLOCKS) -> Path:
    path = repo_path(path)
    path.write_text(render(path.read_text(encoding="utf-8"), store, blocks, str(path.name)), encoding="utf-8")
    return path
