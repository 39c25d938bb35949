"""Fixtures shared by the whole test suite.

Real-music fixtures
    ``real_music_library``: one excerpt per container (see ``media.ENCODINGS``), built once per
    session and read-only; ``music_copy``: a private, writable copy of it for one test.

``catalog``: an empty catalog of one test's own.
"""

from __future__ import annotations

import stat
from pathlib import Path

import media
import pytest

from moodlib.library.catalog import Catalog

# Short excerpts keep the session build to a couple of seconds.
LIBRARY_SECONDS = 10.0
LIBRARY_OFFSET = 60.0


@pytest.fixture
def catalog(tmp_path: Path):
    with Catalog(tmp_path / "catalog.sqlite") as opened:
        yield opened


@pytest.fixture(scope="session")
def real_music_library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Format name -> file, shared by all tests: copy before modifying (see ``music_copy``).

    The files are made read-only so that a test writing to them fails loudly.
    """
    reason = media.missing_tools()
    if reason is not None:
        pytest.skip(f"cannot build the real-music library: {reason}")
    library = media.make_library(
        tmp_path_factory.mktemp("real_music"), seconds=LIBRARY_SECONDS, offset=LIBRARY_OFFSET
    )
    for path in library.values():
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return library


@pytest.fixture
def music_copy(real_music_library: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """Format name -> file in a fresh, writable copy of ``real_music_library``."""
    return media.copy_library(real_music_library, tmp_path / "music")
