"""The beets plugin on a real beets library: ``beet moodlib [QUERY]`` with ``plugins: moodlib``.

beets runs as its own command (``python -m beets``) with a config and a library in the test's
folder; moodlib's catalog and packs are in the test's ``MOODLIB_HOME`` (the shipped default
pack is the active one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from media import copy_library, probed_tags

from moodlib import config
from moodlib.cli import main
from moodlib.library.catalog import Catalog
from moodlib.metadata import read_moods
from moodlib.packstore import PackStore

Library = pytest.importorskip("beets.library").Library

pytestmark = pytest.mark.slow  # beets and moodlib start a few times per test

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("flac", "ogg", "m4a")
PACK = config.DEFAULT_PACK


@pytest.fixture
def beets(real_music_library, tmp_path, monkeypatch):
    """``beets(*args, write=False)`` runs beet on a library holding one file per format of
    ``FORMATS`` (imported as they are: not copied, not autotagged); returns its stdout."""
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    music = copy_library({fmt: real_music_library[fmt] for fmt in FORMATS}, tmp_path / "music")

    def run(*args: str, write: bool = False) -> str:
        beetsdir = tmp_path / "beets"
        beetsdir.mkdir(exist_ok=True)
        (beetsdir / "config.yaml").write_text(
            f"directory: {tmp_path / 'beets-music'}\n"
            f"library: {tmp_path / 'library.db'}\n"
            "plugins: moodlib\n"
            f"import:\n  write: {'yes' if write else 'no'}\n  copy: no\n  move: no\n",
            encoding="utf-8",
        )
        env = {**os.environ, "BEETSDIR": str(beetsdir), "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "beets", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("import", "-A", "-q", str(tmp_path / "music"))
    run.music = music
    run.library = tmp_path / "library.db"
    return run


def catalog_tags(path: Path) -> list[str]:
    pack = PackStore().get(PACK)
    with Catalog(config.catalog_path()) as catalog:
        track = catalog.track_by_path(str(path))
        return catalog.final_tags(track.id, pack.name, pack.thresholds)


def moods_in_beets(beets) -> dict[str, str]:
    listing = beets("ls", "-f", "$path|%ifdef{mood,$mood}")
    return dict(line.split("|", 1) for line in listing.splitlines())


def test_moods_are_stored_then_written_with_w_reusing_the_catalog(beets, capsys):
    # beets does not write (import.write: no): the moods go into the library only.
    output = beets("moodlib")

    assert output.strip() == f"moodlib ({PACK}): {len(FORMATS)} tagged, 0 unchanged, 0 failed"
    stored = moods_in_beets(beets)
    assert set(stored) == {str(path) for path in beets.music.values()}
    tagged = 0
    for path in beets.music.values():
        tags = catalog_tags(path)
        tagged += bool(tags)
        assert stored[str(path)] == "; ".join(tags)
        assert read_moods(path) == []
    assert tagged, "the default pack tags these tracks"
    tag = catalog_tags(beets.music["ogg"])[0]
    listed = beets("ls", "-f", "$path", f"mood:{tag}").splitlines()
    assert listed == [str(p) for p in beets.music.values() if tag in catalog_tags(p)]

    # -w writes the files; the unchanged files are not decoded again.
    output = beets("moodlib", "-w")

    assert output.strip() == (
        f"moodlib ({PACK}): 0 tagged, {len(FORMATS)} unchanged, 0 failed; "
        f"{sum(bool(catalog_tags(p)) for p in beets.music.values())} files written"
    )
    for path in beets.music.values():
        assert read_moods(path) == catalog_tags(path)
    library = Library(str(beets.library))
    written = [item for item in library.items() if read_moods(item.filepath)]
    assert written
    for item in written:  # beets knows the files' new mtimes: 'beet update' has nothing to do
        assert item.mtime == item.current_mtime()
    capsys.readouterr()
    assert main(["undo"]) == 0  # the write went through moodlib's journal
    assert all(read_moods(path) == [] for path in beets.music.values())


def test_import_write_makes_beet_moodlib_write_only_the_matched_items(beets):
    ogg = beets.music["ogg"]

    output = beets("moodlib", f"title:{probed_tags(ogg)['title']}", write=True)

    assert output.strip() == f"moodlib ({PACK}): 1 tagged, 0 unchanged, 0 failed; 1 files written"
    assert read_moods(ogg) == catalog_tags(ogg) != []
    others = [path for fmt, path in beets.music.items() if fmt != "ogg"]
    assert all(read_moods(path) == [] for path in others)
    assert {moods_in_beets(beets)[str(path)] for path in others} == {""}
