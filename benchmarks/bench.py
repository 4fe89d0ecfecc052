"""Training and evaluation speed, measured in ONE process, interleaved, on the embedded encoder and real data.

    python benchmarks/bench.py [--reps 5] [--steps 8]        (or: make bench)
    python benchmarks/bench.py --methods-only [--method-reps 3] [--steps 8]   (section 6 only, printed)
    python benchmarks/bench.py --compile-only [--reps 5] [--steps 8]          (torch.compile -> reports/compile.md)

1. multitask step throughput (real tokens/s): a plain fp32 Hugging Face-style loop vs mtlib's fast path;
2. PCGrad step time / summed-loss step time, both on mtlib's fast path, on identical batches;
3. evaluation throughput (sentences/s) on the three dev sets, plain vs mtlib;
4. whole runs and the fast path's parity: a pointer to reports/profile.md (`make profile` reads them from the runs);
5. the fast path with one piece off at a time;
6. every `combine` method's step time / the summed step, on identical batches.
Writes reports/performance.md. Medians over repetitions; the ratios are the result, not the absolute times.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from unittest import mock
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mtlib import data as D  # noqa: E402
from mtlib import surgery  # noqa: E402
from mtlib import train as mtlib_train  # noqa: E402
from mtlib.config import Config  # noqa: E402
from mtlib.evaluate import predict  # noqa: E402
from mtlib.models import MultitaskModel, build_model, use_bf16  # noqa: E402
from mtlib.pipelines import device_name, encode_splits, load_splits  # noqa: E402
from mtlib.train import TaskGrads, train_step  # noqa: E402


# ------------------------------------------------------------------ the plain loop
def plain_batches(splits: dict[str, D.Split], batch_size: int, seed: int):
    """Random batches of raw text, as a DataLoader with shuffle=True would give."""
    rng = np.random.default_rng(seed)
    orders = {t: rng.permutation(len(s)) for t, s in splits.items()}
    i = 0
    while True:
        yield {t: [s.texts[r] for r in orders[t][(i * batch_size) % len(s):][:batch_size]] for t, s in splits.items()}, \
              {t: s.labels[orders[t][(i * batch_size) % len(s):][:batch_size]] for t, s in splits.items()}
        i += 1


def plain_step(model: MultitaskModel, tok, texts, labels, optimizer, max_length: int) -> int:
    """Tokenize on the fly, pad to the batch's longest, fp32, two encoder calls per pair, summed loss."""
    optimizer.zero_grad()
    total, tokens = 0.0, 0
    for task in D.TASKS:
        cols = list(zip(*texts[task]))
        encs = [tok(list(c), padding=True, truncation=True, max_length=max_length, return_tensors="pt") for c in cols]
        tokens += sum(int(e["attention_mask"].sum()) for e in encs)
        embs = [model.embed(e["input_ids"], e["attention_mask"]) for e in encs]
        if task == "sst":
            out = model.heads["sst"](embs[0])
        elif task == "sts" and model.sts_head_kind == "cosine":
            out = model.heads["sts"](*embs)
        else:
            out = model.heads[task](torch.cat(embs, -1)).squeeze(-1)
        total = total + model.loss(task, out, torch.as_tensor(labels[task]))
    total.backward()
    optimizer.step()
    return tokens


