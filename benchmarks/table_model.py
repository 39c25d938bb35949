"""How fast the GUI's track table answers on a 100 000-track catalog.

Builds a synthetic catalog (tracks with title/artist/album/duration, a pack's 56 scores per
track with some tags uncovered, decisions on every tenth track), then times:

- ``refresh``: building the model's index (SQL order + numpy scores) for a sort or a filter;
- ``data()`` for a visible page, 40 rows x every column, DisplayRole, cold (the page is
  fetched from SQLite) and warm (from the page cache), as a view scrolling through does.

    python benchmarks/table_model.py [--tracks 100000] [--repeat 20]

``build_catalog`` is also what the GUI tests use for their 100 000-row catalog.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodlib import vocabulary
from moodlib.library.catalog import Catalog

PACK = "synthetic"
UNCOVERED = ("advertising", "christmas", "corporate", "holiday", "sexy", "trailer")


@dataclass
class SyntheticCatalog:
    path: Path
    titles: list[str]  # by track id - 1
    artists: list[str]
    albums: list[str]
    durations: np.ndarray
    scores: np.ndarray  # (tracks, 56) float32 with NaN columns for UNCOVERED
    reviewed: np.ndarray  # bool, tracks with a decision
    thresholds: dict[str, float]


def build_catalog(
    path: str | os.PathLike, tracks: int = 100_000, seed: int = 0
) -> SyntheticCatalog:
    """A catalog of ``tracks`` made-up tracks scored by the pack ``PACK`` (ids 1..tracks)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    numbers = rng.permutation(tracks)
    titles = [f"Track {n:06d}" for n in numbers]
    artists = [f"Artist {n % 997:03d}" for n in rng.integers(0, 10**6, tracks)]
    albums = [f"Album {n:04d}" for n in rng.integers(0, 5000, tracks)]
    durations = rng.uniform(30.0, 600.0, tracks).round(2)
    scores = (rng.random((tracks, len(vocabulary.TAGS)), dtype=np.float32) ** 3).astype(np.float32)
    for tag in UNCOVERED:
        scores[:, vocabulary.TAG_INDEX[tag]] = np.nan
    reviewed = np.zeros(tracks, dtype=bool)
    reviewed[::10] = True
    thresholds = {tag: 0.3 for tag in vocabulary.TAGS if tag not in UNCOVERED}

    top = np.nanargmax(scores, axis=1)
    accepted: dict[str, list[int]] = {}
    with Catalog(path) as catalog:
        ids = catalog.upsert_tracks(
            {"path": f"/music/{artists[i]}/{albums[i]}/{i:06d}.flac", "size": 1, "mtime_ns": 1,
             "duration": float(durations[i]), "format": "flac", "title": titles[i],
             "artist": artists[i], "album": albums[i]}
            for i in range(tracks)
        )  # fmt: skip
        catalog.put_predictions(PACK, ((ids[i], scores[i], None) for i in range(tracks)))
        for i in np.flatnonzero(reviewed):
            accepted.setdefault(vocabulary.TAGS[top[i]], []).append(ids[i])
        for tag, track_ids in accepted.items():
            catalog.set_decisions(track_ids, tag, "accept")
    return SyntheticCatalog(path, titles, artists, albums, durations, scores, reviewed, thresholds)


def _time(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from moodlib.gui.table_model import Column, TrackTableModel
    from moodlib.library.views import TrackFilter

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic = build_catalog(Path(tmp) / "catalog.sqlite", args.tracks)
        print(f"built a {args.tracks}-track catalog in {time.perf_counter() - start:.1f} s")
        with Catalog(synthetic.path) as catalog:
            model = TrackTableModel(catalog)
            model.set_pack(PACK, synthetic.thresholds)
            model.refresh()
            columns = range(len(Column.HEADERS))
            rows_on_screen = 40

            def page(first: int) -> None:
                for row in range(first, first + rows_on_screen):
                    for column in columns:
                        model.data(model.index(row, column))

            pages = iter(range(0, args.tracks - rows_on_screen, args.tracks // (args.repeat + 1)))

            def cold_page() -> None:
                model.tracks_changed()  # forgets the cached pages
                page(next(pages))

            results = {
                "refresh, sorted by title": _time(model.refresh, 5),
                "refresh, sorted by top score": _time(
                    lambda: model.sort(Column.TAGS, Qt.SortOrder.DescendingOrder), 5
                ),
                "refresh, text filter 'Artist 42'": _time(
                    lambda: model.set_filter(TrackFilter(text="Artist 42")), 5
                ),
                "refresh, tag 'happy' >= 0.5, unreviewed": _time(
                    lambda: model.set_filter(
                        TrackFilter(tag="happy", min_score=0.5, unreviewed_only=True)
                    ),
                    5,
                ),
            }
            model.set_filter(TrackFilter())
            model.sort(Column.TITLE)
            results["data(), 40 rows x 7 columns, cold page"] = _time(cold_page, args.repeat)
            page(args.tracks // 2)
            results["data(), 40 rows x 7 columns, cached"] = _time(
                lambda: page(args.tracks // 2), args.repeat
            )
        for name, seconds in results.items():
            print(f"{name:<45} {seconds * 1000:8.2f} ms")
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
