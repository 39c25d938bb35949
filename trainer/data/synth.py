"""A small synthetic MTG-Jamendo look-alike whose tags a model can learn from the signal.

It has the official layout, so every recipe runs on it unchanged::

    OUTDIR/split-0/autotagging_moodtheme-{train,validation,test}.tsv   official header, CRLF
    OUTDIR/melspecs/NN/ID.npy                                         float32 (96, frames), dB

Signal model. Every track has a spectral tilt (+2 dB in the lowest band down to -48 dB in the
highest), a track gain, a slow loudness swell and per-bin noise, which puts its values where
the dataset's are (mean near -23 dB, spread near 18 dB, the statistics the official baseline's
input batch norm learnt). What marks a tag, and how tags are drawn, depend on ``difficulty``.

``realistic`` (the default). Tag ``k`` owns mel band ``TAG_BANDS[k]`` (56 distinct bands
between 8 and 88, 1.45 bands apart) and a pulse period ``TAG_PERIODS[k]`` (8 to 64 frames): a
track with the tag gets a narrow Gaussian bump of ``+bump_db`` (default 15 dB) around that
band, pulsing at that period, so the tags are a deterministic function of the signal. Labels
are drawn per tag with log-uniform priors (0.6% to 9%, a 15-fold spread as in the official
training set, shuffled over the tags, 1.7 tags per track on average). A network must place the
bump to within a band and a half, which takes longer training than a CPU affords.

``easy``. A coarse code that a few CPU epochs pick up, for the end-to-end tests of the
recipes. The 56 tags form ``EASY_GROUPS`` = 8 groups of 7 (tag ``k`` is in group ``k % 8``,
with rank ``k // 8``), like near-synonymous moods. Each group owns a broad region of 12 mel
bands (``EASY_REGION_CENTRES``: a flat top of 7 bands with soft edges, well apart from the
next); a track of the group gets ``+bump_db`` (default 40 dB) over that region, pulsing at a
period drawn per track (4 to 48 frames, half depth), which tells nothing about the tags. Every
track belongs to one group, and to a second one with probability ``EASY_SECOND_GROUP``; within
a group its tags are nested, coarse to fine: a track carries the group's tags from a first
rank on (rank 0 with probability 1/3, each other rank 1/9, counted out exactly per subset),
so higher ranks are commoner. That gives 5.7 tags per track and priors from 3.5% to 20% (a
moderate 6-fold spread), and it keeps every tag alive under HCMUS's single-label balancing,
which keeps each track's rarest tag: here the first rank of each of its groups' tags. The group
is a deterministic function of the signal and the region alone ranks a tag's tracks above
nearly all others (ROC-AUC 0.98 on the validation tracks); which of a group's tags a track
carries is not in the signal.

Every track has at least one tag and every tag at least one positive track in each subset, so
that each subset's ROC-AUC is defined for every tag (small subsets get more tags per track for
it).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from moodlib.audio.frontend import MelFrontend, mel_frequencies
from moodlib.vocabulary import TAGS
from trainer.data.jamendo import N_MELS, SUBSETS, Track, mel_path, split_file, write_split

#: Share of the tracks in train, validation and test: that of the official split-0.
SUBSET_SHARES = (9949 / 17982, 3802 / 17982, 4231 / 17982)
MIN_TRACKS = 100
SAMPLE_RATE = 12_000
HOP_LENGTH = 256

DIFFICULTIES = ("realistic", "easy")

TAG_BANDS = np.round(np.linspace(8, 88, len(TAGS))).astype(np.int64)
TAG_PERIODS = np.round(np.geomspace(8, 64, len(TAGS))).astype(np.int64)

BUMP_DB = {"realistic": 15.0, "easy": 40.0}

EASY_GROUPS = 8
EASY_RANKS = len(TAGS) // EASY_GROUPS
EASY_REGION_CENTRES = 6 + 12 * np.arange(EASY_GROUPS)
EASY_PERIODS = np.array([4, 6, 9, 14, 21, 32, 48])
EASY_SECOND_GROUP = 0.2
EASY_START_SHARES = np.array([3, 1, 1, 1, 1, 1, 1]) / 9
"""Share of a group's tracks whose tags start at each rank."""


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`generate` wrote the dataset."""

    root: Path
    split_dir: Path
    mel_root: Path
    """``root/melspecs``; not written when the dataset is audio."""
    audio_root: Path | None = None
    """``root/audio`` when the dataset is audio (``generate(audio=True)``), else None."""


def generate(
    outdir: str | Path,
    *,
    tracks: int = 300,
    frames: int = 1000,
    seed: int = 0,
    bump_db: float | None = None,
    difficulty: str = "realistic",
    audio: bool = False,
) -> SyntheticDataset:
    """Write a synthetic dataset of ``tracks`` mel-spectrograms of ``frames`` frames to ``outdir``.

    ``audio``: write audio files instead (``easy`` only): ``outdir/audio/NN/ID.wav``, 32-bit
    float WAV at 12 kHz, ``frames`` frames long, each :func:`easy_audio` of the track's groups,
    for training through the app's frontend (``moodlib-train run --audio``).

    ``difficulty``: ``realistic`` (a narrow band per tag, 15-fold imbalance) or ``easy`` (a
    broad band region per group of tags, moderate imbalance), see the module's description;
    ``bump_db``: the height of the tag signal (default: 15 dB realistic, 40 dB easy). The same
    arguments write the same files.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, not {difficulty!r}")
    if tracks < MIN_TRACKS:
        raise ValueError(f"at least {MIN_TRACKS} tracks are needed for every tag in every subset")
    if frames < 1:
        raise ValueError(f"frames must be positive, not {frames}")
    if audio and difficulty != "easy":
        raise ValueError("audio datasets are of the easy kind only")
    bump_db = BUMP_DB[difficulty] if bump_db is None else bump_db
    rng = np.random.default_rng(seed)
    root = Path(outdir)
    split_dir = root / "split-0"
    mel_root = root / "melspecs"
    audio_root = root / "audio"
    split_dir.mkdir(parents=True, exist_ok=True)

    track_ids = np.sort(rng.choice(np.arange(1, 1_500_000), size=tracks, replace=False))
    bounds = np.round(np.cumsum((0, *SUBSET_SHARES)) * tracks).astype(np.int64)
    easy = difficulty == "easy"
    labels = _draw_easy_labels(rng, bounds) if easy else _draw_labels(rng, bounds)
    render = _render_easy if easy else _render
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
                path=f"{track_id % 100:02d}/{track_id}.{'wav' if audio else 'mp3'}",
                duration=duration,
                tags=tuple(TAGS[k] for k in np.flatnonzero(labels[index])),
            )
            if audio:
                groups = sorted({int(k) % EASY_GROUPS for k in np.flatnonzero(labels[index])})
                waveform = easy_audio(
                    groups, seconds=duration, seed=int(rng.integers(2**32)), bump_db=bump_db
                )
                destination = audio_root / track.path
                destination.parent.mkdir(parents=True, exist_ok=True)
                sf.write(destination, waveform, SAMPLE_RATE, subtype="FLOAT")
            else:
                mel = render(rng, labels[index], time, bump_db)
                destination = mel_path(mel_root, track.path)
                destination.parent.mkdir(parents=True, exist_ok=True)
                np.save(destination, mel, allow_pickle=False)
            rows.append(track)
        write_split(split_file(split_dir, subset), rows)
    return SyntheticDataset(
        root=root, split_dir=split_dir, mel_root=mel_root, audio_root=audio_root if audio else None
    )


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


