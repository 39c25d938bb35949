"""Seconds to retrain on 2 000 reviewed tracks: ``trainer.finetune`` on a real catalog.

The catalog holds 2 000 tracks (100 albums) with starter-pack scores and 200-d embeddings and
user decisions on 12 tags each (accept/reject, the rest unreviewed). The fitting time
depends on the numbers of tracks, tags and embedding dimensions, not on their values, so the
embeddings are drawn at random with a fixed seed and the labels follow a linear rule on them.

    python benchmarks/finetune.py [--tracks 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from moodlib import tags as vocabulary
from moodlib.library.catalog import Catalog
from moodlib.packstore import PackStore
from trainer.finetune import finetune

REVIEWED_TAGS = ("calm", "energetic", "fast", "happy", "heavy", "party", "relaxing", "sad",
                 "slow", "soft", "dark", "epic")  # fmt: skip


def build(catalog: Catalog, pack, tracks: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(REVIEWED_TAGS), 200))
    for i in range(tracks):
        embedding = rng.normal(size=200).astype(np.float32)
        scores = np.full(56, np.nan, np.float32)
        for tag in pack.covered:
            scores[vocabulary.TAG_INDEX[tag]] = rng.uniform(0, 0.4)
        track = catalog.upsert_track(
            f"/music/{i:05d}.flac",
            size=1,
            mtime_ns=1,
            artist=f"artist {i % 37}",
            album=f"album {i % 100}",
        )
        catalog.put_prediction(track, pack.name, scores, embedding)
        for tag, direction in zip(REVIEWED_TAGS, directions, strict=True):
            catalog.set_decision(track, tag, "accept" if embedding @ direction > 0 else "reject")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = PackStore(Path(tmp) / "packs")
        base = store.get("starter")
        with Catalog(Path(tmp) / "catalog.sqlite") as catalog:
            build(catalog, base, args.tracks)
            times = []
            for i in range(args.repeat):
                started = time.perf_counter()
                result = finetune(catalog, base, store, name=f"personal-bench-{i}")
                times.append(time.perf_counter() - started)
    roc_auc = result.macro("personal_roc_auc")
    print(f"{args.tracks} reviewed tracks, {len(REVIEWED_TAGS)} tags, torch threads "
          f"{torch.get_num_threads()}: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}) including reading the catalog and "
          f"writing the pack; held-out ROC-AUC macro {roc_auc:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
