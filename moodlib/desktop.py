"""Desktop integration: the menu entry, AppStream metainfo and icons, installed the XDG way.

The files ship in ``moodlib/resources/desktop/`` (so a wheel, an editable install and the
bundle all carry them; ``packaging/render_icons.py`` renders the PNGs from the SVG).
``install`` puts them where desktops look (the XDG base directory and icon theme
specifications), under ``$XDG_DATA_HOME`` (default ``~/.local/share``):

- ``applications/APP_ID.desktop``, its ``Exec`` line the command that runs this moodlib;
- ``metainfo/APP_ID.metainfo.xml`` (software centres);
- ``icons/hicolor/scalable/apps/APP_ID.svg`` and ``icons/hicolor/NxN/apps/APP_ID.png``;

and links ``~/.local/bin/moodlib`` to that command, so ``moodlib`` is on the PATH of the
desktops and shells that put ``~/.local/bin`` there (most do).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

APP_ID = "io.github.moodlib.moodlib"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
RESOURCES = Path(__file__).resolve().parent / "resources" / "desktop"
COMMAND_NAME = "moodlib"


def desktop_entry() -> Path:
    return RESOURCES / f"{APP_ID}.desktop"


def metainfo() -> Path:
    return RESOURCES / f"{APP_ID}.metainfo.xml"


def icon_svg() -> Path:
    return RESOURCES / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"


def icon_png(size: int) -> Path:
    return RESOURCES / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


def data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def bin_home() -> Path:
    """Where user commands go: ``~/.local/bin`` (the XDG base directory specification)."""
    return Path.home() / ".local" / "bin"


def launcher_command() -> list[str]:
    """The command that runs this moodlib: the bundle's program, the ``moodlib`` script of
    the environment it is installed in, or this Python with ``-m moodlib``."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == COMMAND_NAME and script.is_file():
        return [str(script.absolute())]
    return [sys.executable, "-m", "moodlib"]


@dataclass
class Installed:
    """What ``install`` wrote, and what happened to the command link."""

    files: list[Path] = field(default_factory=list)
    command_link: Path | None = None  # the link made on the PATH, if any
    link_problem: str | None = None  # why no link was made


def install(
    *, command: Sequence[str], data_dir: Path | None = None, bin_dir: Path | None = None
) -> Installed:
    """Install the desktop entry (running ``command``), metainfo and icons into ``data_dir``
    (default ``data_home()``) and link ``bin_dir/moodlib`` (default ``bin_home()``) to
    ``command`` when it is one program. Files are replaced; a ``moodlib`` in ``bin_dir`` that
    is not a link is left alone (``link_problem`` says so)."""
    data_dir = data_home() if data_dir is None else Path(data_dir)
    bin_dir = bin_home() if bin_dir is None else Path(bin_dir)
    installed = Installed()
    entry = data_dir / "applications" / desktop_entry().name
    _write(entry, exec_line_set(desktop_entry().read_text(encoding="utf-8"), command))
    installed.files.append(entry)
    copies = [(metainfo(), data_dir / "metainfo" / metainfo().name)]
    icons = data_dir / "icons" / "hicolor"
    copies.append((icon_svg(), icons / "scalable" / "apps" / icon_svg().name))
    copies += [(icon_png(n), icons / f"{n}x{n}" / "apps" / icon_png(n).name) for n in ICON_SIZES]
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        installed.files.append(target)
    _link_command(command, bin_dir / COMMAND_NAME, installed)
    return installed


def exec_line_set(entry_text: str, command: Sequence[str]) -> str:
    """The desktop entry with its ``Exec`` line running ``command gui``."""
    line = "Exec=" + " ".join(_exec_argument(part) for part in [*command, "gui"])
    return re.sub(r"(?m)^Exec=.*$", lambda _match: line, entry_text, count=1)


def _exec_argument(argument: str) -> str:
    """One argument of an ``Exec`` key, quoted as the desktop entry specification says, then
    escaped as a string value (backslashes doubled)."""
    if re.fullmatch(r"[\w/.+,:@=-]+", argument):
        quoted = argument
    else:
        quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", argument) + '"'
    return quoted.replace("\\", "\\\\").replace("%", "%%")


def _link_command(command: Sequence[str], link: Path, installed: Installed) -> None:
    if len(command) != 1:
        installed.link_problem = f"{' '.join(command)} is not one program to link to"
        return
    if link.exists() and not link.is_symlink():
        installed.link_problem = f"{link} exists and is not a link: left alone"
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.moodlib-link")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(command[0])
    os.replace(temporary, link)
    installed.command_link = link


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
