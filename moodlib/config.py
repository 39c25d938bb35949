"""Where moodlib keeps its files, and the few settings the CLI and GUI share.

``MOODLIB_HOME`` overrides the location (the platform's user data folder by default); it
holds ``catalog.sqlite``, ``packs/`` and ``settings.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from moodlib.tags import DEFAULT_MAX_TAGS

# The shipped official MTG-Jamendo baseline: all 56 tags, a fifth of the starter pack's scan
# CPU time, and a better base for personal packs (docs/default-pack.md).
DEFAULT_PACK = "mtg-baseline"
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
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def active_pack_name() -> str:
    """The pack a scan uses when none is named: the user's choice, else the shipped default."""
    return load_settings().get("active_pack", DEFAULT_PACK)


def max_tags() -> int | None:
    """At most how many tags a file gets (``tags.tags_to_write``): the user's setting, else
    ``DEFAULT_MAX_TAGS``; None: every tag that reaches its threshold."""
    value = load_settings().get(MAX_TAGS_KEY, DEFAULT_MAX_TAGS)
    valid = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    return value if valid else DEFAULT_MAX_TAGS


def save_max_tags(value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"at least one tag per file, or None for no limit; not {value}")
    save_setting(MAX_TAGS_KEY, value)
