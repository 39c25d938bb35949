"""Where the GUI keeps what it remembers.

The library's folders belong with the catalog, so they live in moodlib's own settings
(``config``, under ``MOODLIB_HOME``, shared with the CLI); the window's geometry, layout and
view choices are the desktop's business and live in ``QSettings`` (organisation "moodlib").
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANISATION = "moodlib"
APPLICATION = "moodlib"


def ui_settings() -> QSettings:
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
    )
