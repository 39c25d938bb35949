"""Fixtures of the trainer's end-to-end tests.

``synthetic_dataset``: one ``moodlib-train synth`` dataset per session in the official layout,
the ``easy`` kind (tags marked by broad band regions, see :mod:`trainer.data.synth`) so that the
CPU-sized recipes visibly learn, with a ``hpcp`` folder beside ``melspecs`` for Mirable's
recipes (see :func:`write_hpcp_stand_ins`).
``validation_prior``: the tag prior's validation PR-AUC-macro, the bar a trained run must clear.
``unseen_tag_dataset``: a smaller one (12 training and 6 test tracks listed, 256 frames) in
which no validation track carries one tag, as a user's own labels may have it.
``one_thread``: torch on a single thread for the duration of a module; on a shared two-core
machine the small networks of the CPU-sized recipes run faster without intra-op threads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.data import synth
from trainer.data.jamendo import read_split, split_file, tag_matrix, write_split
from trainer.metrics import evaluate

TRACKS = 200
# The baseline's whole input (1366 frames, 29.1 s), so that none of it is padding.
FRAMES = 1366
DIFFICULTY = "easy"


def write_hpcp_stand_ins(root: Path) -> None:
    """``root/hpcp/NN/ID.npy`` for every mel-spectrogram under ``root/melspecs``.

    The synthetic dataset has no audio to compute pitch-class profiles from, so each
    stand-in folds the track's mel bands onto 12 classes (band modulo 12), rescaled to a unit
    maximum per frame as an HPCP is: 12 rows in [0, 1], frame-aligned with the mel.
    """
    for mel_file in sorted((root / "melspecs").rglob("*.npy")):
        mel = np.asarray(np.load(mel_file))
        power = 10.0 ** (mel / 20.0)
        folded = np.stack([power[c::12].sum(axis=0) for c in range(12)])
        profile = folded / folded.max(axis=0, keepdims=True)
        destination = root / "hpcp" / mel_file.relative_to(root / "melspecs")
        destination.parent.mkdir(parents=True, exist_ok=True)
        np.save(destination, profile.astype(np.float32))


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-track synthetic dataset (111 training, 42 validation, 47 test tracks) with HPCP
    stand-ins; read-only use."""
    root = tmp_path_factory.mktemp("synthetic")
    synth.generate(root, tracks=TRACKS, frames=FRAMES, seed=0, difficulty=DIFFICULTY)
    write_hpcp_stand_ins(root)
    return root


@pytest.fixture(scope="session")
def unlabeled_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other synthetic tracks, in the same layout, for the noisy student's teacher to label."""
    root = tmp_path_factory.mktemp("unlabeled")
    synth.generate(root, tracks=100, frames=FRAMES, seed=1, difficulty=DIFFICULTY)
    write_hpcp_stand_ins(root)
    return root


@pytest.fixture(scope="session")
def unseen_tag_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(root, tag)``: 100 ``easy`` synthetic tracks of 256 frames with HPCP stand-ins, of which
    the split lists 12 training tracks, 6 test tracks (on which most tags have no positive) and
    the 21 validation tracks, none of which carries ``tag``; the others are tracks no split
    lists, the noisy student's unlabeled ones."""
    tag = "christmas"
    root = tmp_path_factory.mktemp("unseen-tag")
    dataset = synth.generate(root, tracks=100, frames=256, seed=0, difficulty=DIFFICULTY)
    write_hpcp_stand_ins(root)
    for subset, kept in (("train", 12), ("test", 6)):
        listed = split_file(dataset.split_dir, subset)
        write_split(listed, read_split(listed)[:kept])
    validation = split_file(dataset.split_dir, "validation")
    tracks = read_split(validation)
    assert any(tag in track.tags for track in tracks)
    without = [
        dataclasses.replace(track, tags=tuple(t for t in track.tags if t != tag))
        for track in tracks
    ]
    write_split(validation, without)
    return root, tag


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def validation_prior(synthetic_dataset: Path) -> float:
    """PR-AUC-macro of the tag prior on the validation tracks: every track scored with the
    training frequency of each tag, a constant per tag, so each tag's PR-AUC is its share of
    positive validation tracks and the macro average is the mean tag prior (0.10 here)."""
    split_dir = synthetic_dataset / "split-0"
    train = tag_matrix(read_split(split_file(split_dir, "train")))
    truth = tag_matrix(read_split(split_file(split_dir, "validation")))
    return evaluate(truth, np.tile(train.mean(axis=0), (len(truth), 1)))["PR-AUC-macro"]
