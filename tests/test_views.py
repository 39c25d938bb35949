"""The catalog queries behind the track table (``moodlib.library.views``), without Qt.

The 100 000-track orders and filters are tested through the GUI's table model in
``tests/gui/test_table_model.py``; these are the cases a synthetic catalog does not have:
missing fields, LIKE's wildcards in a filter, the write journal and scan errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from moodlib import vocabulary
from moodlib.library.catalog import Catalog, WriteIntent
from moodlib.library.views import (
    SortKey,
    TrackFilter,
    added_tags,
    load_scores,
    ordered_track_ids,
    scan_errors,
    track_index,
    track_rows,
)


def add(catalog: Catalog, path: str, **fields) -> int:
    return catalog.upsert_track(path, size=1, mtime_ns=1, **fields)


def test_tracks_without_the_sorted_field_come_last_both_ways(catalog) -> None:
    b = add(catalog, "/m/1.mp3", title="b", duration=20.0)
    untitled = add(catalog, "/m/2.mp3")
    a_upper = add(catalog, "/m/3.mp3", title="A", duration=10.0)
    a_lower = add(catalog, "/m/4.mp3", title="a", duration=30.0)
    untitled_too = add(catalog, "/m/5.mp3")

    by_title = ordered_track_ids(catalog, sort=SortKey.TITLE)
    assert by_title.tolist() == [a_upper, a_lower, b, untitled, untitled_too]
    by_title = ordered_track_ids(catalog, sort=SortKey.TITLE, descending=True)
    assert by_title.tolist() == [b, a_lower, a_upper, untitled_too, untitled]
    by_duration = ordered_track_ids(catalog, sort=SortKey.DURATION, descending=True)
    assert by_duration.tolist() == [a_lower, b, a_upper, untitled_too, untitled]


def test_the_artist_order_goes_on_by_album_then_title(catalog) -> None:
    second = add(catalog, "/m/1.mp3", artist="x", album="b", title="a")
    first = add(catalog, "/m/2.mp3", artist="X", album="a", title="z")
    third = add(catalog, "/m/3.mp3", artist="x", album="b", title="b")
    no_artist = add(catalog, "/m/4.mp3", album="a")

    assert ordered_track_ids(catalog, sort=SortKey.ARTIST).tolist() == [
        first, second, third, no_artist
    ]  # fmt: skip


def test_a_text_filter_matches_wildcards_literally(catalog) -> None:
    percent = add(catalog, "/m/1.mp3", title="100% pure")
    add(catalog, "/m/2.mp3", title="1000 pure")
    underscore = add(catalog, "/m/a_b.mp3")
    add(catalog, "/m/axb.mp3")

    assert ordered_track_ids(catalog, TrackFilter(text="0% p")).tolist() == [percent]
    assert ordered_track_ids(catalog, TrackFilter(text="A_B")).tolist() == [underscore]


def test_the_score_sort_and_the_tag_filter_use_the_packs_scores(catalog) -> None:
    tracks = [add(catalog, f"/m/{n}.mp3", title=f"t{n}") for n in range(4)]
    happy = vocabulary.TAG_INDEX["happy"]
    for track, value in zip(tracks[:3], (0.2, 0.9, 0.5), strict=True):
        scores = np.full(56, np.nan, np.float32)
        scores[happy] = value
        catalog.put_prediction(track, "p", scores)
    table = load_scores(catalog, "p")

    index = track_index(catalog, table, {"happy": 0.4}, sort=SortKey.SCORE, descending=True)
    assert index.ids.tolist() == [tracks[1], tracks[2], tracks[0], tracks[3]]  # unscored last
    index = track_index(catalog, table, {"happy": 0.4}, TrackFilter(tag="happy"))
    assert index.ids.tolist() == [tracks[1], tracks[2]]  # at its threshold, by title
    assert index.scores(0)[happy] == pytest.approx(0.9)


def test_rows_count_decisions_and_the_last_write_not_undone(catalog) -> None:
    track = add(catalog, "/m/1.mp3", title="t")
    catalog.set_decision(track, "happy", "accept")
    catalog.set_decision(track, "sad", "reject")
    catalog.add_tag(track, "road trip")
    entries = []
    for before, after in (([], ["happy"]), (["happy"], ["happy", "road trip"])):
        batch = catalog.begin_write_batch("write")
        [entry] = catalog.record_intents(batch, [WriteIntent("/m/1.mp3", before, after, "")])
        if not entries:  # a pending entry's file is not written yet
            assert track_rows(catalog, [track])[track].written_at is None
        catalog.set_journal_state([entry], "written")
        entries.append(entry)
    first, second = entries
    written = {}
    for entry in (second, first):
        written[entry] = track_rows(catalog, [track])[track].written_at
        catalog.set_journal_state([entry], "undone")

    row = track_rows(catalog, [track])[track]
    assert (row.title, row.accepted, row.rejected, row.added) == ("t", 2, 1, 1)
    assert row.written_at is None
    assert written[first] is not None and written[second] >= written[first]
    assert added_tags(catalog, track) == ["road trip"]


def test_scan_errors_are_listed_by_path(catalog) -> None:
    add(catalog, "/m/b.mp3", error="no audio stream")
    add(catalog, "/m/c.mp3")
    add(catalog, "/m/a.mp3", error="truncated")

    assert scan_errors(catalog) == [("/m/a.mp3", "truncated"), ("/m/b.mp3", "no audio stream")]
