"""Render the app icon's PNG sizes from its SVG (the hicolor theme's usual sizes).

    python packaging/render_icons.py

Reads ``moodlib/resources/desktop/icons/hicolor/scalable/apps/APP_ID.svg`` and writes
``hicolor/NxN/apps/APP_ID.png`` beside it for each of ``ICON_SIZES``, with Qt's SVG renderer.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from moodlib.desktop import ICON_SIZES, icon_png, icon_svg


def render(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(icon_svg())).render(painter)
    painter.end()
    return image


def main() -> int:
    QGuiApplication(sys.argv[:1])
    for size in ICON_SIZES:
        path = icon_png(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render(size).save(str(path), "PNG"):
            raise SystemExit(f"error: {path}: could not be written")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
