"""The one-folder desktop bundle (PyInstaller, CPU): built from this tree, it runs
``moodlib --version``, a headless scan of a small real library, the app offscreen and its own
``desktop-install``, and it carries no CUDA library.

``packaging/build_bundle.py --cached`` builds it (about 3 minutes of CPU time) or reuses the
bundle of an unchanged tree. Its build environment (a CPU torch, PyInstaller: a few minutes
and about 1.5 GB) is made by ``.ci/run``; without it this test skips and says how to make it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from media import copy_library

from moodlib import __version__
from moodlib.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "packaging" / "build_bundle.py"
CUDA_LIBRARIES = ("libcuda", "libcudart", "libcublas", "libcudnn", "libtorch_cuda", "libnccl")

pytestmark = pytest.mark.slow


def build_script():
    spec = importlib.util.spec_from_file_location("build_bundle", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The bundle's folder (``moodlib`` in it is the program)."""
    script = build_script()
    cache = Path(os.environ.get("MOODLIB_BUNDLE_CACHE", Path.home() / ".cache/moodlib-bundle"))
    key = script.environment_key(script.requirements(script.DEFAULT_TORCH), [])
    if not (cache / f"venv-{key}" / ".complete").is_file():
        pytest.skip(f"no bundle build environment: run python3 {BUILD_SCRIPT} --environment-only")
    built = subprocess.run(
        [sys.executable, BUILD_SCRIPT, "--cached"], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1])


def run_bundle(bundle: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "QT_"))},
        "MOODLIB_HOME": str(home / "moodlib"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "QT_QPA_PLATFORM": "offscreen",
    }
    return subprocess.run(
        [str(bundle / "moodlib"), *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_the_bundle_says_its_version(bundle, tmp_path) -> None:
    done = run_bundle(bundle, "--version", home=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"moodlib {__version__}")


def test_the_bundle_carries_no_cuda_library(bundle) -> None:
    names = [path.name for path in bundle.rglob("*") if path.is_file()]
    assert not [name for name in names if name.startswith(CUDA_LIBRARIES)]
    assert "libtorch_cpu.so" in names


def test_the_bundle_scans_a_library_as_the_source_tree_does(
    bundle, real_music_library, tmp_path, monkeypatch, capsys
) -> None:
    music = copy_library(
        {fmt: real_music_library[fmt] for fmt in ("ogg", "m4a", "ape", "mpc")}, tmp_path / "music"
    )
    report = tmp_path / "bundle.json"

    done = run_bundle(bundle, "scan", str(tmp_path / "music"), "--json", str(report), home=tmp_path)

    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "source-home"))
    assert main(["scan", str(tmp_path / "music"), "--json", str(tmp_path / "source.json")]) == 0
    from_bundle = {t["path"]: t for t in json.loads(report.read_text())["tracks"]}
    from_source = {
        t["path"]: t for t in json.loads((tmp_path / "source.json").read_text())["tracks"]
    }
    assert sorted(from_bundle) == sorted(str(path) for path in music.values())
    for path, track in from_bundle.items():
        assert track["error"] is None
        assert track["scores"] == pytest.approx(from_source[path]["scores"], abs=1e-3)
        assert track["tags"] == from_source[path]["tags"]


def test_the_bundle_opens_the_app_offscreen(bundle, tmp_path) -> None:
    picture = tmp_path / "window.png"

    done = run_bundle(bundle, "gui", "--screenshot", str(picture), home=tmp_path)

    assert done.returncode == 0, done.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_bundle_puts_itself_in_the_menu_and_on_the_path(bundle, tmp_path) -> None:
    done = run_bundle(bundle, "desktop-install", home=tmp_path)

    assert done.returncode == 0, done.stderr
    entry = tmp_path / ".local" / "share" / "applications" / "io.github.moodlib.moodlib.desktop"
    assert f"Exec={bundle / 'moodlib'} gui\n" in entry.read_text(encoding="utf-8")
    link = tmp_path / ".local" / "bin" / "moodlib"
    assert link.resolve() == (bundle / "moodlib").resolve()
    assert run_bundle(link.parent, "--version", home=tmp_path).stdout.startswith("moodlib ")
