"""Where the GUI keeps what it remembers.

The library's folders belong with the catalog, so they live in moodlib's own settings
(``config``, under ``MOODLIB_HOME``, shared with the CLI); the window's geometry, layout and
view choices are the desktop's business and live in ``QSettings`` (organisation "moodlib").
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from moodlib import config

ORGANISATION = "moodlib"
APPLICATION = "moodlib"
FOLDERS_KEY = "library_folders"


def ui_settings() -> QSettings:
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
    )


def library_folders() -> list[str]:
    return [str(p) for p in config.load_settings().get(FOLDERS_KEY, [])]


def save_library_folders(folders: list[str]) -> None:
    config.save_setting(FOLDERS_KEY, [str(Path(f)) for f in folders])
