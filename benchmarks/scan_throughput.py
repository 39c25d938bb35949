"""Whole-process speed of ``moodlib scan`` on real music, against the decode floor, a naive
pipeline of the same models and the vibenet CLI, on the same files in one run.

Each contestant is a separate process, timed from start to exit (imports and model loading
included), on copies of the first ``--tracks`` files of ``--music`` (by default the Debian
``singularity-music`` soundtrack, Ogg Vorbis):

- ``decode floor``: every file decoded whole to 16 kHz mono with soundfile and soxr (VHQ), in
  one thread: what a tagger that reads whole files pays at least;
- ``scan PACK``: ``moodlib scan`` into an empty catalog on ``--device`` (the CPU by
  default), for each pack named;
- ``naive PACK``: ``benchmarks/naive_pipeline.py``, the same models the obvious way (librosa
  load and mel, one track at a time);
- ``vibenet``: the ``vibenet`` CLI (PyPI ``vibenet``, an ONNX EfficientNet for 7 attributes),
  when it is on PATH or given with ``--vibenet``. This script installs nothing.

The contestants run in turn for ``--repeat`` rounds (A B C A B C ...) so that the load of other
processes falls on all of them alike; the medians are reported: wall seconds, seconds per
track, CPU seconds (user + system), system seconds, peak RSS, and the ratios of each pack's
scan to the naive pipeline, to vibenet and to the decode floor. The scan's scores are compared
with the naive pipeline's (the largest difference over the tags the pack predicts).

    python benchmarks/scan_throughput.py starter mtg-baseline [--tracks 12] [--repeat 3] \\
        [--json results.json]

Packs are looked up as ``moodlib scan --pack`` does (shipped packs and those installed in
``MOODLIB_HOME``); each scan gets a fresh ``MOODLIB_HOME`` sharing the installed packs.
Results are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from moodlib import config
from moodlib.library.catalog import Catalog

MUSIC = Path("/usr/share/games/singularity/music")
ROOT = Path(__file__).resolve().parents[1]
FLOOR_RATE = 16000

DECODE_FLOOR = f"""
import sys
import soundfile, soxr
for path in sys.argv[1:]:
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    soxr.resample(samples.mean(axis=1), rate, {FLOOR_RATE}, "VHQ")
"""


@dataclass
class Run:
    """One contestant's process: wall, CPU and system seconds, peak RSS in MiB."""

    name: str
    wall: float
    cpu: float
    system: float
    peak_rss_mib: float
    load_before: float


def run_timed(name: str, command: list[str], log: Path, env: dict[str, str]) -> Run:
    """Run ``command`` to its end and measure it (its own rusage, through ``wait4``)."""
    load = os.getloadavg()[0]
    with log.open("ab") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=output, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise SystemExit(f"{name} failed (exit {process.returncode}):\n" + "\n".join(tail))
    return Run(
        name,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_stime,
        usage.ru_maxrss / 1024,
        load,
    )


def copy_library(music: Path, tracks: int, dest: Path) -> list[Path]:
    sources = sorted(p for p in music.iterdir() if p.suffix.lower() in {".ogg", ".flac", ".mp3"})
    if len(sources) < tracks:
        raise SystemExit(f"{music} holds {len(sources)} tracks, fewer than --tracks {tracks}")
    dest.mkdir(parents=True)
    return [Path(shutil.copy2(source, dest / source.name)) for source in sources[:tracks]]


def fresh_home(parent: Path, packs: Path) -> Path:
    """An empty MOODLIB_HOME that sees the installed packs."""
    home = Path(tempfile.mkdtemp(dir=parent, prefix="home-"))
    if packs.is_dir():
        (home / "packs").symlink_to(packs)
    return home


