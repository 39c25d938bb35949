"""Downloads (``moodlib.download``) against a local HTTP server: capped at the pinned size,
resumed after a kill, never kept unverified."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from moodlib.download import DownloadError, fetch
from moodlib.packstore import DOWNLOADS, PackStore
from moodlib.progress import Cancelled, Progress

SHARED = Path(__file__).resolve().parents[2] / "shared"
BASELINE = SHARED / "models" / "mtg-baseline" / "best_model.pth"
ROOT = Path(__file__).resolve().parents[1]


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; answers ``Range: bytes=START-`` with 206. With
    ``server.stall_after`` set, a whole-file answer stops after that many bytes until
    ``server.go_on`` is set; with ``server.no_length``, no Content-Length is sent."""

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        start = int(requested.removeprefix("bytes=").removesuffix("-")) if requested else 0
        self.send_response(206 if start else 200)
        if not self.server.no_length:
            self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if start == 0 and self.server.stall_after:
            self.wfile.write(data[: self.server.stall_after])
            self.wfile.flush()
            self.server.go_on.wait()
            return
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests = {}, []
    httpd.stall_after, httpd.no_length = None, False
    httpd.go_on = threading.Event()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.go_on.set()
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_is_fetched_verified_and_renamed(server, tmp_path) -> None:
    data = os.urandom(300_000)
    server.files["/f.bin"] = data
    dest = fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), size=len(data))
    assert dest.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


@pytest.mark.parametrize("declared", [True, False])
def test_more_than_the_pinned_size_is_never_fetched(server, tmp_path, declared) -> None:
    pinned = os.urandom(100_000)
    server.files["/f.bin"] = pinned + os.urandom(400_000)  # a bigger file at the address
    server.no_length = not declared
    offered = "the server offers 500000 bytes" if declared else "more than the 100000 bytes"

    with pytest.raises(DownloadError, match=f"{offered}"):
        fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(pinned), size=len(pinned))

    assert list(tmp_path.iterdir()) == []


def test_a_part_file_longer_than_the_pin_is_started_again(server, tmp_path) -> None:
    data = os.urandom(50_000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(os.urandom(60_000))

    fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), size=len(data))

    assert server.requests == [("/f.bin", None)]
    assert (tmp_path / "f.bin").read_bytes() == data


def test_a_wrong_file_is_deleted_not_kept(server, tmp_path) -> None:
    server.files["/f.bin"] = b"x" * 1000
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256="0" * 64, size=1000)
    assert list(tmp_path.iterdir()) == []


def test_a_cancelled_download_keeps_what_arrived_and_the_next_one_resumes(server, tmp_path):
    data = os.urandom(400_000)
    server.files["/f.bin"] = data
    cancel, seen = threading.Event(), []

    def on_progress(update: Progress) -> None:
        seen.append(update)
        cancel.set()  # the user presses Cancel after the first chunk

    url, dest = f"{server.url}/f.bin", tmp_path / "f.bin"
    with pytest.raises(Cancelled):
        fetch(url, dest, sha256=sha(data), size=len(data), progress=on_progress, cancel=cancel)

    kept = (tmp_path / "f.bin.part").read_bytes()
    assert seen[0].unit == "bytes" and seen[0].total == len(data)
    assert seen[0].done == len(kept) and 0 < len(kept) < len(data)
    assert kept == data[: len(kept)]
    fetch(url, dest, sha256=sha(data), size=len(data))
    assert server.requests[-1] == ("/f.bin", f"bytes={len(kept)}-")
    assert dest.read_bytes() == data


@pytest.mark.skipif(not BASELINE.is_file(), reason=f"no baseline checkpoint at {BASELINE}")
def test_an_install_killed_midway_is_resumed_by_the_next_one(server, tmp_path) -> None:
    data = BASELINE.read_bytes()
    server.files["/best_model.pth"] = data
    server.stall_after = len(data) // 2
    url = f"{server.url}/best_model.pth"
    user_dir, no_builtin = tmp_path / "packs", tmp_path / "no-builtin"
    install = (
        "import sys; from moodlib.packstore import PackStore; "
        f"PackStore({str(user_dir)!r}, builtin_dir=__import__('pathlib').Path("
        f"{str(no_builtin)!r})).install_mtg_baseline(url={url!r}, "
        "progress=lambda update: print(update.done, flush=True))"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", install],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    for line in child.stdout:  # the child reports each chunk it stored
        if int(line) >= server.stall_after:
            break
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    [partial] = (user_dir / DOWNLOADS).iterdir()
    kept = partial.stat().st_size
    assert partial.name.endswith(".part") and 0 < kept <= len(data) // 2
    server.go_on.set()

    store = PackStore(user_dir, builtin_dir=no_builtin)
    pack = store.install_mtg_baseline(url=url)

    assert server.requests[-1] == ("/best_model.pth", f"bytes={kept}-")
    assert pack.name == "mtg-baseline"
    assert [p.name for p in user_dir.iterdir()] == ["mtg-baseline"], "no .part, no leftovers"
