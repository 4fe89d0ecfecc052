"""Tests for mtlib.data.download against a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mtlib.data import FILES, LABEL_COLUMN, TEXT_COLUMNS, DataError, download, load_split

VALUES = {"sst": "3", "para": "1.0", "sts": "4.2"}


def make_files(folder: Path) -> None:
    """Write a small valid TSV under each of the nine official names."""
    folder.mkdir(parents=True, exist_ok=True)
    for (task, split), name in FILES.items():
        cols = ["", "id", *TEXT_COLUMNS[task]] + ([LABEL_COLUMN[task]] if split != "test" else [])
        rows = [[str(i), f"{task}{split}{i}", *(f"text {i} é" for _ in TEXT_COLUMNS[task])] for i in range(3)]
        if split != "test":
            rows = [r + [VALUES[task]] for r in rows]
        (folder / name).write_text("\n".join("\t".join(r) for r in [cols, *rows]) + "\n", encoding="utf-8")


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/'remote' on 127.0.0.1; yields (base_url, remote folder, list of requested paths)."""
    remote = tmp_path / "remote"
    make_files(remote)
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(remote)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", remote, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_then_load(server, tmp_path):
    base, remote, requests = server
    dest = tmp_path / "local" / "cs224n"
    paths = download(dest, base_url=base, timeout=10)
    assert sorted(p.name for p in paths) == sorted(FILES.values()) and len(requests) == 9
    for p in paths:
        assert p.read_bytes() == (remote / p.name).read_bytes()
    assert not [p for p in dest.iterdir() if p.name not in FILES.values()]  # no temp files left
    for task, split in FILES:
        sp = load_split(task, split, dest)
        assert len(sp) == 3 and (sp.labels is None) == (split == "test")


def test_second_call_skips_existing(server, tmp_path):
    base, _, requests = server
    dest = tmp_path / "local"
    download(dest, base_url=base + "/", timeout=10)
    assert len(requests) == 9
    (dest / FILES["sts", "dev"]).unlink()
    paths = download(dest, base_url=base, timeout=10)
    assert len(paths) == 9 and requests[9:] == ["/sts-dev.csv"]
    download(dest, base_url=base, force=True, timeout=10)
    assert len(requests) == 19


def test_404_names_url(server, tmp_path):
    base, remote, _ = server
    (remote / FILES["para", "test"]).unlink()
    dest = tmp_path / "local"
    with pytest.raises(DataError) as e:
        download(dest, base_url=base, timeout=10)
    assert f"{base}/quora-test-student.csv" in str(e.value) and "404" in str(e.value)
    assert not (dest / FILES["para", "test"]).exists()
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]


def test_unreachable_host_names_url(tmp_path):
    import socket

    with socket.socket() as s:  # a port on 127.0.0.1 that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"http://127.0.0.1:{port}/ids-sst-train.csv"):
        download(tmp_path, base_url=f"http://127.0.0.1:{port}", timeout=5)
