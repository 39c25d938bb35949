"""The track table over a 100 000-track catalog: counts, order, filters and cell values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from benchmarks.table_model import PACK, UNCOVERED, SyntheticCatalog, build_catalog
from moodlib import vocabulary
from moodlib.gui.table_model import Column, TrackIdRole, TrackTableModel
from moodlib.library.catalog import Catalog
from moodlib.library.views import TrackFilter

pytestmark = pytest.mark.gui

TRACKS = 100_000
HAPPY = vocabulary.TAG_INDEX["happy"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCatalog:
    return build_catalog(tmp_path_factory.mktemp("big") / "catalog.sqlite", TRACKS)


@pytest.fixture(scope="module")
def loaded_model(synthetic: SyntheticCatalog, qapp):
    with Catalog(synthetic.path) as catalog:
        model = TrackTableModel(catalog)
        model.set_pack(PACK, synthetic.thresholds)
        model.refresh()
        yield model


@pytest.fixture
def model(loaded_model: TrackTableModel) -> TrackTableModel:
    """The model over the synthetic catalog, unfiltered, by title (scores read once)."""
    loaded_model.track_filter = TrackFilter()
    loaded_model.sort(Column.TITLE, Qt.SortOrder.AscendingOrder)
    return loaded_model


def column_texts(model: TrackTableModel, column: int, rows: range) -> list[str]:
    return [model.data(model.index(row, column)) for row in rows]


def ids(model: TrackTableModel) -> np.ndarray:
    return model.track_ids() - 1  # track ids are 1-based rows of the synthetic arrays


def test_every_track_is_a_row(model: TrackTableModel) -> None:
    assert model.rowCount() == TRACKS
    assert model.columnCount() == len(Column.HEADERS)


def test_sorting_by_title_both_ways(model: TrackTableModel, synthetic: SyntheticCatalog) -> None:
    expected = sorted(synthetic.titles, key=str.lower)
    model.sort(Column.TITLE, Qt.SortOrder.AscendingOrder)
    assert column_texts(model, Column.TITLE, range(40)) == expected[:40]
    assert column_texts(model, Column.TITLE, range(TRACKS - 5, TRACKS)) == expected[-5:]
    model.sort(Column.TITLE, Qt.SortOrder.DescendingOrder)
    assert column_texts(model, Column.TITLE, range(40)) == expected[::-1][:40]


def test_sorting_by_duration(model: TrackTableModel, synthetic: SyntheticCatalog) -> None:
    model.sort(Column.DURATION, Qt.SortOrder.DescendingOrder)
    durations = synthetic.durations[ids(model)]
    assert np.all(np.diff(durations) <= 0)


def test_sorting_by_top_score_and_by_the_filter_tags_score(
    model: TrackTableModel, synthetic: SyntheticCatalog
) -> None:
    model.sort(Column.TAGS, Qt.SortOrder.DescendingOrder)
    top = np.nanmax(synthetic.scores, axis=1)[ids(model)]
    assert np.all(np.diff(top) <= 0)
    model.set_filter(TrackFilter(tag="happy", min_score=0.2))
    happy = synthetic.scores[ids(model), HAPPY]
    assert np.all(np.diff(happy) <= 0)
    assert happy[-1] >= 0.2


def test_filtering_by_tag_and_minimum_score(
    model: TrackTableModel, synthetic: SyntheticCatalog
) -> None:
    model.set_filter(TrackFilter(tag="happy", min_score=0.5))
    assert model.rowCount() == int(np.sum(synthetic.scores[:, HAPPY] >= 0.5))
    assert np.all(synthetic.scores[ids(model), HAPPY] >= 0.5)

    # At its lowest the minimum means the tag's own threshold.
    model.set_filter(TrackFilter(tag="happy", min_score=0.0))
    threshold = synthetic.thresholds["happy"]
    assert model.rowCount() == int(np.sum(synthetic.scores[:, HAPPY] >= threshold))


def test_a_tag_the_pack_does_not_cover_matches_no_track(model: TrackTableModel) -> None:
    model.set_filter(TrackFilter(tag=UNCOVERED[0], min_score=0.01))
    assert model.rowCount() == 0


def test_filtering_by_text_and_unreviewed(
    model: TrackTableModel, synthetic: SyntheticCatalog
) -> None:
    model.set_filter(TrackFilter(text="artist 042"))
    expected = {i for i, a in enumerate(synthetic.artists) if "artist 042" in a.lower()}
    assert set(ids(model)) == expected

    model.set_filter(TrackFilter(unreviewed_only=True))
    assert model.rowCount() == int(np.sum(~synthetic.reviewed))
    assert not synthetic.reviewed[ids(model)].any()

    model.set_filter(TrackFilter(text="artist 042", tag="happy", min_score=0.3,
                                 unreviewed_only=True))  # fmt: skip
    combined = {
        i for i in expected if not synthetic.reviewed[i] and synthetic.scores[i, HAPPY] >= 0.3
    }
    assert set(ids(model)) == combined


def test_cells_show_the_catalogs_values(
    model: TrackTableModel, synthetic: SyntheticCatalog
) -> None:
    model.sort(Column.TITLE)
    for row in (0, 12_345, TRACKS - 1):
        track = model.data(model.index(row, 0), TrackIdRole) - 1
        cells = column_texts_row(model, row)
        assert cells[Column.TITLE] == synthetic.titles[track]
        assert cells[Column.ARTIST] == synthetic.artists[track]
        assert cells[Column.ALBUM] == synthetic.albums[track]
        minutes, seconds = divmod(round(synthetic.durations[track]), 60)
        assert cells[Column.DURATION] == f"{minutes}:{seconds:02d}"
        scores = synthetic.scores[track]
        best = int(np.nanargmax(scores))
        shown = f"{vocabulary.TAGS[best]} {scores[best]:.2f}"
        assert cells[Column.TAGS].startswith(shown) or cells[Column.TAGS] == f"({shown})"
        reviewed = synthetic.reviewed[track]
        assert cells[Column.REVIEW] == ("✓1" if reviewed else "unreviewed")
        assert cells[Column.WRITTEN] == "not written"


def column_texts_row(model: TrackTableModel, row: int) -> list[str]:
    return [model.data(model.index(row, column)) for column in range(model.columnCount())]


def test_the_page_cache_stays_bounded(model: TrackTableModel) -> None:
    for row in range(0, TRACKS, TRACKS // (model.MAX_PAGES + 8)):
        model.data(model.index(row, Column.TITLE))
    assert model.cached_pages == model.MAX_PAGES  # full, never over


def test_build_catalog_is_what_the_table_reads(synthetic: SyntheticCatalog) -> None:
    assert Path(synthetic.path).is_file()
    with Catalog(synthetic.path) as catalog:
        assert catalog.count_tracks() == TRACKS
        np.testing.assert_array_equal(catalog.prediction(7, PACK), synthetic.scores[6])
