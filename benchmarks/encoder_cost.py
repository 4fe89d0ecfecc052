"""What another encoder costs on this machine, against the bundled all-MiniLM-L6-v2, and the wall time of one run of
07's best configuration with it, projected from the MiniLM runs of this device in the store.

    python benchmarks/encoder_cost.py [--encoder all-mpnet-base-v2] [--reps 4] [--steps 6]    (or: make encoder-cost)

One process, 07's best configuration (paper.BEST), the cpu profile's batches, real CS224N data, each encoder
tokenizing the same examples itself. Training: the two models take the same batches (same seeds), `reps`
repetitions of `steps` steps each, interleaved with the order alternating; the median step time of each. Inference:
`predict` on the SST and STS dev sets, interleaved the same way. Writes reports/encoder-cost/<device key>+<encoder>.md
(the name of the encoder's folder of the store, mtlib.report.units.store_key).

The projection is a projection, and the page says so: each finished MiniLM run of 07's best row on this device
(<store>/<device key>/07_beyond/best/seed<k>) that had the machine to itself is split into its training steps (its
stage's wall time less the stage's evaluation, checkpoint and log seconds) and the rest (evaluation, loading,
tokenizing, predictions); the first is scaled by the step ratio, the rest by the inference ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench import FastLoop  # noqa: E402  (benchmarks/bench.py: mtlib's training step on fixed batches)
from mtlib.config import DEFAULT_ENCODER, Config  # noqa: E402
from mtlib.evaluate import predict  # noqa: E402
from mtlib.files import atomic_write_text  # noqa: E402
from mtlib.models import build_model, use_bf16  # noqa: E402
from mtlib.pipelines import device_name, encode_splits, load_splits  # noqa: E402
from mtlib.report.paper import BEST  # noqa: E402
from mtlib.report.runs import ablation_runs, log_path, shared_machine, steps  # noqa: E402
from mtlib.report.units import store_key  # noqa: E402
from mtlib.store import STORE, device_key  # noqa: E402


def measure(encoders: list[str], reps: int, steps: int) -> tuple[dict, dict, Config]:
    """({encoder: median step s}, {encoder: median s to predict SST and STS dev}, the config), interleaved."""
    cfg = Config(profile="cpu", progress=False, **BEST)
    raw, device = load_splits(cfg), torch.device("cpu")
    loops, dev = {}, {}
    for name in encoders:
        c = cfg.replace(encoder=name)
        torch.manual_seed(0)
        model, tok = build_model(c.encoder, c.pooling, c.sts_head, c.dropout, c.dropout_impl, c.para_head,
                                 c.sts_features, c.sts_loss)
        data = encode_splits(c, raw, tok)
        loops[name], dev[name] = FastLoop(model, data, c, device), [data["sst"]["dev"], data["sts"]["dev"]]
        loops[name].run(2, "sum", 99)                                    # warm-up
        print(f"{name}: loaded and warmed up", flush=True)
    step: dict[str, list[float]] = {n: [] for n in encoders}
    infer: dict[str, list[float]] = {n: [] for n in encoders}
    for rep in range(reps):
        for name in (encoders if rep % 2 == 0 else encoders[::-1]):
            step[name] += loops[name].run(steps, "sum", seed=300 + rep)[2]
            t0 = time.perf_counter()
            for enc in dev[name]:
                predict(loops[name].model, enc, loops[name].cfg, device)
            infer[name].append(time.perf_counter() - t0)
            loops[name].model.train()
        print(f"rep {rep + 1}/{reps}: " + ", ".join(f"{n} step {statistics.median(step[n]):.2f}s, dev "
                                                    f"{statistics.median(infer[n]):.1f}s" for n in encoders), flush=True)
    return ({n: statistics.median(v) for n, v in step.items()}, {n: statistics.median(v) for n, v in infer.items()},
            cfg)


def projection(runs_dir: Path, r_step: float, r_infer: float) -> list[tuple[int, float, float, float, float]]:
    """(seed, its wall s, its training-step s, the projected wall s, its logged median step s: NaN without a log)
    of each quiet MiniLM run of 07's best row."""
    out = []
    for m in ablation_runs(runs_dir / "07_beyond").get("best", []):
        if shared_machine(m) or m.get("resumed") or not m.get("wall_s"):
            continue
        stage = next(s for s in m["stages"] if s["name"] == m["final_stage"])
        train_s = stage["wall_s"] - sum(stage.get("seconds", {}).values())
        folder = runs_dir / "07_beyond" / "best" / f"seed{m['config']['seed']}"
        median = float(steps(folder)["step_s"].median()) if log_path(folder) else float("nan")
        out.append((m["config"]["seed"], m["wall_s"], train_s, train_s * r_step + (m["wall_s"] - train_s) * r_infer,
                    median))
    return sorted(out)


