"""The dataset downloader against a local HTTP server that honours Range requests."""

import functools
import hashlib
import io
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from trainer.cli import main
from trainer.data.download import (
    DownloadError,
    download_dataset,
    parse_sha256_list,
    read_sha256_list,
)

MEMBERS = {
    "autotagging_moodtheme_melspecs-00.tar": {"00/100.npy": b"a" * 3000, "10/110.npy": b"b" * 10},
    "autotagging_moodtheme_melspecs-01.tar": {"01/101.npy": b"c" * 2000},
}


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files from a folder; answers ``Range: bytes=START-`` with 206 or 416."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        requested = self.headers.get("Range")
        if requested and self.server.honour_range:
            start = int(requested.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def make_tar(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in sorted({name.split("/")[0] for name in members}):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path):
    """A served folder ``melspecs/*.tar`` plus ``list.txt``; yields (base URL, server, root)."""
    root = tmp_path / "mirror"
    (root / "melspecs").mkdir(parents=True)
    lines = []
    for filename, members in MEMBERS.items():
        data = make_tar(members)
        (root / "melspecs" / filename).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()} {filename}\n")
    (root / "list.txt").write_text("".join(lines))
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root))
    )
    server.requests = []
    server.honour_range = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server, root
    server.shutdown()
    server.server_close()


def fetch(base_url, root, outdir, **options):
    return download_dataset(
        "melspecs",
        outdir,
        base_url=base_url,
        sha256_list=root / "list.txt",
        show_progress=False,
        log=lambda line: None,
        **options,
    )


def assert_unpacked(outdir, filename):
    for name, content in MEMBERS[filename].items():
        assert (outdir / name).read_bytes() == content


def test_download_verifies_and_unpacks_every_archive(mirror, tmp_path, capsys):
    base_url, server, root = mirror
    outdir = tmp_path / "out"

    status = main(
        [
            "download",
            "--type",
            "melspecs",
            str(outdir),
            "--base-url",
            base_url,
            "--sha256-list",
            f"{base_url}/list.txt",
        ]
    )

    assert status == 0
    for filename in MEMBERS:
        assert_unpacked(outdir, filename)
        assert (outdir / filename).read_bytes() == (root / "melspecs" / filename).read_bytes()
    assert not list(outdir.glob("*.part"))
    assert ("/melspecs/autotagging_moodtheme_melspecs-01.tar", None) in server.requests


def test_a_partial_download_resumes_with_a_range_request(mirror, tmp_path):
    base_url, server, root = mirror
    outdir = tmp_path / "out"
    outdir.mkdir()
    filename = "autotagging_moodtheme_melspecs-00.tar"
    data = (root / "melspecs" / filename).read_bytes()
    (outdir / f"{filename}.part").write_bytes(data[:1000])

    fetch(base_url, root, outdir)

    assert (f"/melspecs/{filename}", "bytes=1000-") in server.requests
    assert (outdir / filename).read_bytes() == data
    assert_unpacked(outdir, filename)


def test_a_complete_partial_file_is_verified_without_refetching(mirror, tmp_path):
    base_url, server, root = mirror
    outdir = tmp_path / "out"
    outdir.mkdir()
    filename = "autotagging_moodtheme_melspecs-01.tar"
    data = (root / "melspecs" / filename).read_bytes()
    (outdir / f"{filename}.part").write_bytes(data)

    fetch(base_url, root, outdir)

    assert (f"/melspecs/{filename}", f"bytes={len(data)}-") in server.requests
    assert_unpacked(outdir, filename)


def test_a_server_ignoring_range_restarts_the_download(mirror, tmp_path):
    base_url, server, root = mirror
    server.honour_range = False
    outdir = tmp_path / "out"
    outdir.mkdir()
    filename = "autotagging_moodtheme_melspecs-00.tar"
    data = (root / "melspecs" / filename).read_bytes()
    (outdir / f"{filename}.part").write_bytes(b"x" * 500)

    fetch(base_url, root, outdir)

    assert (outdir / filename).read_bytes() == data


def test_a_corrupted_archive_is_rejected_and_not_unpacked(mirror, tmp_path, capsys):
    base_url, _, root = mirror
    bad = "autotagging_moodtheme_melspecs-01.tar"
    served = root / "melspecs" / bad
    served.write_bytes(served.read_bytes()[:-1] + b"!")
    outdir = tmp_path / "out"

    status = main(
        [
            "download",
            "--type",
            "melspecs",
            str(outdir),
            "--base-url",
            base_url,
            "--sha256-list",
            str(root / "list.txt"),
        ]
    )

    assert status == 1
    error = capsys.readouterr().err
    assert f"{bad}: sha256 mismatch" in error
    assert not (outdir / "01").exists()
    assert not (outdir / bad).exists()
    assert not (outdir / f"{bad}.part").exists()
    # The good archive went through.
    assert_unpacked(outdir, "autotagging_moodtheme_melspecs-00.tar")


def test_verified_archives_are_skipped_on_the_next_run(mirror, tmp_path):
    base_url, server, root = mirror
    outdir = tmp_path / "out"
    first = fetch(base_url, root, outdir)
    server.requests.clear()

    second = fetch(base_url, root, outdir)

    assert [path.name for path in first] == list(MEMBERS)
    assert second == []
    assert server.requests == []


def test_archives_can_be_removed_after_unpacking(mirror, tmp_path):
    base_url, server, root = mirror
    outdir = tmp_path / "out"

    fetch(base_url, root, outdir, keep_archives=False)
    server.requests.clear()
    fetch(base_url, root, outdir, keep_archives=False)

    assert not list(outdir.glob("*.tar"))
    assert_unpacked(outdir, "autotagging_moodtheme_melspecs-01.tar")
    assert server.requests == []


def test_an_archive_escaping_the_output_folder_is_refused(mirror, tmp_path):
    base_url, _, root = mirror
    evil = make_tar({"../escaped.npy": b"x"})
    (root / "melspecs" / "evil.tar").write_bytes(evil)
    (root / "list.txt").write_text(f"{hashlib.sha256(evil).hexdigest()} evil.tar\n")
    outdir = tmp_path / "out"

    with pytest.raises(DownloadError, match=r"evil\.tar: cannot unpack"):
        fetch(base_url, root, outdir)

    assert not (tmp_path / "escaped.npy").exists()


def test_a_missing_archive_is_reported(mirror, tmp_path):
    base_url, _, root = mirror
    (root / "melspecs" / "autotagging_moodtheme_melspecs-00.tar").unlink()

    with pytest.raises(DownloadError, match=r"1 of 2 archives failed(.|\n)*HTTP 404"):
        fetch(base_url, root, tmp_path / "out")


OFFICIAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mtg-jamendo"


@pytest.mark.parametrize("data_type", ["melspecs", "audio"])
def test_the_official_sha256_lists_parse(data_type):
    path = OFFICIAL / f"autotagging_moodtheme_{data_type}_sha256_tars.txt"
    if not path.is_file():
        pytest.skip(f"the official sha256 list is not at {path}")

    archives = read_sha256_list(path)

    assert [archive.filename for archive in archives] == [
        f"autotagging_moodtheme_{data_type}-{number:02d}.tar" for number in range(100)
    ]


def test_a_malformed_sha256_list_names_the_line():
    with pytest.raises(DownloadError, match=r"list\.txt:2: expected 'SHA256 FILENAME'"):
        parse_sha256_list(f"{'0' * 64} a.tar\nnot a checksum line\n", "list.txt")