def score_difference(catalog_path: Path, pack: str, naive_json: Path) -> float:
    """The largest |scan score - naive score| over every track and predicted tag."""
    naive = json.loads(naive_json.read_text())
    worst = 0.0
    with Catalog(catalog_path) as catalog:
        for path, scores in naive.items():
            track = catalog.track_by_path(path)
            ours = catalog.prediction(track.id, pack)
            theirs = np.array([np.nan if s is None else s for s in scores], np.float32)
            worst = max(worst, float(np.nanmax(np.abs(ours - theirs))))
    return worst


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def duration_minutes(files: list[Path]) -> float:
    import soundfile

    return sum(soundfile.info(f).duration for f in files) / 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packs", nargs="*", default=[config.DEFAULT_PACK], metavar="PACK")
    parser.add_argument("--tracks", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--music", type=Path, default=MUSIC)
    parser.add_argument("--device", default="cpu", help="the scans' device (naive: CPU)")
    parser.add_argument("--vibenet", help="the vibenet command (default: 'vibenet' on PATH)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    args = parser.parse_args()
    if not args.music.is_dir():
        print(f"needs {args.music} (apt install singularity-music)", file=sys.stderr)
        return 2
    vibenet = args.vibenet or shutil.which("vibenet")

    with tempfile.TemporaryDirectory(prefix="scan-throughput-") as tmp:
        tmp = Path(tmp)
        files = copy_library(args.music, args.tracks, tmp / "music")
        names = [str(f) for f in files]
        log = tmp / "output.log"
        # moodlib's own processes import this checkout; vibenet runs in its own environment.
        ours = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        python = sys.executable
        contestants: list[tuple[str, list[str], str | None]] = [
            ("decode floor", [python, "-c", DECODE_FLOOR, *names], None)
        ]
        for pack in args.packs:
            scan = [python, "-m", "moodlib", "scan", str(tmp / "music"), "--pack", pack]
            contestants.append((f"scan {pack}", [*scan, "--device", args.device], pack))
            if not args.no_naive:
                naive_out = str(tmp / f"naive-{pack}.json")
                naive = [python, str(ROOT / "benchmarks" / "naive_pipeline.py"), "--pack", pack]
                contestants.append((f"naive {pack}", [*naive, "--out", naive_out, *names], pack))
        if vibenet:
            contestants.append(("vibenet", [vibenet, "-q", "-f", "json", str(tmp / "music")], None))

        runs: list[Run] = []
        last_home: dict[str, Path] = {}
        for round_ in range(args.repeat):
            for name, command, pack in contestants:
                home = fresh_home(tmp, config.packs_dir())
                env = os.environ if name == "vibenet" else {**ours, "MOODLIB_HOME": str(home)}
                run = run_timed(name, command, log, env)
                runs.append(run)
                if name.startswith("scan "):
                    last_home[pack] = home
                print(
                    f"round {round_ + 1}: {name:<22} {run.wall:6.2f} s wall, {run.cpu:6.2f} s CPU,"
                    f" {run.peak_rss_mib:5.0f} MiB (load {run.load_before:.1f})",
                    file=sys.stderr,
                )
        differences = {}
        if not args.no_naive:
            for pack in args.packs:
                differences[pack] = score_difference(
                    last_home[pack] / "catalog.sqlite", pack, tmp / f"naive-{pack}.json"
                )
        minutes = duration_minutes(files)

    medians = {}
    for name, _, _ in contestants:
        mine = [r for r in runs if r.name == name]
        medians[name] = {
            key: statistics.median(getattr(r, key) for r in mine)
            for key in ("wall", "cpu", "system", "peak_rss_mib")
        }
    # Ratios of wall times within each round (whose runs shared the same load), then the
    # median over rounds.
    walls = {name: [r.wall for r in runs if r.name == name] for name in medians}
    ratios = {}
    for pack in args.packs:
        others = {"decode floor": "decode floor", "naive": f"naive {pack}", "vibenet": "vibenet"}
        ratios[pack] = {
            f"{label} / scan": statistics.median(
                a / b for a, b in zip(walls[other], walls[f"scan {pack}"], strict=True)
            )
            for label, other in others.items()
            if other in walls
        }
        ratios[pack]["max score difference to naive"] = differences.get(pack)

    n = len(files)
    print(
        f"\n{n} tracks, {minutes:.1f} minutes of audio; medians of {args.repeat} rounds"
        " (ratios: of the ratios within each round) on"
        f" {cpu_model()}, {len(os.sched_getaffinity(0))} cores"
    )
    print("| process | wall s | s/track | CPU s | system s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, m in medians.items():
        print(
            f"| {name} | {m['wall']:.1f} | {m['wall'] / n:.2f} | {m['cpu']:.1f} "
            f"| {m['system']:.1f} | {m['peak_rss_mib']:.0f} |"
        )
    if not vibenet:
        print("| vibenet | not installed | | | | |")
    for pack, r in ratios.items():
        parts = [
            f"{key} {value:.2f}"
            for key, value in r.items()
            if value is not None and "score" not in key
        ]
        difference = r["max score difference to naive"]
        if difference is not None:
            parts.append(f"scores differ from the naive pipeline's by {difference:.1e} at most")
        print(f"{pack}: " + ", ".join(parts))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "tracks": n,
                    "audio_minutes": minutes,
                    "repeat": args.repeat,
                    "machine": {
                        "cpu": cpu_model(),
                        "cores": len(os.sched_getaffinity(0)),
                        "python": platform.python_version(),
                    },
                    "vibenet": vibenet or "not installed",
                    "runs": [asdict(r) for r in runs],
                    "medians": medians,
                    "ratios": ratios,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
