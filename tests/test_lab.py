"""`make lab` for real: JupyterLab started headless through the Makefile, driven over its REST and websocket API.

The server lists notebooks/ and finds the numbered notebooks; a kernel started through it is the project's
(this virtual environment) with the data folder that `make run` uses and the hub left reachable (the Makefile does not
set HF_HUB_OFFLINE: the default encoder is a folder, and a hub name may download), and imports mtlib.
Every wait is bounded; the server is shut down through its API (its process group is killed as a fallback).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import ROOT

TIMEOUT = 60          # seconds for each of: the kernel to start, the code to run, the server to stop
START = 120           # seconds for the server to answer (a few in CI; more on a machine busy training)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def makefile_data_dir() -> str:
    """The data folder the Makefile exports when MTLIB_DATA_DIR is not set."""
    shared = (ROOT / ".." / "shared" / "data" / "cs224n").resolve()
    return str(shared if any(shared.glob("*.csv")) else ROOT / "data" / "cs224n")


class Lab:
    def __init__(self, port: int, token: str, log: Path):
        self.base, self.token, self.log = f"http://127.0.0.1:{port}", token, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def api(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def wait_until_up(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + START
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited with {proc.returncode}:\n{self.output()}")
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        pytest.fail(f"JupyterLab did not answer on {self.base} within {START}s; it wrote:\n{self.output()}")

    def execute(self, kernel_id: str, code: str) -> str:
        """Run `code` in the kernel over the server's websocket; its stdout (fails on an error)."""
        import websocket   # websocket-client, a dependency of jupyter_server
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.base.rsplit(':', 1)[1]}/api/kernels/{kernel_id}/channels",
                                         header=[f"Authorization: token {self.token}"], timeout=TIMEOUT)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        # The reply comes on the shell channel and the output on iopub; the two are not ordered, so the run is
        # over only once both the execute_reply and iopub's `idle` status for this request have arrived.
        out, replied, idle, deadline = [], False, False, time.monotonic() + TIMEOUT
        try:
            while time.monotonic() < deadline and not (replied and idle):
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    pytest.fail(f"the kernel raised {content['ename']}: {content['evalue']}")
                elif kind == "execute_reply":
                    assert content["status"] == "ok", content
                    replied = True
                elif kind == "status":
                    idle = content["execution_state"] == "idle"
        finally:
            ws.close()
        if not (replied and idle):
            pytest.fail(f"no execute_reply and idle status within {TIMEOUT}s (replied={replied}, idle={idle})")
        return "".join(out)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="`make lab` needs GNU make")
def test_make_lab_serves_the_notebooks_and_a_kernel_that_imports_mtlib(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "jupyter").exists():
        pytest.fail(f"{venv}/bin/jupyter is missing: jupyterlab is a dependency (pip install -e .)")
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MTLIB_DATA_DIR", "HF_HUB_OFFLINE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), IPYTHONDIR=str(tmp_path / "ipython"))
    # `make lab` as a user types it, on this environment (-o: do not re-run the set-up), headless.
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    lab = Lab(port, token, tmp_path / "lab.log")
    with open(lab.log, "w") as log:
        proc = subprocess.Popen(["make", "-s", "-C", str(ROOT), "-o", f"{venv}/.installed", "lab", f"VENV={venv}",
                                 f"LAB_ARGS={args}"], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        lab.wait_until_up(proc)
        listing = lab.api("GET", "/api/contents/notebooks")
        names = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        assert {"00_data.ipynb", "01_baseline.ipynb", "05_novel.ipynb"} <= set(names), names

        kernel = lab.api("POST", "/api/kernels", {"name": "python3", "path": "notebooks"})   # returns once started
        seen = json.loads(lab.execute(kernel["id"], (
            "import json, os, sys, mtlib\n"
            "print(json.dumps({'version': mtlib.__version__, 'prefix': sys.prefix, 'cwd': os.getcwd(),\n"
            "                  'data': os.environ.get('MTLIB_DATA_DIR'), 'offline': os.environ.get('HF_HUB_OFFLINE')}))")))
        assert Path(seen["prefix"]).resolve() == venv.resolve()          # the project's kernel
        assert Path(seen["cwd"]).resolve() == (ROOT / "notebooks").resolve()
        assert Path(seen["data"]).resolve() == Path(makefile_data_dir()) and seen["offline"] is None
        assert seen["version"]
        lab.api("DELETE", f"/api/kernels/{kernel['id']}")
    finally:
        try:
            lab.api("POST", "/api/shutdown")
            proc.wait(timeout=TIMEOUT)
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGTERM)   # make, jupyter and its kernels: the group started here
            except ProcessLookupError:
                pass
            proc.wait(timeout=TIMEOUT)