@torch.no_grad()
def plain_eval(model: MultitaskModel, tok, split: D.Split, batch_size: int, max_length: int) -> None:
    model.eval()
    for i in range(0, len(split), batch_size):
        cols = list(zip(*split.texts[i: i + batch_size]))
        for c in cols:
            e = tok(list(c), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            model.embed(e["input_ids"], e["attention_mask"])


# ------------------------------------------------------------------ mtlib's fast path
class FastLoop:
    def __init__(self, model, data, cfg, device):
        self.model, self.data, self.cfg, self.device = model, data, cfg, device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
        self.grads = TaskGrads.for_model(model, len(D.TASKS))
        self.bf16 = use_bf16(cfg, device)
        self.embedding = self.grads.embedding
        self.dense_grads = TaskGrads(model.shared_parameters(), len(D.TASKS), embedding=None)

    def run(self, steps: int, combine: str, seed: int, *, dense_embedding: bool = False, default_attention: bool = False,
            fp32: bool = False, bucket: bool = True) -> tuple[float, int, list[float]]:
        """Run `steps` steps on the batches of `seed` (same seed -> same batches); (seconds, tokens, step times).
        The keyword switches turn one piece of the fast path off, for the ablation table."""
        cfg = self.cfg.replace(combine=combine)
        samplers = {t: D.TaskSampler(self.data[t]["train"], cfg.batch_size, [seed, i], bucket=bucket)
                    for i, t in enumerate(D.TASKS)}
        tokens = sum(int(sum(len(s) for r in rows for s in self.data[t]["train"].tokens[r]))
                     for t in D.TASKS for rows in _peek(samplers[t], steps))
        gen = torch.Generator().manual_seed(seed)
        grads = self.dense_grads if dense_embedding else self.grads
        self.embedding.sparse = not dense_embedding
        attention = mock.patch.object(mtlib_train, "training_attention", lambda device: contextlib.nullcontext()) \
            if default_attention else contextlib.nullcontext()
        self.model.train()
        start, times = time.perf_counter(), []
        with attention:
            for step in range(steps):
                rec = train_step(self.model, self.data, cfg, D.TASKS, samplers, self.optimizer, grads, gen,
                                 self.device, self.bf16 and not fp32, "bench", 1, step, None)
                times.append(rec["step_s"])
        self.embedding.sparse = True
        return time.perf_counter() - start, tokens, times


def set_dropout(model: torch.nn.Module, p: float) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p


# One piece of the fast path off at a time: (FastLoop to use, run() switches).
ABLATIONS = {
    "fast path, all on": ("fast", {}),
    "dense word-embedding gradients (in the flat buffer)": ("fast", {"dense_embedding": True}),
    "`nn.Dropout` (dropout_impl=torch)": ("torch_dropout", {}),
    "PyTorch's own attention-kernel choice": ("fast", {"default_attention": True}),
    "fp32 (no bf16 autocast)": ("fast", {"fp32": True}),
    "no length bucketing": ("fast", {"bucket": False}),
}


def ablation(loops: dict[str, FastLoop], reps: int, steps: int) -> dict[tuple[str, float], float]:
    """Median tokens/s per (ablation, dropout), interleaved over repetitions, identical batches for all."""
    result: dict[tuple[str, float], list[float]] = {}
    for rep in range(reps):
        for p in (0.1, 0.0):
            for name, (loop, switches) in ABLATIONS.items():
                set_dropout(loops[loop].model, p)
                seconds, tokens, _ = loops[loop].run(steps, "sum", 100 + rep, **switches)
                result.setdefault((name, p), []).append(tokens / seconds)
        print(f"ablation rep {rep + 1}/{reps}", flush=True)
    for loop in loops.values():
        set_dropout(loop.model, loop.cfg.dropout)
    return {k: statistics.median(v) for k, v in result.items()}


def method_costs(fast: FastLoop, reps: int, steps: int) -> dict[str, float]:
    """Median step time (s) of every combine method, on the fast path and identical batches; one process, the
    methods' order rotated every repetition so that no method always runs first."""
    times: dict[str, list[float]] = {m: [] for m in surgery.METHODS}
    for rep in range(reps):
        order = surgery.METHODS[rep % len(surgery.METHODS):] + surgery.METHODS[:rep % len(surgery.METHODS)]
        for method in order:
            times[method] += fast.run(steps, method, seed=200 + rep)[2]
        print(f"methods rep {rep + 1}/{reps}: " + ", ".join(f"{m} {statistics.median(times[m]):.3f}s" for m in order),
              flush=True)
    return {m: statistics.median(v) for m, v in times.items()}


def methods_section(costs: dict[str, float], reps: int, steps: int) -> list[str]:
    return ["## 6. Cost of every `combine` method (fast path, identical batches)", "",
            f"Median step time over {reps} interleaved repetitions of {steps} steps (methods in rotated order), and "
            "its ratio to the summed step. Every method builds the same 3 x 3 fp64 Gram matrix and does the same "
            "one weighted sum; only the T x T weights differ (torchjd's weightings for all but sum and pcgrad). "
            "Goal: at most 1.10x.", "",
            "| combine | median step (s) | / sum |", "|---|---|---|",
            *[f"| {m} | {t:.3f} | {t / costs['sum']:.3f} |" for m, t in costs.items()], ""]


def compile_check(cfg: Config, data, device, reps: int, steps: int) -> dict:
    """torch.compile on the encoder (issue 9: kept only if it wins on these shapes), measured on 07's best
    configuration: two copies of the same model, one with `encoder.compile(dynamic=True)` (in place, so parameter
    names and the flat gradient buffer stay as they are; dynamic, since length bucketing gives every batch its own
    sequence length), the same batches for both, interleaved, the order alternating each repetition."""
    models = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        models[name], _ = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, cfg.dropout_impl, cfg.para_head)
    models["compiled"].load_state_dict(models["eager"].state_dict())
    # an empty inductor cache: the compile time a first run pays, not one warmed by an earlier measurement
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mtlib-inductor-")
    models["compiled"].encoder.compile(dynamic=True)
    loops = {name: FastLoop(m, data, cfg, device) for name, m in models.items()}
    first = {}
    for name, loop in loops.items():                        # the first steps pay for compilation
        t0 = time.perf_counter()
        loop.run(steps, "sum", 99)
        first[name] = time.perf_counter() - t0
        print(f"{name}: first {steps} steps {first[name]:.1f}s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for rep in range(reps):
        for name in (("eager", "compiled") if rep % 2 == 0 else ("compiled", "eager")):
            times[name] += loops[name].run(steps, "sum", seed=300 + rep)[2]
        print(f"compile rep {rep + 1}/{reps}: " + ", ".join(f"{k} {statistics.median(v):.3f}s" for k, v in times.items()),
              flush=True)
    return {"first": first, "median": {k: statistics.median(v) for k, v in times.items()}, "n": len(times["eager"])}


def compile_markdown(r: dict, cfg: Config, device, reps: int, steps: int) -> str:
    """The verdict is the break-even: the steps after which the per-step saving repays the extra time of the first
    steps (compilation), against the steps of one run of the profile."""
    ratio = r["median"]["compiled"] / r["median"]["eager"]
    saving = r["median"]["eager"] - r["median"]["compiled"]
    extra = r["first"]["compiled"] - r["first"]["eager"]
    run_steps = cfg.epochs * cfg.steps_per_epoch
    even = extra / saving if saving > 0 else float("inf")
    verdict = (f"it repays its compilation after {even:,.0f} steps, within one `{cfg.profile}` run ({run_steps} steps): "
               "worth a `compile` knob" if even <= run_steps else
               f"it would repay its compilation only after {even:,.0f} steps, more than one `{cfg.profile}` run "
               f"({run_steps} steps): mtlib does not compile" if saving > 0 else "it is slower: mtlib does not compile")
    return "\n".join([
        "# torch.compile on the encoder (generated by `python benchmarks/bench.py --compile-only`; do not edit)", "",
        f"Measured {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {device_name(device)}, torch "
        f"{torch.__version__}; 07's best configuration (para_head={cfg.para_head}, sts_head={cfg.sts_head}, dropout "
        f"{cfg.dropout}, combine=sum), batch {cfg.batch_size} per task, max_length {cfg.max_length}, length-bucketed. "
        f"Two copies of one model in one process, `model.encoder.compile(dynamic=True)` on one; identical batches; "
        f"{reps} interleaved repetitions of {steps} steps, the order alternating; median step time over "
        f"{r['n']} steps each.", "",
        "| encoder | first steps (s, includes compilation) | median step (s) | / eager |", "|---|---|---|---|",
        *[f"| {k} | {r['first'][k]:.1f} | {r['median'][k]:.3f} | {r['median'][k] / r['median']['eager']:.3f} |"
          for k in ("eager", "compiled")], "",
        f"**Compiled / eager = {ratio:.3f} a step; {verdict}.** The first steps of the compiled copy ran with an "
        "empty inductor cache (a first run's cost).", ""])


def _peek(sampler: D.TaskSampler, n: int) -> list[np.ndarray]:
    """The next n batches of a sampler without consuming them."""
    state = sampler.state_dict()
    rows = [next(sampler) for _ in range(n)]
    sampler.load_state_dict(state)
    return rows


# ------------------------------------------------------------------ main
EVAL_FAST = "mtlib (inference_mode, bf16 where native, length-sorted, batch 256)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--ablation-reps", type=int, default=3)
    ap.add_argument("--method-reps", type=int, default=3, help="repetitions for section 6 (every combine method)")
    ap.add_argument("--methods-only", action="store_true", help="measure section 6 only and print it (writes nothing)")
    ap.add_argument("--compile-only", action="store_true",
                    help="measure torch.compile on the encoder only -> reports/compile.md")
    ap.add_argument("--out", default="reports/performance.md")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.compile_only:
        from mtlib.files import atomic_write_text
        cfg = Config(profile="cpu", dropout=0.0, sts_head="cosine", para_head="sbert", progress=False)
        device = torch.device("cpu")
        _, tok = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, cfg.dropout_impl, cfg.para_head)
        data = encode_splits(cfg, load_splits(cfg), tok)
        text = compile_markdown(compile_check(cfg, data, device, args.reps, args.steps), cfg, device, args.reps,
                                args.steps)
        atomic_write_text(ROOT / "reports/compile.md", text)
        print(text)
        return
    cfg = Config(profile="cpu", dropout=0.1, sts_head="mlp", progress=False)
    device = torch.device("cpu")
    fast_model, tok = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, cfg.dropout_impl)
    plain_model, _ = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, "torch")
    plain_model.load_state_dict(fast_model.state_dict())
    raw = load_splits(cfg)                       # read and validated once, for both loops
    data = encode_splits(cfg, raw, tok)
    splits = {t: raw[t]["train"] for t in D.TASKS}
    dev_splits = {t: raw[t]["dev"] for t in D.TASKS}
    fast = FastLoop(fast_model, data, cfg, device)
    if args.methods_only:
        fast.run(2, "sum", 99)                  # warm-up
        print("\n".join(methods_section(method_costs(fast, args.method_reps, args.steps), args.method_reps, args.steps)))
        return
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=cfg.lr)
    plain_iter = plain_batches(splits, cfg.batch_size, 0)

    fast.run(2, "sum", 99)                      # warm-up both paths
    plain_model.train()
    for _ in range(2):
        plain_step(plain_model, tok, *next(plain_iter), plain_opt, cfg.max_length)

    tput = {"plain fp32 loop": [], "mtlib fast path (sum)": []}
    step_time = {"sum": [], "pcgrad": []}
    for rep in range(args.reps):
        plain_model.train()
        t0, tokens = time.perf_counter(), 0
        for _ in range(args.steps):
            tokens += plain_step(plain_model, tok, *next(plain_iter), plain_opt, cfg.max_length)
        tput["plain fp32 loop"].append(tokens / (time.perf_counter() - t0))
        for combine in (("sum", "pcgrad") if rep % 2 == 0 else ("pcgrad", "sum")):
            seconds, tokens, times = fast.run(args.steps, combine, seed=rep)     # same batches for both
            step_time[combine].append(statistics.median(times))
            if combine == "sum":
                tput["mtlib fast path (sum)"].append(tokens / seconds)
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:.0f} tok/s" for k, v in tput.items())
              + f"; step sum {step_time['sum'][-1]:.3f}s pcgrad {step_time['pcgrad'][-1]:.3f}s", flush=True)

    evals = {"plain (fp32, no_grad, batch 16, file order)": [], EVAL_FAST: []}
    n_sentences = sum(len(s) * len(s.texts[0]) for s in dev_splits.values())
    for _ in range(max(2, args.reps // 2)):
        t0 = time.perf_counter()
        for s in dev_splits.values():
            plain_eval(plain_model, tok, s, 16, cfg.max_length)
        evals["plain (fp32, no_grad, batch 16, file order)"].append(n_sentences / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for t in D.TASKS:
            predict(fast_model, data[t]["dev"], cfg, device)
        evals[EVAL_FAST].append(n_sentences / (time.perf_counter() - t0))

    costs = method_costs(fast, args.method_reps, args.steps) if args.method_reps else {}

    abl = {}
    if args.ablation_reps:
        torch_dropout_model, _ = build_model(cfg.encoder, cfg.pooling, cfg.sts_head, cfg.dropout, "torch")
        torch_dropout_model.load_state_dict(fast_model.state_dict())
        loops = {"fast": fast, "torch_dropout": FastLoop(torch_dropout_model, data, cfg, device)}
        loops["torch_dropout"].run(2, "sum", 99)               # warm-up
        abl = ablation(loops, args.ablation_reps, args.steps)

    med = {k: statistics.median(v) for k, v in tput.items()}
    speedup = med["mtlib fast path (sum)"] / med["plain fp32 loop"]
    ratio = statistics.median(step_time["pcgrad"]) / statistics.median(step_time["sum"])
    eval_med = {k: statistics.median(v) for k, v in evals.items()}
    eval_speedup = list(eval_med.values())[1] / list(eval_med.values())[0]
    print(f"multitask throughput: fast / plain = {speedup:.2f}x")
    print(f"PCGrad step / summed step = {ratio:.3f}")
    print(f"evaluation: mtlib / plain = {eval_speedup:.2f}x")
    write_report(Path(args.out if Path(args.out).is_absolute() else ROOT / args.out), args, cfg, device, med, speedup,
                 step_time, ratio, eval_med, eval_speedup, n_sentences, abl, costs)


def write_report(path, args, cfg, device, med, speedup, step_time, ratio, eval_med, eval_speedup, n_sentences, abl,
                 costs):
    from mtlib.files import atomic_write_text
    from mtlib.pipelines import _version
    worst, slowest = max((t / costs["sum"], m) for m, t in costs.items()) if costs else (None, None)
    from mtlib.report import cost
    seed = cost.seed_cost()                    # what the runs themselves measured (reports/profile.md)
    novel = seed[seed["run"] == "Novel: CS + GS, no dropout"].iloc[0]
    measured = int(seed["from"].str.startswith("measured").sum())
    # the runs' machine, which may not be this benchmark's (a run's time is measured where it ran)
    run_devices = ("; ".join(sorted({x for v in seed["device"].dropna() for x in v.split("; ")}))
                   if "device" in seed else "")
    lines = [
        "# Performance (generated by `make bench`; do not edit)", "",
        f"Measured {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {device_name(device)}; torch "
        f"{torch.__version__}, transformers {_version('transformers')}, Python {platform.python_version()}. "
        f"Encoder {cfg.encoder}, real CS224N train/dev data, batch {cfg.batch_size} per task, max_length "
        f"{cfg.max_length}, bf16 autocast {'on' if use_bf16(cfg, device) else 'off (no native bf16)'} in the fast path. "
        f"One process, interleaved, {args.reps} repetitions of {args.steps} steps; medians.", "",
        "| target | measured | met |", "|---|---|---|",
        f"| multitask step throughput >= 2.5x the plain fp32 loop | {speedup:.2f}x | {'yes' if speedup >= 2.5 else 'no'} |",
        f"| PCGrad step <= 1.05x the summed step | {ratio:.3f}x | {'yes' if ratio <= 1.05 else 'no'} |",
        *([f"| every `combine` method <= 1.10x the summed step (section 6) | at most {worst:.3f}x ({slowest}) | "
           f"{'yes' if worst <= 1.10 else 'no'} |"] if costs else []),
        *([f"| `05_novel -p dropout 0` on the CPU profile <= 12 min (reports/profile.md) | {novel['wall_s'] / 60:.1f} min; "
           f"{novel['from']}, on {novel['device']} | {'yes' if novel['wall_s'] <= 720 else 'no'} |"]
          if not math.isnan(novel["wall_s"]) else []),
        f"| one seed of `make report` <= 40 min (reports/profile.md) | {seed['wall_s'].sum() / 60:.0f} min; {measured} of "
        f"{len(seed)} runs measured (on {run_devices or 'no machine yet'}), the rest projected | "
        f"{'yes' if seed['wall_s'].sum() <= 2400 else 'no'} |", "",
        "## 1. Multitask training step throughput (real, non-pad tokens per second)", "",
        "| loop | tokens/s |", "|---|---|",
        *[f"| {k} | {v:,.0f} |" for k, v in med.items()], "",
        f"**Speed-up: {speedup:.2f}x.** The plain loop is written as a straightforward Hugging Face fine-tuning "
        "loop: random batches, tokenized on the fly and padded to the batch's longest sentence, fp32, one encoder "
        "call per sentence column, `nn.Dropout`, the summed loss, one backward, `torch.optim.AdamW` with its "
        "defaults. The fast path tokenizes once, buckets batches by length, runs both sentences of a pair in one "
        "encoder call, runs the three forwards in one bf16 autocast region where the CPU has native bf16 (fp32 "
        "master weights, each weight cast once a step; "
        f"{'on' if use_bf16(cfg, device) else 'off here: this CPU has none'}), draws dropout masks from random bits "
        "(`models.FastDropout`, dropout_impl=fast), copies each "
        "task's dense gradient into its row of a flat buffer while the word-embedding matrix backpropagates only "
        "its touched rows (sparse), and uses fused AdamW.", "",
        "## 2. PCGrad cost (fast path, identical batches)", "",
        "| combine | median step (s) |", "|---|---|",
        *[f"| {k} | {statistics.median(v):.3f} |" for k, v in step_time.items()], "",
        f"**PCGrad step / summed step = {ratio:.3f}.** Both compute the three task gradients the same way and both "
        "build the 3 x 3 Gram matrix (the summed step logs the gradient cosines from it too); PCGrad changes only "
        "the T x T weights of the one weighted sum.", "",
        "## 3. Evaluation throughput (three dev sets, sentences/s)", "",
        "| evaluation | sentences/s |", "|---|---|",
        *[f"| {k} | {v:,.0f} |" for k, v in eval_med.items()], "",
        f"**Speed-up: {eval_speedup:.2f}x** over {n_sentences:,} sentences.", "",
        "## 4. Whole runs and the fast path's parity", "",
        "What whole runs cost (the `novel` pipeline, one seed of `make report`) and whether the fast path changes "
        "results (`make parity`) are read from the runs themselves: `reports/profile.md` (`make profile`).", "",
    ]
    if abl:
        base = {p: abl[("fast path, all on", p)] for p in (0.1, 0.0)}
        lines += ["## 5. What each piece buys (fast path with one piece off; summed step, batch 16 per task)", "",
                  f"Tokens/s, medians of {args.ablation_reps} interleaved repetitions of {args.steps} steps on identical "
                  "batches, and the ratio to the fast path with everything on (below 1: that piece makes the step "
                  "faster). Dropout 0 is the report's best setting; at dropout 0 the dropout implementation does not "
                  "matter, and at dropout > 0 PyTorch itself already picks the math attention backend.", "",
                  "| variant | dropout 0.1: tokens/s | ratio | dropout 0: tokens/s | ratio |", "|---|---|---|---|---|"]
        for name in ABLATIONS:
            lines.append(f"| {name} | {abl[(name, 0.1)]:,.0f} | {abl[(name, 0.1)] / base[0.1]:.2f} | "
                         f"{abl[(name, 0.0)]:,.0f} | {abl[(name, 0.0)] / base[0.0]:.2f} |")
        lines.append("")
    if costs:
        lines += methods_section(costs, args.method_reps, args.steps)
    atomic_write_text(path, "\n".join(lines))
    print(path)


if __name__ == "__main__":
    main()