def markdown(encoder: str, step: dict, infer: dict, cfg: Config, key: str, runs: list, reps: int, steps: int) -> str:
    r_step, r_infer = step[encoder] / step[DEFAULT_ENCODER], infer[encoder] / infer[DEFAULT_ENCODER]
    device = torch.device("cpu")
    arithmetic = "bf16 autocast (native bf16)" if use_bf16(cfg, device) else "fp32 (no native bf16)"
    lines = [f"# {encoder} against {DEFAULT_ENCODER} on `{key}` (generated by `python benchmarks/encoder_cost.py "
             f"--encoder {encoder}`; do not edit)", "",
             f"Measured {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {device_name(device)}, "
             f"{arithmetic}, torch {torch.__version__}. 07's best configuration, batch {cfg.batch_size} per task "
             f"(one step: a batch of each task), max_length {cfg.max_length}; the same examples for both, each "
             f"encoder's own tokenizer; {reps} interleaved repetitions of {steps} steps, the order alternating. "
             "Inference: predicting SST dev and STS dev once a repetition.", "",
             "| encoder | median training step (s) | SST + STS dev predicted (s) |", "|---|---|---|",
             *[f"| {n} | {step[n]:.3f} | {infer[n]:.1f} |" for n in (DEFAULT_ENCODER, encoder)], "",
             f"**A training step takes {r_step:.2f}x as long, inference {r_infer:.2f}x.**", "",
             "## One run of 07's best configuration, projected", ""]
    if not runs:
        return "\n".join(lines + [f"No quiet MiniLM run of 07's best row on `{key}` in the store to project from.", ""])
    lines += [f"Projected, not measured: each quiet MiniLM run of `{STORE}/{key}/07_beyond/best/` split into its "
              f"training steps (x {r_step:.2f}) and the rest (evaluation, loading, predictions; x {r_infer:.2f}). "
              "The runs may have trained in another session on another machine of this device key: their median "
              f"logged step beside this machine's measured MiniLM step ({step[DEFAULT_ENCODER]:.3f} s; a logged step "
              "also logs the gradient cosines) says how far apart the two machines are.", "",
              f"| seed | MiniLM wall (min) | of it training steps (min) | median logged step (s) | {encoder}, "
              "projected (min) |", "|---|---|---|---|---|",
              *[f"| {s} | {w / 60:.1f} | {t / 60:.1f} | {med:.3f} | {p / 60:.0f} |" for s, w, t, p, med in runs], "",
              f"**One {encoder} run of 07's best configuration on `{key}`: about "
              f"{statistics.median(r[3] for r in runs) / 60:.0f} min, projected** (median over "
              f"{len(runs)} seed(s)).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="all-mpnet-base-v2", help="the encoder set against the default")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--store", default=STORE)
    args = ap.parse_args()
    step, infer, cfg = measure([DEFAULT_ENCODER, args.encoder], args.reps, args.steps)
    key = device_key(torch.device("cpu"))
    r_step, r_infer = step[args.encoder] / step[DEFAULT_ENCODER], infer[args.encoder] / infer[DEFAULT_ENCODER]
    text = markdown(args.encoder, step, infer, cfg, key, projection(ROOT / args.store / key, r_step, r_infer),
                    args.reps, args.steps)
    path = ROOT / "reports" / "encoder-cost" / f"{store_key(key, args.encoder)}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    print(text)


if __name__ == "__main__":
    main()
