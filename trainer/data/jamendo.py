"""The official MTG-Jamendo mood/theme split: TSV files, the tag matrix, mel-spectrogram files.

A split file (``split-0/autotagging_moodtheme-train.tsv``) is tab-separated with the header
``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`` and one track per line; from the sixth column
on, each column holds one tag (``mood/theme---happy``), as many as the track has. The official
files end their lines with CRLF. PATH is the audio file relative to the dataset root
(``48/948.mp3``); the dataset's mel-spectrogram of that track is the same path with ``.npy``,
an array of 96 mel bands by frames in dB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodlib.vocabulary import FULL_NAMES, TAG_INDEX, TAGS, short_name
from trainer import TrainerError

SUBSETS = ("train", "validation", "test")
HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
N_MELS = 96


class DatasetError(TrainerError):
    """A split file or a mel-spectrogram is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Track:
    """One line of a split file."""

    track_id: str
    artist_id: str
    album_id: str
    path: str
    """Audio path relative to the dataset root, as in the file (``48/948.mp3``)."""
    duration: float
    """Seconds."""
    tags: tuple[str, ...]
    """Short tag names (``happy``), in the file's order."""


def split_file(split_dir: str | Path, subset: str) -> Path:
    """``split_dir/autotagging_moodtheme-{subset}.tsv`` for ``subset`` in :data:`SUBSETS`."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; use one of {', '.join(SUBSETS)}")
    return Path(split_dir) / f"autotagging_moodtheme-{subset}.tsv"


def read_split(path: str | Path) -> list[Track]:
    """Read the tracks of one split file.

    Raises
    ------
    DatasetError
        The file is missing, its header is not the official one, or a line is malformed; the
        message names the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the split file ({error.strerror})") from error
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise DatasetError(f"{path}: the header is not {' '.join(HEADER)}")
    tracks = []
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            tracks.append(_parse_track(line, f"{path}:{number}"))
    return tracks


def write_split(path: str | Path, tracks: Iterable[Track]) -> None:
    """Write ``tracks`` as an official split file (full tag names, CRLF line ends)."""
    rows = ["\t".join(HEADER)]
    for track in tracks:
        fields = [track.track_id, track.artist_id, track.album_id, track.path]
        fields.append(f"{track.duration:.1f}")
        fields.extend(FULL_NAMES[TAG_INDEX[tag]] for tag in track.tags)
        rows.append("\t".join(fields))
    Path(path).write_text("\r\n".join(rows) + "\r\n", encoding="utf-8", newline="")


def tag_matrix(tracks: Sequence[Track]) -> np.ndarray:
    """Multi-hot tags, float32 ``(n_tracks, 56)``, columns in the official order."""
    matrix = np.zeros((len(tracks), len(TAGS)), dtype=np.float32)
    for row, track in enumerate(tracks):
        matrix[row, [TAG_INDEX[tag] for tag in track.tags]] = 1
    return matrix


def tag_counts(tracks: Sequence[Track]) -> np.ndarray:
    """How many of ``tracks`` carry each tag, int64 ``(56,)`` in the official order."""
    return tag_matrix(tracks).sum(axis=0).astype(np.int64)


def mel_path(root: str | Path, path: str) -> Path:
    """The mel-spectrogram of the track at ``path`` (``48/948.mp3`` -> ``root/48/948.npy``)."""
    return Path(root) / Path(path).with_suffix(".npy")


def load_mel(path: str | Path) -> np.ndarray:
    """A mel-spectrogram ``(96, frames)``, memory-mapped; :class:`DatasetError` if unusable."""
    try:
        mel = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: cannot read the mel-spectrogram ({error})") from error
    if mel.ndim != 2 or mel.shape[0] != N_MELS or mel.shape[1] == 0:
        raise DatasetError(f"{path}: expected {N_MELS} mel bands x frames, found {mel.shape}")
    return mel


def _parse_track(line: str, where: str) -> Track:
    fields = line.split("\t")
    if len(fields) < len(HEADER):
        raise DatasetError(f"{where}: expected at least {len(HEADER)} columns, found {len(fields)}")
    track_id, artist_id, album_id, path, duration = fields[:5]
    try:
        seconds = float(duration)
    except ValueError:
        raise DatasetError(f"{where}: the duration {duration!r} is not a number") from None
    try:
        tags = tuple(short_name(tag) for tag in fields[5:])
    except KeyError as error:
        raise DatasetError(f"{where}: {error.args[0]}") from None
    return Track(track_id, artist_id, album_id, path, seconds, tags)


def read_thresholds(path: str | Path) -> np.ndarray:
    """Per-tag thresholds in the official results format, one ``mood/theme---TAG VALUE`` line
    per tag (``results/mediaeval/baseline_vggish_thresholds.txt``), in the official tag order.

    Raises
    ------
    DatasetError
        The file is missing, a line is malformed, or a tag is missing or repeated.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the thresholds ({error})") from error
    values: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            name, value = line.split()
            tag = short_name(name)
            if tag in values:
                raise ValueError(f"{name} is repeated")
            values[tag] = float(value)
        except (KeyError, ValueError) as error:
            message = f"{path}:{number}: not 'mood/theme---TAG THRESHOLD': {error}"
            raise DatasetError(message) from error
    missing = [tag for tag in TAGS if tag not in values]
    if missing:
        raise DatasetError(f"{path}: no threshold for {', '.join(missing)}")
    return np.array([values[tag] for tag in TAGS])
