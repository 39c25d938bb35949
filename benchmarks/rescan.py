"""``moodlib scan`` at library scale: an unchanged library rescanned, and the memory of a scan.

Synthetic short WAV files (noise, in folders of 1000) stand in for a library; each measurement
is a whole ``moodlib scan`` process (imports included), timed as ``scan_throughput.py`` times
its contestants:

- ``rescan`` (``--files``, 100 000 by default): the catalog already holds every file, with its
  size, mtime and a prediction from the pack, as a finished scan leaves it (written through
  the ``Catalog`` API before the clock starts). Nothing needs tagging, so no model is loaded.
- ``cold scan`` (``--cold``, e.g. 10 000): every file is decoded and tagged into an empty
  catalog; its peak RSS shows whether memory grows with the library.

    python benchmarks/rescan.py [--files 100000] [--cold 10000] [--pack starter]

Results are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scan_throughput import ROOT, Run, fresh_home, run_timed

from moodlib import config, vocabulary
from moodlib.library.catalog import Catalog

RATE = 16000


def make_files(root: Path, count: int, seconds: float) -> list[Path]:
    """``count`` mono 16-bit WAV files of ``seconds`` of noise, 1000 to a folder."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, round(seconds * RATE)).astype(np.float32)
    files = []
    for i in range(count):
        folder = root / f"{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        path = folder / f"track{i:06d}.wav"
        sf.write(path, noise, RATE, subtype="PCM_16")
        files.append(path)
    return files


def record_as_scanned(catalog_path: Path, files: list[Path], pack: str, seconds: float) -> None:
    """What a finished scan leaves in the catalog: each file's state and a prediction."""
    scores = np.full(len(vocabulary.TAGS), 0.25, np.float32)
    with Catalog(catalog_path) as catalog:
        for path in files:
            stat = path.stat()
            track = catalog.upsert_track(
                str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, duration=seconds,
                format="pcm_s16le",
            )  # fmt: skip
            catalog.put_prediction(track, pack, scores)


def timed_scan(name: str, root: Path, home: Path, pack: str, log: Path) -> tuple[Run, str]:
    """Run ``moodlib scan`` on ``root`` in ``home``; the run and its summary line."""
    env = {
        **os.environ,
        "MOODLIB_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "moodlib", "scan", str(root), "--pack", pack]
    run = run_timed(name, [*command, "--device", "cpu"], log, env)
    summaries = re.findall(r"^\d+ tagged, .*$", log.read_text(), re.MULTILINE)
    return run, summaries[-1]


def report(run: Run, files: int, summary: str) -> None:
    print(
        f"{run.name}, {files} files: {run.wall:.1f} s wall, {run.cpu:.1f} s CPU"
        f" ({run.system:.1f} s system), peak RSS {run.peak_rss_mib:.0f} MiB,"
        f" load {run.load_before:.1f} before; moodlib said: {summary}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="0: no rescan")
    parser.add_argument("--cold", type=int, default=0, help="files of a cold scan (0: none)")
    parser.add_argument("--pack", default=config.DEFAULT_PACK)
    args = parser.parse_args()
    packs = config.packs_dir()
    with tempfile.TemporaryDirectory(prefix="rescan-") as tmp:
        tmp = Path(tmp).resolve()
        log = tmp / "output.log"
        if args.files:
            files = make_files(tmp / "library", args.files, seconds=0.1)
            home = fresh_home(tmp, packs)
            record_as_scanned(home / "catalog.sqlite", files, args.pack, seconds=0.1)
            run, summary = timed_scan("rescan", tmp / "library", home, args.pack, log)
            report(run, args.files, summary)
        if args.cold:
            files = make_files(tmp / "cold", args.cold, seconds=1.0)
            run, summary = timed_scan(
                "cold scan", tmp / "cold", fresh_home(tmp, packs), args.pack, log
            )
            report(run, args.cold, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
