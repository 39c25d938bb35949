"""Seconds to retrain on 2 000 reviewed tracks, as the app's button and ``moodlib-train finetune
--from-catalog`` do it: ``trainer.finetune_prepare.prepare`` (the base pack verified, every
reviewed track found scored already) then ``trainer.finetune.finetune``, on a real catalog.

The catalog holds 2 000 tracks (100 albums) with scores and embeddings of a pack (the default
one unless ``--pack``; as many embedding values as its embedding member gives) and user
decisions on 12 tags each (accept/reject, the rest unreviewed). The fitting time depends on
the numbers of tracks, tags and embedding dimensions, not on their values, so the embeddings
are drawn at random with a fixed seed and the labels follow a linear rule on them.

    python benchmarks/finetune.py [--tracks 2000] [--repeat 3] [--pack NAME]
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

from moodlib import config, vocabulary
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packstore import PackStore
from trainer.finetune import finetune
from trainer.finetune_prepare import prepare

REVIEWED_TAGS = ("calm", "energetic", "fast", "happy", "heavy", "party", "relaxing", "sad",
                 "slow", "soft", "dark", "epic")  # fmt: skip


def embedding_size(pack) -> int:
    """How many values the pack's embedding member gives for a track (one silent segment)."""
    tagger = Tagger(pack, device="cpu")
    return len(tagger.predict_waveforms([np.zeros(tagger.min_samples, np.float32)])[0].embedding)


def build(catalog: Catalog, pack, tracks: int, dims: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(REVIEWED_TAGS), dims))
    for i in range(tracks):
        embedding = rng.normal(size=dims).astype(np.float32)
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
    parser.add_argument("--pack", default=config.DEFAULT_PACK)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = PackStore(Path(tmp) / "packs")
        base = store.get(args.pack)
        dims = embedding_size(base)
        with Catalog(Path(tmp) / "catalog.sqlite") as catalog:
            build(catalog, base, args.tracks, dims)
            times = []
            for i in range(args.repeat):
                started = time.perf_counter()
                prepared = prepare(
                    catalog, store, base.name, lambda pack: Tagger(pack, device="cpu"),
                    name=f"personal-bench-{i}",
                )  # fmt: skip
                assert not prepared.scored, "every reviewed track has an embedding already"
                result = finetune(catalog, prepared.base, store, name=prepared.name)
                times.append(time.perf_counter() - started)
    roc_auc = result.macro("personal_roc_auc")
    print(f"{base.name}: {args.tracks} reviewed tracks, {len(REVIEWED_TAGS)} tags, {dims}-d "
          f"embeddings, torch threads "
          f"{torch.get_num_threads()}: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}) including verifying the base pack, "
          f"reading the catalog and writing the pack; held-out ROC-AUC macro "
          f"{roc_auc:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
