"""How well "retrain on my corrections" learns a listener's taste on top of each candidate pack.

The simulated listener of ``tests/trainer/test_finetune.py``: 12 excerpts of each track of the
Singularity soundtrack (Debian ``singularity-music``; each track its own album), judged by a
property of the sound. *brightness*: "dark" accepted on the excerpts whose spectral centroid is
below the median and rejected on the others, "happy" the other way round (the test's taste);
*loudness*: "energetic" accepted on the louder half by RMS, "calm" on the quieter half. The
personal pack (``trainer.finetune``, its fixed album split) is scored on held-out albums:
ROC-AUC per tag. With 13 albums the held-out side is 3 of them, so one split is noisy; the
table gives the test's split (the albums' own names) and the mean over ``--splits`` splits
(the album names salted, which reshuffles the split).

Candidates (what the head is fitted on; the base scores are those of the pack that tags):
``starter`` (musicnn MTT's 200-d embedding), ``mtg-baseline`` with its 64 pooled features,
``mtg-baseline`` as shipped (448: those plus the first two blocks' channel statistics) and
the baseline's scores with the starter's musicnn embedding (a two-pack composite).

    python benchmarks/personal_model.py [--seconds 3] [--splits 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from moodlib.audio.decode import decode
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packs import Pack
from moodlib.packstore import PackStore
from trainer.finetune import finetune

MUSIC = Path("/usr/share/games/singularity/music")
EXCERPTS_PER_TRACK = 12
TASTE_RATE = 16000
POOLED_FEATURES = 64  # the shipped baseline's embedding starts with the 64 pooled features


def excerpts_of(waveform: np.ndarray, sample_rate: int, seconds: float) -> list[np.ndarray]:
    """Excerpts evenly spread over a track, as ``tests/trainer/test_finetune.py`` cuts them."""
    step = len(waveform) // (EXCERPTS_PER_TRACK + 1)
    length = int(seconds * sample_rate)
    return [waveform[(i + 1) * step - length // 2 :][:length] for i in range(EXCERPTS_PER_TRACK)]


def predictions(tagger: Tagger, clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and embeddings of ``clips``, 16 at a time."""
    scores, embeddings = [], []
    for start in range(0, len(clips), 16):
        for prediction in tagger.predict_waveforms(clips[start : start + 16]):
            scores.append(prediction.scores)
            embeddings.append(prediction.embedding)
    return np.stack(scores), np.stack(embeddings)


def personal_roc_auc(
    base: Pack, scores: np.ndarray, embeddings: np.ndarray, albums: list[str],
    labels: dict[str, np.ndarray], store: PackStore,
) -> dict[str, float]:  # fmt: skip
    """Held-out ROC-AUC per tag of the personal pack fitted on ``labels`` (tag -> accepted)."""
    with tempfile.TemporaryDirectory() as tmp, Catalog(Path(tmp) / "catalog.sqlite") as catalog:
        for k, album in enumerate(albums):
            track = catalog.upsert_track(
                f"/music/{album}/{k:03d}.flac", size=1, mtime_ns=1, artist="Singularity",
                album=album,
            )  # fmt: skip
            catalog.put_prediction(track, base.name, scores[k], embeddings[k])
            for tag, accepted in labels.items():
                catalog.set_decision(track, tag, "accept" if accepted[k] else "reject")
        result = finetune(catalog, base, store, write=False)
    return {r.tag: r.personal_roc_auc for r in result.reports}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="excerpt length")
    parser.add_argument("--splits", type=int, default=30)
    args = parser.parse_args()
    sources = sorted(MUSIC.glob("*.ogg"))
    if not sources:
        print(f"needs {MUSIC} (apt install singularity-music)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        store = PackStore(Path(tmp) / "packs")
        starter, baseline = store.get("starter"), store.get("mtg-baseline")
        taggers = {pack.name: Tagger(pack, device="cpu") for pack in (starter, baseline)}
        clips: dict[str, list[np.ndarray]] = {name: [] for name in (*taggers, "taste")}
        albums = []
        for number, source in enumerate(sources):
            for name, rate in [(n, t.sample_rate) for n, t in taggers.items()] + [
                ("taste", TASTE_RATE)
            ]:
                waveform = decode(source, sample_rate=rate)
                clips[name] += excerpts_of(waveform, rate, args.seconds)
            albums += [f"{source.stem} {number}"] * EXCERPTS_PER_TRACK
        starter_scores, starter_embedding = predictions(taggers["starter"], clips["starter"])
        scores, embedding = predictions(taggers["mtg-baseline"], clips["mtg-baseline"])
        candidates = {
            "starter (musicnn MTT, 200)": (starter, starter_scores, starter_embedding),
            "mtg-baseline, pooled features (64)": (
                baseline, scores, embedding[:, :POOLED_FEATURES]
            ),
            f"mtg-baseline as shipped ({embedding.shape[1]})": (baseline, scores, embedding),
            "mtg-baseline scores + starter's musicnn (200)": (
                baseline, scores, starter_embedding
            ),
        }  # fmt: skip
        heard = clips["taste"]
        centroid = np.array([_centroid(clip) for clip in heard])
        rms = np.array([np.sqrt(np.mean(clip.astype(np.float64) ** 2)) for clip in heard])
        tastes = {
            "brightness": {"dark": centroid < np.median(centroid),
                           "happy": centroid >= np.median(centroid)},
            "loudness": {"energetic": rms >= np.median(rms), "calm": rms < np.median(rms)},
        }  # fmt: skip
        print(f"{len(heard)} excerpts of {args.seconds:g} s, {len(sources)} albums; held-out "
              f"ROC-AUC of the personal pack: the test's split, and mean (min) over "
              f"{args.splits} splits")  # fmt: skip
        print("| base | embedding | " + " | ".join(
            f"{taste}: test's split | {taste}: mean (min)" for taste in tastes) + " |")  # fmt: skip
        print("|---|---:|" + "---:|" * 2 * len(tastes))
        for name, (base, base_scores, embeddings) in candidates.items():
            cells = []
            for labels in tastes.values():
                per_split = []
                for salt in range(args.splits):
                    salted = [a if salt == 0 else f"{a} #{salt}" for a in albums]
                    aucs = personal_roc_auc(base, base_scores, embeddings, salted, labels, store)
                    per_split.append(aucs)
                first = " / ".join(_fmt(per_split[0][tag]) for tag in labels)
                macro = [np.nanmean([s[tag] or np.nan for tag in labels]) for s in per_split]
                cells += [first, f"{np.mean(macro):.3f} ({np.min(macro):.3f})"]
            label, dims = name.rsplit(" (", 1)
            print(f"| {label} | {dims.rstrip(')')} | " + " | ".join(cells) + " |")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _centroid(clip: np.ndarray) -> float:
    """Spectral centroid in Hz at ``TASTE_RATE``: the brightness the listener judges by."""
    spectrum = np.abs(np.fft.rfft(clip)) ** 2
    frequencies = np.fft.rfftfreq(len(clip), 1 / TASTE_RATE)
    return float((spectrum * frequencies).sum() / spectrum.sum())


if __name__ == "__main__":
    sys.exit(main())