def _draw_easy_labels(rng: np.random.Generator, bounds: np.ndarray) -> np.ndarray:
    tracks = bounds[-1]
    groups = np.zeros((tracks, EASY_GROUPS), dtype=bool)
    groups[np.arange(tracks), rng.integers(EASY_GROUPS, size=tracks)] = True
    second = np.flatnonzero(rng.random(tracks) < EASY_SECOND_GROUP)
    groups[second, rng.integers(EASY_GROUPS, size=len(second))] = True
    labels = np.zeros((tracks, len(TAGS)), dtype=bool)
    for start, stop in itertools.pairwise(bounds):
        for group in range(EASY_GROUPS):
            members = start + np.flatnonzero(groups[start:stop, group])
            for track, rank in zip(members, _first_ranks(rng, len(members)), strict=True):
                _tag_from(labels[track], group, rank)
        for tag in np.flatnonzero(~labels[start:stop].any(axis=0)):
            _tag_from(labels[rng.integers(start, stop)], tag % EASY_GROUPS, tag // EASY_GROUPS)
    return labels


def _first_ranks(rng: np.random.Generator, count: int) -> np.ndarray:
    """The first ranks of ``count`` tracks of a group: ``EASY_START_SHARES`` of them each
    (largest remainders), shuffled, so that tag counts rise with the rank in every subset."""
    quotas = EASY_START_SHARES * count
    counts = np.floor(quotas).astype(np.int64)
    counts[np.argsort(counts - quotas, kind="stable")[: count - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(EASY_RANKS), counts))


def _tag_from(row: np.ndarray, group: int, rank: int) -> None:
    """Give a track the group's tags from ``rank`` on (the commoner ones)."""
    row[group + EASY_GROUPS * np.arange(rank, EASY_RANKS)] = True


def _background(rng: np.random.Generator, time: np.ndarray) -> np.ndarray:
    bands = np.arange(N_MELS)[:, None]
    tilt = 2.0 - 50.0 * bands / (N_MELS - 1)
    gain = rng.normal(0.0, 4.0)
    swell_period = rng.uniform(200, 600)
    swell = 5.0 * np.sin(2 * np.pi * time / swell_period + rng.uniform(0, 2 * np.pi))
    return tilt + gain + swell + rng.normal(0.0, 7.0, size=(N_MELS, len(time)))


def _render(
    rng: np.random.Generator, tags: np.ndarray, time: np.ndarray, bump_db: float
) -> np.ndarray:
    bands = np.arange(N_MELS)[:, None]
    mel = _background(rng, time)
    for tag in np.flatnonzero(tags):
        shape = np.exp(-0.5 * ((bands - TAG_BANDS[tag]) / 0.7) ** 2)
        phase = rng.uniform(0, 2 * np.pi)
        pulse = 0.5 * (1 + np.sin(2 * np.pi * time / TAG_PERIODS[tag] + phase))
        mel += bump_db * shape * pulse
    return mel.astype(np.float32)


def _render_easy(
    rng: np.random.Generator, tags: np.ndarray, time: np.ndarray, bump_db: float
) -> np.ndarray:
    bands = np.arange(N_MELS)[:, None]
    mel = _background(rng, time)
    added = np.zeros_like(mel)
    for group in np.unique(np.flatnonzero(tags) % EASY_GROUPS):
        distance = np.maximum(np.abs(bands - EASY_REGION_CENTRES[group]) - 3.0, 0.0)
        period = rng.choice(EASY_PERIODS)
        pulse = np.where((time + rng.integers(period)) % period < period / 2, 1.0, 0.5)
        added = np.maximum(added, bump_db * np.exp(-0.5 * distance**2) * pulse)
    return (mel + added).astype(np.float32)


def easy_audio(
    group: int | Sequence[int],
    seconds: float = 30.0,
    seed: int = 0,
    bump_db: float | None = None,
) -> np.ndarray:
    """A waveform (mono float32 at ``SAMPLE_RATE``) whose mel-spectrogram through the app's
    default frontend looks like an ``easy`` track of one or more tag groups: the spectral tilt,
    and each group's band region ``bump_db`` higher, pulsing between full and half height every 8
    frames. It is shaped noise: white noise filtered to the target band levels, corrected
    against the frontend's own measurement three times (within about 1 dB per band), so a pack
    trained on ``easy`` mel-spectrograms can be run on audio files through ``moodlib scan``.
    """
    groups = [group] if isinstance(group, int) else list(group)
    if not groups or not all(0 <= g < EASY_GROUPS for g in groups):
        raise ValueError(f"group must be in 0..{EASY_GROUPS - 1}, not {group}")
    bump_db = BUMP_DB["easy"] if bump_db is None else bump_db
    rng = np.random.default_rng(seed)
    frontend = MelFrontend(sample_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, n_mels=N_MELS)
    samples = int(seconds * SAMPLE_RATE)
    bands = np.arange(N_MELS)
    tilt = 2.0 - 50.0 * bands / (N_MELS - 1)
    distance = np.abs(bands[:, None] - EASY_REGION_CENTRES[groups]).min(axis=1)
    region = np.exp(-0.5 * np.maximum(distance - 3.0, 0.0) ** 2)
    full = _shaped_noise(rng, frontend, samples, tilt + bump_db * region)
    half = _shaped_noise(rng, frontend, samples, tilt + bump_db / 2 * region)
    on = (np.arange(samples) // HOP_LENGTH) % 16 < 8
    return np.where(on, full, half).astype(np.float32)


def _shaped_noise(
    rng: np.random.Generator, frontend: MelFrontend, samples: int, band_db: np.ndarray
) -> np.ndarray:
    """White noise whose mel bands have the mean levels ``band_db``.

    The frontend's scale is ``20 * log10`` of mel *power*, so a band moves by twice the
    amplitude gain in dB.
    """
    centres = mel_frequencies(n_mels=N_MELS + 2, f_min=0.0, f_max=SAMPLE_RATE / 2)[1:-1]
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples, 1 / SAMPLE_RATE)
    gain_db = np.interp(frequencies, centres, band_db) / 2
    for _ in range(3):
        noise = np.fft.irfft(spectrum * 10 ** (gain_db / 20), samples)
        with torch.inference_mode():
            mel = frontend(torch.from_numpy(noise.astype(np.float32))[None])[0].numpy()
        gain_db += np.interp(frequencies, centres, band_db - mel.mean(axis=1)) / 2
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), samples)
