"""Desktop integration: the shipped entry, metainfo and icons validate, and
``moodlib desktop-install`` puts them in the XDG places of a temporary home.

The validators are Debian's ``desktop-file-validate`` (desktop-file-utils) and
``appstreamcli`` (appstream), as software centres and distributions run them.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from moodlib import __version__, desktop

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "moodlib"  # the console script of this environment


def requires(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


@requires("desktop-file-validate")
def test_the_desktop_entry_validates() -> None:
    checked = run("desktop-file-validate", desktop.desktop_entry())
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


@requires("appstreamcli")
def test_the_metainfo_validates_pedantically() -> None:
    checked = run("appstreamcli", "validate", "--no-net", "--pedantic", desktop.metainfo())
    assert checked.returncode == 0, checked.stdout
    assert "Validation was successful." in checked.stdout  # no pedantic remark either


def test_the_metainfo_shows_the_screenshot_this_release_and_a_content_rating() -> None:
    component = ElementTree.parse(desktop.metainfo()).getroot()
    assert component.findtext("id") == desktop.APP_ID
    assert component.findtext("launchable") == desktop.desktop_entry().name
    image = component.findtext("screenshots/screenshot/image")
    assert image.endswith("/docs/screenshots/main-window.png")
    assert (ROOT / "docs" / "screenshots" / "main-window.png").is_file()
    assert component.find("releases/release").get("version") == __version__
    assert component.find("content_rating").get("type").startswith("oars-")


def test_the_icons_are_the_svg_and_pngs_of_the_usual_sizes() -> None:
    assert desktop.icon_svg().read_text(encoding="utf-8").lstrip().startswith("<?xml")
    for size in desktop.ICON_SIZES:
        assert png_size(desktop.icon_png(size)) == (size, size)


@requires("desktop-file-validate")
def test_desktop_install_puts_everything_in_the_xdg_places(tmp_path) -> None:
    if not SCRIPT.is_file():
        pytest.skip(f"no moodlib script beside {sys.executable}")
    home, data = tmp_path / "home", tmp_path / "data"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(data), "PYTHONPATH": str(ROOT)}

    done = run(SCRIPT, "desktop-install", env=env)

    assert done.returncode == 0, done.stderr
    entry = data / "applications" / f"{desktop.APP_ID}.desktop"
    assert f"Exec={SCRIPT.absolute()} gui\n" in entry.read_text(encoding="utf-8")
    assert run("desktop-file-validate", entry).returncode == 0
    assert (data / "metainfo" / f"{desktop.APP_ID}.metainfo.xml").is_file()
    icons = data / "icons" / "hicolor"
    assert (icons / "scalable" / "apps" / f"{desktop.APP_ID}.svg").is_file()
    for size in desktop.ICON_SIZES:
        assert png_size(icons / f"{size}x{size}" / "apps" / f"{desktop.APP_ID}.png") == (size, size)
    link = home / ".local" / "bin" / "moodlib"
    assert link.resolve() == SCRIPT.resolve()
    assert run(link, "--version", env=env).stdout.strip() == f"moodlib {__version__}"


def test_a_moodlib_program_of_the_users_own_is_not_replaced(tmp_path) -> None:
    own = tmp_path / "bin" / "moodlib"
    own.parent.mkdir()
    own.write_text("#!/bin/sh\necho mine\n")

    installed = desktop.install(
        command=["/opt/moodlib/moodlib"], data_dir=tmp_path, bin_dir=own.parent
    )

    assert own.read_text() == "#!/bin/sh\necho mine\n"
    assert installed.command_link is None and "left alone" in installed.link_problem
    assert (tmp_path / "applications" / f"{desktop.APP_ID}.desktop").is_file()


@pytest.mark.parametrize(
    ("command", "exec_line"),
    [
        (["/opt/moodlib/moodlib"], "Exec=/opt/moodlib/moodlib gui"),
        (["/home/me/My Apps/moodlib"], 'Exec="/home/me/My Apps/moodlib" gui'),
        (["/usr/bin/python3", "-m", "moodlib"], "Exec=/usr/bin/python3 -m moodlib gui"),
        (["/srv/100%/$x"], 'Exec="/srv/100%%/\\\\$x" gui'),
    ],
)
def test_the_exec_line_quotes_as_the_specification_says(command, exec_line) -> None:
    text = desktop.exec_line_set(desktop.desktop_entry().read_text(encoding="utf-8"), command)
    assert [line for line in text.splitlines() if line.startswith("Exec=")] == [exec_line]
