"""Downloading a pinned file: resumable, capped at its size, verified before it is kept.

``fetch(url, dest, sha256=..., size=...)`` downloads into ``dest.part``, which survives an
interruption (a lost connection, a killed process) and is resumed by the next call with an
HTTP Range request. No more than the pinned ``size`` is ever fetched; the file is renamed to
``dest`` only once its sha256 matches, and a ``.part`` that cannot be right (longer than the
pin, another sha256) is deleted. Used for model packs and the trainer's dataset archives.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from moodlib.progress import Progress, ProgressCallback, raise_if_cancelled

CHUNK_BYTES = 1 << 16
TIMEOUT_SECONDS = 60.0


class DownloadError(Exception):
    """A download that failed; ``str`` names the address and the reason.

    ``resumable``: what was fetched is kept in the ``.part`` file for the next try.
    """

    def __init__(self, url: str, reason: str, *, resumable: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.resumable = resumable


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> Path:
    """``dest``, holding the file at ``url`` whose sha256 is ``sha256`` (and length ``size``
    bytes, when pinned), downloaded or resumed as needed; a ``dest`` already right is kept.

    ``progress`` is told the bytes fetched as they arrive. Raises ``DownloadError``, or
    ``Cancelled`` when ``cancel`` is set (what arrived is kept for the next try).
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    partial = dest.with_name(dest.name + ".part")
    if size is not None and partial.is_file() and partial.stat().st_size > size:
        partial.unlink()
    digest = _download(url, partial, size, progress, cancel, timeout_seconds)
    fetched = partial.stat().st_size
    if size is not None and fetched != size:
        partial.unlink()
        raise DownloadError(url, f"{fetched} bytes, not the {size} expected; deleted")
    if digest != sha256:
        partial.unlink()
        raise DownloadError(
            url, f"sha256 mismatch (expected {sha256}, got {digest}); the download was deleted"
        )
    partial.replace(dest)
    return dest


def _download(
    url: str,
    partial: Path,
    size: int | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    timeout_seconds: float,
) -> str:
    """Append to ``partial`` what it lacks of ``url``; the sha256 of the whole file."""
    offset = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file holds every byte already
            return sha256_file(partial)
        raise DownloadError(url, f"HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(url, f"cannot connect ({error})", resumable=bool(offset)) from error
    with response:
        resumed = bool(offset) and response.status == 206  # 200: the server sends it all
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else size
        if size is not None and total is not None and total > size:
            partial.unlink(missing_ok=True)
            raise DownloadError(url, f"the server offers {total} bytes, not the {size} expected")
        digest = hashlib.sha256()
        if resumed:
            with open(partial, "rb") as stream:
                while chunk := stream.read(CHUNK_BYTES):
                    digest.update(chunk)
        done = offset
        try:
            with open(partial, "ab" if resumed else "wb") as stream:
                while chunk := response.read1(CHUNK_BYTES):  # what has arrived, up to a chunk
                    raise_if_cancelled(cancel)
                    done += len(chunk)
                    if size is not None and done > size:
                        raise DownloadError(url, f"more than the {size} bytes expected")
                    stream.write(chunk)
                    digest.update(chunk)
                    if progress:
                        progress(Progress(done, total, url, "bytes"))
        except DownloadError:
            partial.unlink()
            raise
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(
                url, f"the download broke off ({error}); try again to resume", resumable=True
            ) from error
    if total is not None and done < total:
        raise DownloadError(
            url, f"the download broke off at {done} of {total} bytes; try again to resume",
            resumable=True,
        )  # fmt: skip
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
