"""Command line: `python -m mtlib run key=value ...`, `python -m mtlib download --dest DIR`,
`python -m mtlib encoders install`, `report`, `explore`, `profile`, `sweep`, `merges`, `ensemble`. Errors print one
line and exit 2."""
from __future__ import annotations

import argparse
import sys

USAGE = """usage:
  python -m mtlib run [key=value ...]     e.g. pipeline=novel profile=cpu dropout=0 seed=0 out_dir=runs/x
  python -m mtlib download [--dest DIR] [--force]
  python -m mtlib encoders install [NAME ...] [--force]   (all-mpnet-base-v2 -> ~/.cache/mtlib/encoders/)
  python -m mtlib report [--execute [--profile P] [--only LABEL ...] [--seeds K ...] [--set NAME=VALUE ...]]
                       [--store DIR] [--results DIR] [--readme FILE]   (trains into reports/runs/<device key>/)
  python -m mtlib tables                  (every results page, reports/runs.csv, README's tables; no training)
  python -m mtlib explore [--grid reports/explore-07.txt] [--profile P] [--seeds K ...] [--only ROW ...]
                        [--store DIR] [--print-commands]   (07's exploration grid: BEST + each line's changes; resumes)
  report --execute, explore: [--workers N] [--address ADDR] [--no-shared-fs] [--print-commands]   (docs/cluster.md)
  python -m mtlib profile [RUN_DIR ...]   (where each run's time went -> reports/profile.md; RUN_DIRs: printed)
  python -m mtlib sweep [lrs=2e-5,5e-5,1e-4] [key=value ...]   (dev-only learning-rate sweep -> reports/lr-sweep.md)
  python -m mtlib merges RUN_DIR ...      (a novel run's single-task models merged each way, on dev -> RUN_DIR/merges.json)
  python -m mtlib ensemble RUN_DIR ... [--out DIR] [--data-dir DIR]   (averages runs: docs/ensembles.md)"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    from .config import ConfigError, parse_params
    from .data import DataError
    from .models import EncoderError
    from .train import TrainingError
    try:
        if command == "run":
            from .pipelines import quora_note, run
            from .report.paper import PAPER
            encoder = run(parse_params(rest))["config"]["encoder"]
            best = "Novel: CS + GS, no dropout"
            print("the report's best row ({}; BERT-base, the official 141k Quora pairs): SST {:.3f} / Quora {:.3f} / "
                  "STS r {:.3f} / overall {:.3f}\n{}".format(best, *PAPER[best], quora_note(encoder)))
        elif command == "download":
            from .data import download
            ap = argparse.ArgumentParser(prog="python -m mtlib download")
            ap.add_argument("--dest", default=None, help="folder (default: $MTLIB_DATA_DIR or data/cs224n)")
            ap.add_argument("--force", action="store_true", help="fetch files that are already there again")
            args = ap.parse_args(rest)
            dest = args.dest or _default_dest()
            for path in download(dest, force=args.force):
                print(path)
        elif command == "encoders":
            from .install import KNOWN, install
            if rest[:1] != ["install"]:
                raise EncoderError(f"usage: python -m mtlib encoders install [NAME ...] [--force]; NAME: {', '.join(KNOWN)}")
            for name in [a for a in rest[1:] if a != "--force"] or list(KNOWN):
                print(f"{name}: installed in {install(name, '--force' in rest)}")
        elif command == "profile":
            from .report.cost import profile_markdown, write_profile
            from .report.execute import ReportError
            try:       # given runs: their tables alone, printed, so that the committed profile.md is left whole
                print(profile_markdown(rest) if rest else write_profile())
            except ReportError as err:
                print(f"mtlib: error: {err}", file=sys.stderr)
                return 2
        elif command == "sweep":
            from .report.sweep import lr_sweep
            params = parse_params(rest)
            lrs = tuple(float(x) for x in params.pop("lrs", "2e-5,5e-5,1e-4").split(","))
            print(lr_sweep(lrs, **params).round(3).to_string(index=False))
        elif command == "merges":
            from .report.merges import merge_grid
            if not rest:
                print(f"mtlib: error: merges needs a run folder\n{USAGE}", file=sys.stderr)
                return 2
            for out_dir in rest:
                merge_grid(out_dir)
        elif command == "ensemble":
            from .report.ensemble import main as ensemble_main
            ensemble_main(rest)
        elif command == "explore":
            from .report.explore import GridError, main as explore_main
            try:
                explore_main(rest)
            except GridError as err:
                print(f"mtlib: error: {err}", file=sys.stderr)
                return 2
        elif command in ("report", "tables"):
            from .report.execute import ReportError, main as report_main
            try:
                if command == "tables" and "--execute" in rest:
                    raise ReportError("tables trains nothing; `python -m mtlib report --execute` trains what is missing")
                report_main(rest)
            except ReportError as err:
                print(f"mtlib: error: {err}", file=sys.stderr)
                return 2
        else:
            print(f"mtlib: error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
            return 2
    except (ConfigError, DataError, EncoderError, TrainingError, OSError, ValueError) as err:
        print(f"mtlib: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mtlib: interrupted", file=sys.stderr)
        return 130
    return 0


def _default_dest() -> str:
    """$MTLIB_DATA_DIR, else data/cs224n in the repository: where `run` looks when data_dir is not given."""
    import os
    from pathlib import Path
    return os.environ.get("MTLIB_DATA_DIR") or str(Path(__file__).resolve().parent.parent / "data" / "cs224n")


if __name__ == "__main__":
    sys.exit(main())
