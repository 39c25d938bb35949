"""Seconds per track of ``moodlib scan`` (decode + mel + inference + catalog) on real music.

Builds a library of full-length Singularity tracks (Debian ``singularity-music``) encoded to
mp3 and flac, then times a cold scan with a pack (model loading excluded) and the per-stage
costs (decode of the pack's window, mel, inference) per track.

    python benchmarks/scan_throughput.py --pack starter [--tracks 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from moodlib.audio.decode import decode, probe
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packstore import PackStore
from moodlib.pipeline import scan

MUSIC = Path("/usr/share/games/singularity/music")


def build_library(dest: Path, tracks: int) -> list[Path]:
    sources = sorted(MUSIC.glob("*.ogg"))[:tracks]
    made = []
    for i, source in enumerate(sources):
        suffix, codec = (".mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]) if i % 2 else (
            ".flac", ["-c:a", "flac"])  # fmt: skip
        out = dest / f"{source.stem}{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), *codec, str(out)],
                       check=True)  # fmt: skip
        made.append(out)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default="starter")
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not MUSIC.is_dir():
        print(f"needs {MUSIC} (apt install singularity-music)", file=sys.stderr)
        return 2
    pack = PackStore().get(args.pack)
    with tempfile.TemporaryDirectory() as tmp:
        files = build_library(Path(tmp), args.tracks)
        minutes = sum(probe(f).duration_seconds for f in files) / 60
        started = time.perf_counter()
        tagger = Tagger(pack, device=args.device)
        load_seconds = time.perf_counter() - started

        decode_s = mel_s = infer_s = 0.0
        for path in files:
            t0 = time.perf_counter()
            offset, duration = tagger.read_window(probe(path).duration_seconds)
            waveform = decode(path, sample_rate=tagger.sample_rate, offset_seconds=offset,
                              duration_seconds=duration)  # fmt: skip
            t1 = time.perf_counter()
            with torch.inference_mode():
                mel = tagger.mel(waveform)
            t2 = time.perf_counter()
            tagger.predict_mels([mel])
            t3 = time.perf_counter()
            decode_s, mel_s, infer_s = decode_s + t1 - t0, mel_s + t2 - t1, infer_s + t3 - t2

        with Catalog(Path(tmp) / "catalog.sqlite") as catalog:
            t0 = time.perf_counter()
            result = scan([tmp], catalog, tagger, workers=args.workers)
            scan_s = time.perf_counter() - t0
    n = len(files)
    print(f"pack {pack.name} on {tagger.device}, torch threads {torch.get_num_threads()}, "
          f"{n} tracks ({minutes:.1f} min of audio)")  # fmt: skip
    print(f"model load: {load_seconds:.2f} s")
    print(f"per track, stages in sequence: decode {decode_s / n:.2f} s, mel {mel_s / n:.3f} s, "
          f"inference {infer_s / n:.2f} s")  # fmt: skip
    print(f"scan pipeline ({args.workers} decode workers): {scan_s / n:.2f} s per track, "
          f"{len(result.tagged)} tagged, {len(result.failed)} failed")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
