"""Take ``docs/screenshots/main-window.png``: the app at 1280x800 on a scanned real library.

Runs the real app in a throwaway ``MOODLIB_HOME`` with the shipped ``mtg-baseline`` pack (the
default), adds the Singularity soundtrack (Debian ``singularity-music``) as the library, scans
it, reviews two tags of one track and grabs the window. Run it on a display, for instance a
virtual one:

    Xvfb :99 -screen 0 1280x800x24 &
    DISPLAY=:99 python docs/screenshots/take_screenshot.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MUSIC = Path("/usr/share/games/singularity/music")
TRACK = "Advanced Simulacra"  # one with a tag reaching its threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--music", type=Path, default=MUSIC)
    parser.add_argument("--out", type=Path, default=HERE / "main-window.png")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="moodlib-screenshot-") as tmp:
        os.environ["MOODLIB_HOME"] = str(Path(tmp) / "home")
        from PySide6.QtCore import QSettings

        # A fresh window layout, not the one of the person running this.
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)

        from moodlib.gui.app import application

        app = application()
        from moodlib.gui.main_window import MainWindow

        window = MainWindow()
        window.resize(1280, 800)
        window.show()

        def wait(condition, seconds: float = 300.0) -> None:
            deadline = time.monotonic() + seconds
            while not condition():
                if time.monotonic() > deadline:
                    raise TimeoutError("the app did not get there in time")
                app.processEvents()
                time.sleep(0.02)

        window.scans.add_folder(args.music)
        wait(lambda: not window.busy)
        track = window.catalog.track_by_path(str(args.music / f"{TRACK}.ogg"))
        window.select_track(track.id)
        wait(lambda: window.panel.preview is not None)
        window.panel.decide("accept")
        window.panel.decide("reject")
        window.panel.move_tag(-2)
        window.table.setFocus()
        deadline = time.monotonic() + 1.0  # let the plots settle
        while time.monotonic() < deadline:
            app.processEvents()
        window.grab().save(str(args.out))
        print(f"saved {args.out}")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
