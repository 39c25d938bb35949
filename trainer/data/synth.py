"""A small synthetic MTG-Jamendo look-alike whose tags a model can learn from the signal.

It has the official layout, so every recipe runs on it unchanged::

    OUTDIR/split-0/autotagging_moodtheme-{train,validation,test}.tsv   official header, CRLF
    OUTDIR/melspecs/NN/ID.npy                                         float32 (96, frames), dB

Signal model. Every track has a spectral tilt (+2 dB in the lowest band down to -48 dB in the
highest), a track gain, a slow loudness swell and per-bin noise, which puts its values where
the dataset's are (mean near -23 dB, spread near 18 dB, the statistics the official baseline's
input batch norm learnt). Tag ``k`` owns mel band ``TAG_BANDS[k]`` (56 distinct bands between 8
and 88) and a pulse period ``TAG_PERIODS[k]`` (8 to 64 frames): a track with the tag gets a
Gaussian bump of ``+bump_db`` around that band, pulsing at that period. So the tags are a
deterministic function of the signal, visible in every crop longer than a period and in the
per-band means.

Labels are drawn per tag with log-uniform priors (0.6% to 9%, a 15-fold spread as in the
official training set, shuffled over the tags, 1.7 tags per track on average); every track has
at least one tag and every tag at least one positive track in each subset, so that each
subset's ROC-AUC is defined for every tag (small subsets get more tags per track for it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodlib.tags import TAGS
from trainer.data.jamendo import N_MELS, SUBSETS, Track, mel_path, split_file, write_split

#: Share of the tracks in train, validation and test: that of the official split-0.
SUBSET_SHARES = (9949 / 17982, 3802 / 17982, 4231 / 17982)
MIN_TRACKS = 100
SAMPLE_RATE = 12_000
HOP_LENGTH = 256

TAG_BANDS = np.round(np.linspace(8, 88, len(TAGS))).astype(np.int64)
TAG_PERIODS = np.round(np.geomspace(8, 64, len(TAGS))).astype(np.int64)


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`generate` wrote the dataset."""

    root: Path
    split_dir: Path
    mel_root: Path


def generate(
    outdir: str | Path,
    *,
    tracks: int = 300,
    frames: int = 1000,
    seed: int = 0,
    bump_db: float = 15.0,
) -> SyntheticDataset:
    """Write a synthetic dataset of ``tracks`` mel-spectrograms of ``frames`` frames to ``outdir``.

    The same ``seed`` writes the same files.
    """
    if tracks < MIN_TRACKS:
        raise ValueError(f"at least {MIN_TRACKS} tracks are needed for every tag in every subset")
    if frames < 1:
        raise ValueError(f"frames must be positive, not {frames}")
    rng = np.random.default_rng(seed)
    root = Path(outdir)
    split_dir = root / "split-0"
    mel_root = root / "melspecs"
    split_dir.mkdir(parents=True, exist_ok=True)

    track_ids = np.sort(rng.choice(np.arange(1, 1_500_000), size=tracks, replace=False))
    bounds = np.round(np.cumsum((0, *SUBSET_SHARES)) * tracks).astype(np.int64)
    labels = _draw_labels(rng, bounds)
    duration = frames * HOP_LENGTH / SAMPLE_RATE
    time = np.arange(frames)
    for subset, (start, stop) in zip(SUBSETS, itertools.pairwise(bounds), strict=True):
        rows = []
        for index in range(start, stop):
            track_id = int(track_ids[index])
            track = Track(
                track_id=f"track_{track_id:07d}",
                artist_id=f"artist_{index // 8:06d}",
                album_id=f"album_{index // 4:06d}",
                path=f"{track_id % 100:02d}/{track_id}.mp3",
                duration=duration,
                tags=tuple(TAGS[k] for k in np.flatnonzero(labels[index])),
            )
            mel = _render(rng, labels[index], time, bump_db)
            destination = mel_path(mel_root, track.path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            np.save(destination, mel, allow_pickle=False)
            rows.append(track)
        write_split(split_file(split_dir, subset), rows)
    return SyntheticDataset(root=root, split_dir=split_dir, mel_root=mel_root)


def _draw_labels(rng: np.random.Generator, bounds: np.ndarray) -> np.ndarray:
    priors = rng.permutation(np.geomspace(0.006, 0.09, len(TAGS)))
    labels = rng.random((bounds[-1], len(TAGS))) < priors
    for start, stop in itertools.pairwise(bounds):
        subset = labels[start:stop]
        for tag in np.flatnonzero(~subset.any(axis=0)):
            subset[rng.integers(len(subset)), tag] = True
    for row in np.flatnonzero(~labels.any(axis=1)):
        labels[row, rng.choice(len(TAGS), p=priors / priors.sum())] = True
    return labels


def _render(
    rng: np.random.Generator, tags: np.ndarray, time: np.ndarray, bump_db: float
) -> np.ndarray:
    bands = np.arange(N_MELS)[:, None]
    tilt = 2.0 - 50.0 * bands / (N_MELS - 1)
    gain = rng.normal(0.0, 4.0)
    swell_period = rng.uniform(200, 600)
    swell = 5.0 * np.sin(2 * np.pi * time / swell_period + rng.uniform(0, 2 * np.pi))
    mel = tilt + gain + swell + rng.normal(0.0, 7.0, size=(N_MELS, len(time)))
    for tag in np.flatnonzero(tags):
        shape = np.exp(-0.5 * ((bands - TAG_BANDS[tag]) / 0.7) ** 2)
        phase = rng.uniform(0, 2 * np.pi)
        pulse = 0.5 * (1 + np.sin(2 * np.pi * time / TAG_PERIODS[tag] + phase))
        mel += bump_db * shape * pulse
    return mel.astype(np.float32)
