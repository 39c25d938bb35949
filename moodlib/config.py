"""Where moodlib keeps its files, and the few settings the CLI and GUI share.

``MOODLIB_HOME`` overrides the location (the platform's user data folder by default); it
holds ``catalog.sqlite``, ``packs/`` and ``settings.json``. The settings hold the active pack
and the library's folders: the folders the app's "Library folders" panel shows, which a
``moodlib scan`` of a folder adds to and a ``moodlib scan`` without one scans.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from moodlib.library.paths import resolve_path
from moodlib.vocabulary import DEFAULT_MAX_TAGS

# The shipped official MTG-Jamendo baseline: all 56 tags, a fifth of the starter pack's scan
# CPU time, and a better base for personal packs (docs/default-pack.md).
DEFAULT_PACK = "mtg-baseline"
LIBRARY_FOLDERS_KEY = "library_folders"
MAX_TAGS_KEY = "max_tags"


def home() -> Path:
    """The folder holding the catalog, installed packs and settings (created on demand)."""
    override = os.environ.get("MOODLIB_HOME")
    path = Path(override).expanduser() if override else Path(user_data_dir("moodlib", False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def catalog_path() -> Path:
    return home() / "catalog.sqlite"


def packs_dir() -> Path:
    return home() / "packs"


def _settings_path() -> Path:
    return home() / "settings.json"


def load_settings() -> dict[str, Any]:
    try:
        return json.loads(_settings_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_setting(key: str, value: Any) -> None:
    settings = load_settings()
    settings[key] = value
    path = _settings_path()
    # A temporary file of its own: the app and a CLI command may save at the same time.
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=".settings-", suffix=".tmp", delete=False
    ) as temporary:
        temporary.write(json.dumps(settings, indent=2) + "\n")
    os.replace(temporary.name, path)


def active_pack_name() -> str:
    """The pack a scan uses when none is named: the user's choice, else the shipped default."""
    return load_settings().get("active_pack", DEFAULT_PACK)


def library_folders() -> list[str]:
    """The library's folders (absolute), in the order they were added."""
    return [str(folder) for folder in load_settings().get(LIBRARY_FOLDERS_KEY, [])]


def add_library_folders(folders: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Add ``folders`` to the library; returns the ones that were not in it yet.

    A folder at or below one of the library's is already in it; one above some of them takes
    their place (its scans cover them).
    """
    library = library_folders()
    added = []
    for folder in folders:
        folder = resolve_path(folder)
        if any(_within(folder, known) for known in library):
            continue
        library = [known for known in library if not _within(known, folder)] + [folder]
        added.append(folder)
    if added:
        save_setting(LIBRARY_FOLDERS_KEY, library)
    return added


def remove_library_folder(folder: str | os.PathLike[str]) -> None:
    """Take ``folder`` out of the library (its files stay where they are)."""
    folder = resolve_path(folder)
    save_setting(LIBRARY_FOLDERS_KEY, [known for known in library_folders() if known != folder])


def _within(path: str, folder: str) -> bool:
    return Path(path).is_relative_to(folder)


def max_tags() -> int | None:
    """At most how many tags a file gets (``vocabulary.tags_to_write``): the user's setting, else
    ``DEFAULT_MAX_TAGS``; None: every tag that reaches its threshold."""
    value = load_settings().get(MAX_TAGS_KEY, DEFAULT_MAX_TAGS)
    valid = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    return value if valid else DEFAULT_MAX_TAGS


def save_max_tags(value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"at least one tag per file, or None for no limit; not {value}")
    save_setting(MAX_TAGS_KEY, value)
