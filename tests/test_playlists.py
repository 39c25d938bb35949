"""Specification of ``moodlib playlists``: one M3U8 per tag, read back with the m3u8 parser.

The catalog holds real music files with scores set by the test (from the shipped ``starter``
pack's point of view), so which track lands in which playlist is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import m3u8
import numpy as np
import pytest
from media import ARTIST, probed_tags

from moodlib import config, vocabulary
from moodlib.cli import main
from moodlib.library.catalog import Catalog
from moodlib.packstore import PackStore
from moodlib.playlists import write_playlists

PACK = "starter"  # thresholds: happy 0.0125, sad 0.015, calm 0.055


def scores(**by_tag: float) -> np.ndarray:
    values = np.full(len(vocabulary.TAGS), np.nan, dtype=np.float32)
    for tag in PackStore().get(PACK, verify=False).covered:
        values[vocabulary.TAG_INDEX[tag]] = 0.0
    for tag, score in by_tag.items():
        values[vocabulary.TAG_INDEX[tag]] = score
    return values


@pytest.fixture
def tracks(real_music_library: dict[str, Path]) -> dict[str, Path]:
    return {
        name: real_music_library[fmt] for name, fmt in (("a", "flac"), ("b", "mp3"), ("c", "ogg"))
    }


def fill(catalog: Catalog, tracks: dict[str, Path]) -> dict[str, int]:
    """Tracks a, b, c with their files' titles; a: happy 0.9, sad 0.02; b: happy 0.5;
    c: calm 0.3."""
    given = {"a": scores(happy=0.9, sad=0.02), "b": scores(happy=0.5), "c": scores(calm=0.3)}
    ids = {}
    for name, path in tracks.items():
        stat = path.stat()
        ids[name] = catalog.upsert_track(
            str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, duration=10.0,
            title=probed_tags(path)["title"], artist=ARTIST,
        )  # fmt: skip
        catalog.put_prediction(ids[name], PACK, given[name])
    return ids


def read_back(folder: Path, tag: str) -> m3u8.M3U8:
    return m3u8.load(str(folder / f"{tag}.m3u8"))


def uris(playlist: m3u8.M3U8) -> list[str]:
    return [segment.uri for segment in playlist.segments]


def test_each_tag_gets_a_playlist_of_its_tracks_best_score_first(catalog, tracks, tmp_path):
    fill(catalog, tracks)
    folder = tmp_path / "playlists"

    written = write_playlists(catalog, PackStore().get(PACK), folder)

    assert [(p.tag, p.tracks) for p in written] == [("calm", 1), ("happy", 2), ("sad", 1)]
    happy = read_back(folder, "happy")
    assert [(folder / uri).resolve() for uri in uris(happy)] == [tracks["a"], tracks["b"]]
    assert all(not Path(uri).is_absolute() for uri in uris(happy))
    assert [s.duration for s in happy.segments] == [10.0, 10.0]
    assert happy.segments[0].title == f"{ARTIST} - {probed_tags(tracks['a'])['title']}"
    assert [(folder / uri).resolve() for uri in uris(read_back(folder, "sad"))] == [tracks["a"]]
    assert sorted(p.name for p in folder.iterdir()) == ["calm.m3u8", "happy.m3u8", "sad.m3u8"]


def test_min_score_keeps_confident_tags_and_every_tag_the_user_chose(catalog, tracks, tmp_path):
    ids = fill(catalog, tracks)
    catalog.set_decision(ids["c"], "happy", "accept")  # scored 0.0 for happy
    catalog.add_tag(ids["b"], "road trip")
    catalog.set_decision(ids["a"], "happy", "reject")

    written = write_playlists(catalog, PackStore().get(PACK), tmp_path, min_score=0.6)

    assert {p.tag: p.tracks for p in written} == {"happy": 1, "road trip": 1}
    assert [(tmp_path / u).resolve() for u in uris(read_back(tmp_path, "happy"))] == [tracks["c"]]
    road_trip = read_back(tmp_path, "road trip")
    assert [(tmp_path / u).resolve() for u in uris(road_trip)] == [tracks["b"]]


def test_titles_and_paths_are_utf8(catalog, tracks, tmp_path):
    folder = tmp_path / "Stimmungen – 気分"
    song = tmp_path / "Musik" / "Élan vital 悲しい.flac"
    song.parent.mkdir()
    song.write_bytes(tracks["a"].read_bytes())
    track = catalog.upsert_track(str(song), size=1, mtime_ns=1, title="Élan 悲しい", artist="Ørn")
    catalog.put_prediction(track, PACK, scores(happy=0.9))

    write_playlists(catalog, PackStore().get(PACK), folder)

    raw = (folder / "happy.m3u8").read_bytes()
    assert raw.decode("utf-8").startswith("#EXTM3U\n")
    happy = read_back(folder, "happy")
    assert happy.segments[0].title == "Ørn - Élan 悲しい"
    assert happy.segments[0].duration == -1  # unknown duration
    assert (folder / happy.segments[0].uri).resolve() == song


def test_old_playlists_of_tags_without_tracks_go_and_other_files_stay(catalog, tracks, tmp_path):
    ids = fill(catalog, tracks)
    pack = PackStore().get(PACK)
    write_playlists(catalog, pack, tmp_path)
    own = tmp_path / "my mix.m3u8"
    own.write_text("#EXTM3U\nsong.flac\n", encoding="utf-8")
    catalog.set_decision(ids["c"], "calm", "reject")

    written = write_playlists(catalog, pack, tmp_path)

    assert ("calm", 0) in [(p.tag, p.tracks) for p in written]
    assert not (tmp_path / "calm.m3u8").exists()
    assert own.read_text(encoding="utf-8") == "#EXTM3U\nsong.flac\n"


def test_the_command_writes_the_active_packs_playlists(tracks, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    config.save_setting("active_pack", PACK)
    with Catalog(config.catalog_path()) as catalog:
        fill(catalog, tracks)
    folder = tmp_path / "lists"

    assert main(["playlists", str(folder), "--min-score", "0.4"]) == 0

    assert sorted(p.name for p in folder.iterdir()) == ["happy.m3u8"]
    assert len(read_back(folder, "happy").segments) == 2
    assert capsys.readouterr().err.strip() == f"1 playlist (starter) in {folder}"
