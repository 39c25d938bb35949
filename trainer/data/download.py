"""Download the MTG-Jamendo mood/theme archives, verify their sha256 and unpack them.

The dataset is published as TAR archives listed, one ``SHA256 FILENAME`` line each, in a sha256
list per data type; the lists live in the dataset's repository (``data/download/``), the archives
on MTG's mirror at ``BASE_URL/TYPE/FILENAME`` (what the official ``scripts/download/download.py``
fetches with ``--from mtg-fast``). Each archive unpacks to ``NN/ID.npy`` (or ``.mp3``) under the
output folder, the layout the split files' PATH column points into.

For each archive, in the list's order:

1. an archive already verified and unpacked by an earlier run (a marker under
   ``OUTDIR/.verified/``) is skipped;
2. otherwise it is downloaded to ``FILENAME.part``, resuming a partial file with an HTTP Range
   request, while its sha256 is computed (``moodlib.download.fetch``);
3. an archive whose sha256 does not match is deleted, never unpacked, and reported; the other
   archives go on, and :class:`DownloadError` names every failed one at the end;
4. a verified archive is renamed to ``FILENAME``, unpacked (members outside the output folder
   are refused), and marked done.
"""

from __future__ import annotations

import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from moodlib.download import DownloadError as FetchError
from moodlib.download import fetch
from moodlib.progress import tqdm_callback
from trainer import TrainerError

DATA_TYPES = ("melspecs", "audio", "audio-low")
BASE_URL = "https://cdn.freesound.org/mtg-jamendo/autotagging_moodtheme"
SHA256_LIST_URL = (
    "https://raw.githubusercontent.com/MTG/mtg-jamendo-dataset/master/data/download/"
    "autotagging_moodtheme_{data_type}_sha256_tars.txt"
)
TIMEOUT_SECONDS = 60
MARKER_DIR = ".verified"


class DownloadError(TrainerError):
    """An archive or a sha256 list could not be fetched, verified or unpacked."""


@dataclass(frozen=True)
class Archive:
    """One line of a sha256 list."""

    filename: str
    sha256: str


def sha256_list_url(data_type: str) -> str:
    """The official sha256 list of ``data_type`` in the dataset's repository."""
    _check_data_type(data_type)
    return SHA256_LIST_URL.format(data_type=data_type)


def parse_sha256_list(text: str, source: str = "sha256 list") -> list[Archive]:
    """Parse ``SHA256 FILENAME`` lines; ``source`` names the list in errors."""
    archives = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or len(fields[0]) != 64 or Path(fields[1]).name != fields[1]:
            raise DownloadError(f"{source}:{number}: expected 'SHA256 FILENAME', found {line!r}")
        archives.append(Archive(filename=fields[1], sha256=fields[0].lower()))
    if not archives:
        raise DownloadError(f"{source}: lists no archive")
    return archives


def read_sha256_list(location: str | Path) -> list[Archive]:
    """Read a sha256 list from a local file or an ``http(s)://`` URL."""
    location = str(location)
    if location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(location, timeout=TIMEOUT_SECONDS) as response:
                text = response.read().decode("utf-8")
        except (urllib.error.URLError, OSError) as error:
            raise DownloadError(f"{location}: cannot fetch the sha256 list ({error})") from error
    else:
        try:
            text = Path(location).read_text(encoding="utf-8")
        except OSError as error:
            raise DownloadError(f"{location}: cannot read the sha256 list ({error})") from error
    return parse_sha256_list(text, location)


def download_dataset(
    data_type: str,
    outdir: str | Path,
    *,
    base_url: str = BASE_URL,
    sha256_list: str | Path | None = None,
    keep_archives: bool = True,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Fetch, verify and unpack every archive of ``data_type`` into ``outdir``.

    Parameters
    ----------
    data_type
        One of :data:`DATA_TYPES`.
    outdir
        Folder the archives are unpacked into (created if missing).
    base_url
        Archives are fetched from ``{base_url}/{data_type}/{filename}``.
    sha256_list
        Local path or URL of the sha256 list; by default the official one
        (:func:`sha256_list_url`).
    keep_archives
        Keep each archive after unpacking it (the marker alone is enough to skip it later).
    show_progress
        Show a tqdm progress bar per archive.
    log
        Receives one line per archive: skipped, verified, unpacked.

    Returns
    -------
    The archives unpacked by this call (already done ones are not in it).

    Raises
    ------
    DownloadError
        After every archive was tried, if any could not be fetched or failed its sha256.
    """
    _check_data_type(data_type)
    archives = read_sha256_list(sha256_list or sha256_list_url(data_type))
    outdir = Path(outdir)
    markers = outdir / MARKER_DIR
    markers.mkdir(parents=True, exist_ok=True)
    unpacked, failures = [], []
    for archive in archives:
        marker = markers / f"{archive.filename}.sha256"
        if marker.is_file() and marker.read_text().strip() == archive.sha256:
            log(f"{archive.filename}: already verified and unpacked, skipped")
            continue
        url = f"{base_url.rstrip('/')}/{data_type}/{archive.filename}"
        try:
            path = _fetch_verified(url, outdir / archive.filename, archive.sha256, show_progress)
            log(f"{archive.filename}: sha256 verified")
            _unpack(path, outdir)
        except DownloadError as error:
            log(f"{archive.filename}: {error}")
            failures.append(str(error))
            continue
        marker.write_text(archive.sha256 + "\n")
        if not keep_archives:
            path.unlink()
        log(f"{archive.filename}: unpacked into {outdir}")
        unpacked.append(path)
    if failures:
        raise DownloadError(
            f"{len(failures)} of {len(archives)} archives failed; run again to retry them:\n"
            + "\n".join(failures)
        )
    return unpacked


def _fetch_verified(url: str, destination: Path, sha256: str, show_progress: bool) -> Path:
    """``destination`` with the expected content, downloaded or resumed as needed."""
    bar = tqdm(
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=destination.name,
        disable=not show_progress,
    )

    with bar:
        try:
            return fetch(
                url, destination, sha256=sha256, progress=tqdm_callback(bar, show_text=False)
            )
        except FetchError as error:
            raise DownloadError(str(error)) from error


def _unpack(archive: Path, outdir: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(outdir, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise DownloadError(f"{archive}: cannot unpack ({error})") from error


def _check_data_type(data_type: str) -> None:
    if data_type not in DATA_TYPES:
        raise ValueError(f"unknown data type {data_type!r}; use one of {', '.join(DATA_TYPES)}")
