"""Ray as the executor of `python -m mtlib report --execute` and `python -m mtlib explore` (`--workers N`,
`--address ADDR`; docs/cluster.md). Imported only for those options: `--workers 1`, the default, never imports Ray.

Each unit (mtlib.report.units) becomes one Ray task that runs the unit's own `python -m mtlib ...` command in a
subprocess, asking Ray for what it needs: 1/N of a GPU (N = --workers, so several small runs share one card), or
1/N of a node's CPU cores, which is also the command's torch thread count and so part of its device key
(`amd-epyc-fp32-1t` with WORKERS=2 on a 2-core machine). Ray does the rest: `max_retries` retries a task whose
worker died (SIGKILL, out of memory, a lost node), and the retry goes on from the run's last checkpoint through
mtlib's own resume (`resume=true`); an error of the unit's own (a bad config, missing data) is not retried
(`retry_exceptions` lists only UnitKilled); a unit that reads another's runs gets that unit's result as an
argument, so Ray starts it once the other has ended; `ray.cancel` stops them all on Ctrl-C.

Device kinds: the units of one group (units.groups: the seeds of a row, and what they read) run on one kind, Ray's
accelerator type on GPUs (`accelerator_type=`) or, on CPUs, a custom resource `mtlib-cpu-<CPU model>-<bf16|fp32>`
(`python -m mtlib.report.cluster resources` prints it for `ray start --resources`; a local Ray gets it here).

No shared file system (`--no-shared-fs`): a task trains in a scratch folder of its worker, into which it unpacks
the finished runs it needs, and returns the files it wrote (no checkpoints) as a tarball that the driver writes
into the run store; its checkpoints stay in the scratch folder, which a retry on the same node goes on from.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..notebook import ROOT, shown
from .units import Unit, after, fill, groups, stages

CPU_KIND = "mtlib-cpu-"       # the custom resource that names a CPU node's kind: mtlib-cpu-<CPU model slug>-<bf16|fp32>
RETRIES = 3                   # retries of a task whose worker or command was killed; an error of its own gets none
SCRATCH = "mtlib-ray"         # <worker's temp folder>/mtlib-ray/<unit id>/: a unit's log (and store, --no-shared-fs)
INSTALL = "pip install -e '.[ray]' (or make setup)"
# Runs the unit's command so that it dies with the Ray worker that started it (Linux: PR_SET_PDEATHSIG). Ray kills
# a dead or cancelled task's worker, not the processes it started; a command left running would go on writing into
# the run folder that the retry resumes. (A notebook's kernel, papermill's child, exits by itself within a second
# of its parent: ipykernel's parent poller.) A launcher rather than preexec_fn: the worker has threads.
LAUNCH = ("import ctypes, os, signal, sys\n"
          "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\nexcept (AttributeError, OSError):\n    pass\n"
          "if os.getppid() != int(sys.argv[1]):\n    sys.exit(137)\n"
          "os.execv(sys.argv[2], sys.argv[2:])")


class ClusterError(ValueError):
    """Ray is missing, cannot be reached, offers no device kind, or some units failed: one line with the fix."""


class UnitFailed(Exception):
    """A unit's command failed of its own accord (its exit status: a bad config, missing data): not retried."""

    def __init__(self, name: str, error: str, log: str = "", attempt: int = 1):
        super().__init__(name, error, log, attempt)
        self.name, self.error, self.log, self.attempt = name, error, log, attempt

    def __str__(self) -> str:
        return f"{self.name}: {self.error}"


class UnitKilled(UnitFailed):
    """A unit's command died of a signal while its worker lived (the kernel's OOM killer, say): retried like a dead
    worker."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--workers above 1 and --address run the units on Ray, which is not installed: "
                           f"{INSTALL}; or run them here one by one with --workers 1") from None
    return ray


def cpu_kind() -> str:
    """This machine's CPU kind as a Ray resource name: the device key without its thread count."""
    import torch
    from ..store import device_key
    return CPU_KIND + device_key(torch.device("cpu"), threads=1).rsplit("-", 1)[0]


