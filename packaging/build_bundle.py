"""Build moodlib's one-folder desktop bundle with PyInstaller, for the CPU.

    python3 packaging/build_bundle.py [--dist DIR | --cached | --environment-only]
                                      [--torch REQUIREMENT] [--pip-arg ARG]...

Two steps:

1. A build environment: a virtual environment holding moodlib's runtime dependencies (the
   ``gui`` extra included), a CPU build of torch and PyInstaller. It is cached outside the
   checkout, in ``$MOODLIB_BUNDLE_CACHE`` (default ``~/.cache/moodlib-bundle``), under a key
   made of the requirement list, the pip arguments and the Python version, so it is built once
   per dependency change (``--environment-only`` stops there: CI prepares it so).
2. PyInstaller runs ``packaging/moodlib.spec``: ``DIST/moodlib/moodlib`` is the program and
   ``DIST/moodlib/`` is everything it needs (``docs/bundle.md`` records its size). With
   ``--cached`` the bundle goes into the cache too, under a key of the environment and every
   file that goes into it (``moodlib/``, ``trainer/``, the spec): an unchanged tree reuses
   it, and older cached bundles are removed. The last line printed is the bundle's folder.

torch must be a CPU build: the script stops when the one installed was built with CUDA.
``--torch`` names it (default ``torch==2.13.0``: a CPU wheel this project's machines carry);
elsewhere take PyTorch's CPU index, for instance ``--torch torch
--pip-arg=--extra-index-url=https://download.pytorch.org/whl/cpu``. torchvision and timm are
left out: PyPI's torchvision needs the CUDA torch libraries, and only the timm backbones
(EfficientNet, ReXNet, MobileNetV2) need it; packs of the other architectures, the shipped
ones included, run in the bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "moodlib.spec"
DEFAULT_TORCH = "torch==2.13.0"
PYINSTALLER = "pyinstaller>=6.10"
LEFT_OUT = {"torch", "torchvision", "timm"}  # torch is added as --torch names it


def requirements(torch: str) -> list[str]:
    """The bundle's requirement list: moodlib's runtime dependencies and the ``gui`` extra,
    with ``torch`` as given and without torchvision and timm, plus PyInstaller."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["gui"]
    kept = [r for r in wanted if _name(r) not in LEFT_OUT]
    return [torch, *kept, PYINSTALLER]


def environment_key(reqs: list[str], pip_args: list[str]) -> str:
    text = "\n".join([*reqs, *pip_args, platform.python_version(), platform.machine()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_environment(reqs: list[str], pip_args: list[str], cache: Path) -> Path:
    """The cached virtual environment holding ``reqs`` (made when missing); its Python."""
    env = cache / f"venv-{environment_key(reqs, pip_args)}"
    python = env / "bin" / "python"
    if not (env / ".complete").is_file():
        print(f"building the bundle's environment in {env}", file=sys.stderr)
        shutil.rmtree(env, ignore_errors=True)
        venv.create(env, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *pip_args, *reqs], check=True)
        (env / "requirements.txt").write_text("\n".join(reqs) + "\n", encoding="utf-8")
        (env / ".complete").touch()
    cuda = subprocess.run(
        [python, "-c", "import torch; print(torch.version.cuda or '')"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if cuda:
        raise SystemExit(
            f"error: {env}: torch there is a CUDA {cuda} build; name a CPU build with --torch "
            "(and --pip-arg for its index)"
        )
    return python


def sources_key(environment: str) -> str:
    """A key of the build environment and of every file the bundle is made of."""
    digest = hashlib.sha256(environment.encode())
    files = [SPEC, Path(__file__).resolve()]
    for package in ("moodlib", "trainer"):
        files += [
            p for p in (ROOT / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_bundle(python: Path, dist: Path, work: Path) -> Path:
    """Run PyInstaller on the spec (``work``: its scratch folder); returns the bundle's folder."""
    subprocess.run(
        [python, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", dist, "--workpath", work, SPEC],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return dist / "moodlib"


def folder_size(folder: Path) -> int:
    """Bytes in the regular files below ``folder`` (links not followed)."""
    return sum(
        (Path(parent) / name).lstat().st_size
        for parent, _dirs, files in os.walk(folder)
        for name in files
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dist", type=Path, default=ROOT / "dist", help="default: dist/")
    where.add_argument("--cached", action="store_true", help="build into the cache, or reuse")
    where.add_argument("--environment-only", action="store_true", help="only the environment")
    parser.add_argument("--torch", default=DEFAULT_TORCH, help="the CPU torch requirement")
    parser.add_argument(
        "--pip-arg", action="append", default=[], help="passed to pip (repeat for several)"
    )
    args = parser.parse_args(argv)
    cache = Path(os.environ.get("MOODLIB_BUNDLE_CACHE", Path.home() / ".cache/moodlib-bundle"))
    reqs = requirements(args.torch)
    python = build_environment(reqs, args.pip_arg, cache)
    if args.environment_only:
        print(python.parent.parent)
        return 0
    if not args.cached:
        bundle = build_bundle(python, args.dist.absolute(), ROOT / "build" / "bundle")
    else:
        dist = cache / f"bundle-{sources_key(environment_key(reqs, args.pip_arg))}"
        bundle = dist / "moodlib"
        if not (dist / ".complete").is_file():
            for old in cache.glob("bundle-*"):
                shutil.rmtree(old)
            build_bundle(python, dist, cache / "work")
            (dist / ".complete").touch()
    print(f"{folder_size(bundle) / 2**20:.0f} MiB in", file=sys.stderr)
    print(bundle)
    return 0


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


if __name__ == "__main__":
    sys.exit(main())