def device_key_here(config: dict, threads: int, gpu: bool) -> str:
    """The store folder a unit of `config` trains into here, with `threads` torch threads: its device key
    (mtlib.store), with the encoder after a `+` where it is not the default (units.store_key)."""
    from ..config import Config
    from ..models import pick_device
    from ..store import device_key
    from .units import store_key
    device = pick_device(Config.from_dict({**config, **({} if gpu else {"device": "cpu"})}))
    return store_key(device_key(device, threads), config.get("encoder"))


@dataclass
class Kind:
    name: str             # Ray's accelerator type ("H100") or a CPU kind resource ("mtlib-cpu-amd-epyc-fp32")
    options: dict         # the Ray task options that put a task on this kind, with its share of a node
    threads: int          # torch threads of each task
    slots: int            # tasks at once over the whole cluster
    key: str = ""         # the device key its tasks train under (asked of one of its nodes)


def kinds(nodes: list[dict], workers: int, gpu: bool) -> tuple[list[Kind], int]:
    """The device kinds among Ray's `nodes` (ray.nodes()), and how many alive nodes have none (they get no task)."""
    found: dict[str, list[dict]] = {}
    unnamed = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        r = node.get("Resources", {})
        if gpu:
            names = [k.split(":", 1)[1] for k in r if k.startswith("accelerator_type:")] if r.get("GPU") else []
        else:
            names = [k for k in r if k.startswith(CPU_KIND)]
        if names:
            found.setdefault(sorted(names)[0], []).append(r)
        else:
            unnamed += 1
    out = []
    for name, rs in sorted(found.items()):
        if gpu:
            threads = max(1, min(int(r.get("CPU", 1) // r["GPU"]) for r in rs) // workers)
            options = {"num_gpus": round(1 / workers, 4), "num_cpus": threads, "accelerator_type": name}
            slots = sum(int(r["GPU"]) * workers for r in rs)
        else:
            threads = max(1, min(int(r.get("CPU", 1)) for r in rs) // workers)
            options = {"num_cpus": threads, "resources": {name: 0.001}}
            slots = sum(max(1, int(r.get("CPU", 1)) // threads) for r in rs)
        out.append(Kind(name, options, threads, slots))
    return out, unnamed


def start_local(ray, cpus: int, tries: int = 3) -> None:
    """A new Ray inside this process, with this machine's device kind. Ray waits a fixed 30 s for its raylet to
    register (ray/_private/node.py, no setting), which a loaded 2-core machine can exceed (seen here beside a training
    run and the test suite): such a start is shut down and tried again, `tries` times in all."""
    for attempt in range(1, tries + 1):
        try:
            ray.init(address="local", num_cpus=cpus, resources={cpu_kind(): 10_000}, include_dashboard=False,
                     log_to_driver=False)
            return
        except Exception as err:        # Ray raises a bare Exception for this one
            if "timed out during startup" not in str(err):
                raise
            ray.shutdown()
            if attempt == tries:
                raise ClusterError(f"Ray did not start on this machine in {tries} tries ({err}); retry when the "
                                   "machine is less loaded, or run with --workers 1") from None


class Cluster:
    """Ray, for running units: started inside this process (no address; stopped again by `close`) or the cluster
    at `address`; a Ray already initialised in this process (a test's) is used as it is."""

    def __init__(self, workers: int, address: str | None, config: dict):
        ray = self.ray = _ray()
        self.workers, self.address, self.config = workers, address, config
        self.started = not ray.is_initialized()
        if self.started:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:        # "local": a new Ray here, whatever RAY_ADDRESS says
                    start_local(ray, os.cpu_count() or 1)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ClusterError(f"cannot start or reach Ray at {address or 'this machine'} "
                                   f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                                   "start a cluster with `ray start --head` (docs/cluster.md)") from None
        self.gpu = config.get("device") != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        self.kinds, unnamed = kinds(ray.nodes(), workers, self.gpu)
        if not self.kinds:
            self.close()
            raise ClusterError(
                f"the Ray cluster at {address or 'this machine'} has no node of a known device kind: "
                + ("its GPUs report no accelerator type" if self.gpu else
                   "start each node with `ray start ... --resources \"$(python -m mtlib.report.cluster resources)\"`")
                + " (docs/cluster.md)")
        probe = ray.remote(device_key_here)
        keys = ray.get([probe.options(**k.options, max_retries=0).remote(config, k.threads, self.gpu)
                        for k in self.kinds])
        for kind, key in zip(self.kinds, keys):
            kind.key = key
        print(f"ray: {address or 'local'}, --workers {workers}: " + "; ".join(
            f"{k.name.removeprefix(CPU_KIND)} as {k.key}, {k.slots} task(s) at once, "
            f"{k.options.get('num_gpus', 0) or k.threads} {'GPU' if self.gpu else 'core(s)'} each" for k in self.kinds)
              + (f"; {unnamed} node(s) of no known kind get no task" if unnamed else ""), flush=True)

    @property
    def key(self) -> str:
        """The device key of the kind with the most room: what a unit list is planned with."""
        return max(self.kinds, key=lambda k: k.slots).key

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, units: list[Unit], store: str | Path, shared_fs: bool = True, logs: str | Path | None = None
            ) -> list[dict]:
        """Run `units` as Ray tasks, each group on one kind; print one line per task as it ends, then a summary.
        Returns one {name, status, key, attempt, error} per unit; ClusterError if any failed. Ctrl-C cancels the
        tasks left (a finished run is whole in the store; the next call picks up the others)."""
        ray, start = self.ray, time.time()
        root = Path(store).resolve()
        where = shown(root)                  # as a sequential run writes it: from the repository root where inside
        logs = Path(logs) if logs else Path(tempfile.mkdtemp(prefix="mtlib-ray-logs-"))
        logs.mkdir(parents=True, exist_ok=True)
        group, deps = groups(units), after(units)
        kind_of = self._assign(group)
        attempts = ray.remote(num_cpus=0)(_Attempts).remote()
        task = ray.remote(_task)
        refs: dict[int, object] = {}
        for wave in stages(units):
            for i in wave:
                unit, kind = units[i], kind_of[group[i]]
                spec = {"name": unit.name, "argv": list(unit.argv), "store": where, "key": kind.key,
                        "threads": kind.threads, "gpu": self.gpu, "config": self.config, "scratch": not shared_fs,
                        "id": hashlib.sha1(f"{root}\n{unit.name}".encode()).hexdigest()[:16]}
                inputs = None if shared_fs else _pack_runs(root, kind.key, unit.outputs + unit.needs)
                refs[i] = task.options(**kind.options, name=unit.name, max_retries=RETRIES,
                                       retry_exceptions=[UnitKilled]).remote(spec, inputs, attempts,
                                                                             *[refs[j] for j in sorted(deps[i])])
        index = {ref: i for i, ref in refs.items()}
        pending, results = list(index), []
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    results.append(self._ended(ref, units[index[ref]], len(results) + 1, len(units), root, logs))
        except KeyboardInterrupt:     # what has finished is written first (without a shared store: from its result)
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0) if pending else ([], [])
            for ref in ready:
                results.append(self._ended(ref, units[index[ref]], len(results) + 1, len(units), root, logs))
            for ref in pending:
                ray.cancel(ref, force=True)
            print(f"ray: interrupted: {len(results)} of {len(units)} unit(s) ended, {len(pending)} cancelled; a "
                  "finished run is whole in the store, and the same command again picks up the others", flush=True)
            raise
        finally:
            ray.kill(attempts)
        failed = [r for r in results if r["status"] == "failed"]
        retried = sum(r["attempt"] > 1 for r in results)
        print(f"ray: {len(results) - len(failed)} done, {len(failed)} failed, {retried} retried, in "
              f"{(time.time() - start) / 60:.1f} min; each unit's log: {logs}/", flush=True)
        if failed:
            raise ClusterError(f"{len(failed)} of {len(units)} unit(s) failed: {', '.join(r['name'] for r in failed)}; "
                               "each one's error is above (its log in " + str(logs) + "); fix it and run the same "
                               "command again: the finished runs are loaded, not trained again")
        return results

    def _assign(self, group: list[int]) -> dict[int, Kind]:
        """Each group to one kind, the largest groups first, each where it fills the fewest of the kind's slots."""
        sizes, load, kind_of = Counter(group), Counter(), {}
        for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
            kind = min(self.kinds, key=lambda k: ((load[k.name] + sizes[g]) / k.slots, k.name))
            load[kind.name] += sizes[g]
            kind_of[g] = kind
        return kind_of

    def _ended(self, ref, unit: Unit, k: int, n: int, root: Path, logs: Path) -> dict:
        """The line of a task that ended; the run it returned written into the store (--no-shared-fs)."""
        ray = self.ray
        log = logs / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', unit.name)}.log"
        try:
            r = ray.get(ref)
        except UnitFailed as err:
            cause = getattr(err, "cause", err)
            if cause.name != unit.name:
                line = f"skipped {unit.name}: it needs {cause.name}, which failed"
                return _line(k, n, line, {"name": unit.name, "status": "failed", "attempt": 0, "error": line})
            log.write_text(cause.log)
            return _line(k, n, f"FAILED {unit.name} (attempt {cause.attempt}): {cause.error}; log: {log}",
                         {"name": unit.name, "status": "failed", "attempt": cause.attempt, "error": cause.error})
        except ray.exceptions.RayError as err:
            error = (str(err).strip().splitlines() or [type(err).__name__])[0]
            return _line(k, n, f"FAILED {unit.name}: {type(err).__name__}: {error}",
                         {"name": unit.name, "status": "failed", "attempt": RETRIES + 1, "error": error})
        log.write_text(r["log"])
        if r["files"]:
            _unpack(r["files"], root)
        again = f", attempt {r['attempt']}" if r["attempt"] > 1 else ""
        return _line(k, n, f"done   {unit.name} as {r['key']} in {r['seconds'] / 60:.1f} min{again}",
                     {"name": unit.name, "status": "done", "attempt": r["attempt"], "key": r["key"]})


def _line(k: int, n: int, text: str, result: dict) -> dict:
    print(f"ray [{k}/{n}] {text}", flush=True)
    return result


class _Attempts:
    """Counts each unit's attempts (a Ray actor): Ray retries a task without telling it which try it is."""

    def __init__(self):
        self.counts: Counter = Counter()

    def start(self, name: str) -> int:
        self.counts[name] += 1
        return self.counts[name]


def _task(spec: dict, inputs: bytes | None, attempts, *needed: dict) -> dict:
    """One unit, on a worker: its command in a subprocess with the kind's thread count; its result, or UnitFailed."""
    import ray
    attempt, start, name = ray.get(attempts.start.remote(spec["name"])), time.time(), spec["name"]
    folder = Path(tempfile.gettempdir()) / SCRATCH / spec["id"]
    folder.mkdir(parents=True, exist_ok=True)
    key = device_key_here(spec["config"], spec["threads"], spec["gpu"])
    if key != spec["key"]:
        raise UnitFailed(name, f"its node trains as {key}, and its row as {spec['key']}: the nodes of one kind "
                         "must be alike (docs/cluster.md)", attempt=attempt)
    store, before = spec["store"], {}
    if spec["scratch"]:      # what the driver has already (unpacked here now) is not sent back unless it changes;
        store = str(folder / "store")     # anything else is: left by an earlier attempt, a finished run too
        unpacked = {n for blob in (inputs, *(d["files"] for d in needed))
                    for n in _unpack(blob, Path(store), keep=True)}
        before = {n: stat for n, stat in _files(Path(store)).items() if n in unpacked}
    argv = fill(spec["argv"], store, key)
    argv = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    threads = str(spec["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    if not spec["gpu"]:
        env["CUDA_VISIBLE_DEVICES"] = ""
    log = folder / "unit.log"
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"=== attempt {attempt} on {socket.gethostname()} as {key}: {shlex.join(argv)}\n")
        f.flush()
        code = subprocess.run([sys.executable, "-c", LAUNCH, str(os.getpid()), *argv], cwd=ROOT, env=env,
                              stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    text = log.read_text(encoding="utf-8", errors="replace")
    # Killed, so retried (the log goes on, and so does the run): the command, by a signal, or a notebook's kernel,
    # a process of its own that the OOM killer or a kill can end alone (papermill raises DeadKernelError)
    if code < 0 or code == 137:
        raise UnitKilled(name, f"its command was killed (signal {-code if code < 0 else 9})", text[-20_000:], attempt)
    if code and "DeadKernelError" in text.rsplit("=== attempt ", 1)[-1]:
        raise UnitKilled(name, "its notebook's kernel died", text[-20_000:], attempt)
    if code:                         # the driver gets the log; a scratch folder stays, to go on from once fixed
        if not spec["scratch"]:
            shutil.rmtree(folder, ignore_errors=True)
        raise UnitFailed(name, _error_line(text), text[-20_000:], attempt)
    files = _pack_new(Path(store), before, store, spec["store"]) if spec["scratch"] else None
    shutil.rmtree(folder, ignore_errors=True)       # the driver keeps the log; a finished run needs no checkpoint
    return {"name": name, "key": key, "attempt": attempt, "seconds": time.time() - start, "log": text, "files": files}


def _error_line(log: str) -> str:
    """The error a failed command printed: mtlib's one line where there is one, else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    mtlib = [line for line in lines if line.startswith("mtlib: error:")]
    return (mtlib or lines or ["it printed nothing"])[-1]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (s.st_mtime_ns, s.st_size) for p in root.rglob("*")
            if p.is_file() and (s := p.stat())}


def _pack_new(root: Path, before: dict, scratch: str, store: str) -> bytes:
    """The files under `root` that the unit wrote (not its checkpoints), with the scratch folder's path in the
    text files it wrote (config, records, executed notebooks) made the store's, as if it had trained there."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, stat in sorted(_files(root).items()):
            if "checkpoints" in Path(rel).parts or before.get(rel) == stat:
                continue
            data = (root / rel).read_bytes()
            if rel.endswith((".json", ".ipynb", ".md", ".txt", ".csv")):
                data = data.replace(scratch.encode(), store.encode())
            info = tarfile.TarInfo(rel)
            info.size, info.mtime = len(data), stat[0] // 1_000_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _pack_runs(root: Path, key: str, folders: tuple[str, ...]) -> bytes | None:
    """The finished runs (a folder with metrics.json) under <root>/<key>/<folder>, without checkpoints: what a
    task without the store needs in its scratch folder so as to load them instead of training them again."""
    runs = sorted({m.parent for f in folders for m in (root / key / f).rglob("metrics.json")}
                  | {root / key / f for f in folders if (root / key / f / "metrics.json").is_file()})
    if not runs:
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for run in runs:
            tar.add(run, arcname=str(run.relative_to(root)), filter=lambda t: None if "/checkpoints" in t.name else t)
    return buf.getvalue()


def _unpack(blob: bytes | None, root: Path, keep: bool = False) -> list[str]:
    """Extract a tarball of run files under `root`; `keep`: leave files already there (a retry's checkpoint and
    log) as they are. Returns the files it extracted."""
    if not blob:
        return []
    root.mkdir(parents=True, exist_ok=True)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    extracted = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not (keep and (root / member.name).exists()):
                tar.extract(member, root, **safe)
                extracted += [member.name] if member.isfile() else []
    return extracted


if __name__ == "__main__":      # `python -m mtlib.report.cluster resources`: this node's kind, for `ray start --resources`
    if sys.argv[1:] != ["resources"]:
        sys.exit("usage: python -m mtlib.report.cluster resources   (this node's kind as `ray start --resources` JSON)")
    print(json.dumps({cpu_kind(): 10_000}))
