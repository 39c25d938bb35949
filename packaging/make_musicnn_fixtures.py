"""Record what the original musicnn 0.1.0 package outputs, as fixtures for tests/test_musicnn.py.

Run it in the throwaway TensorFlow venv of ``packaging/convert_musicnn.py`` with the wheel
installed (``pip install --no-deps musicnn==0.1.0``) and ffmpeg on the PATH::

    TF_USE_LEGACY_KERAS=1 /root/venvs/tf/bin/python packaging/make_musicnn_fixtures.py

For each excerpt of a real recording from a Debian game-music package, ffmpeg writes a 16 kHz
mono 16-bit wav (the command is stored in the metadata, so the tests replay it instead of
shipping audio) and the original package is given that wav. Stored per excerpt, in
``tests/fixtures/musicnn/reference.npz``:

- ``<name>/patches``: the mel patches the extractor fed the network, ``(patches, 96, 187)``
  (transposed to moodlib's ``(n_mels, frames)``). The extractor computes them in float16, so
  they are stored as float16 without loss;
- ``<name>/<checkpoint>``: ``extractor(wav, model=checkpoint, input_length=3,
  input_overlap=False)``'s taggram, ``(patches, 50)`` float32;
- ``<name>/<checkpoint>/penultimate``: the 200-d penultimate layer for the same patches, from a
  session built like the extractor's. (The extractor's own ``features['penultimate']`` repeats
  the first patch's value for every later patch: its loop concatenates a stale variable.)

``tests/fixtures/musicnn/excerpts.json`` holds, per excerpt, the source file, offset,
duration, gain, the ffmpeg command, the sha256 of the decoded samples and, per patch, whether
the extractor's float16 cast overflowed.

The parity excerpts are attenuated by 20 dB: the extractor computes ``10000 * mel`` in float16,
which overflows above a mel power of ~6.55, i.e. on most 3-s patches of music at ordinary
levels; the network then outputs the same saturated tags for every such patch. Attenuated, no
bin overflows and every patch can be compared. One excerpt at its original level
(``overflow``) records that saturation, which the PyTorch port deliberately does not reproduce.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "musicnn"
CHECKPOINTS = ("MSD_musicnn", "MTT_musicnn")
SAMPLE_RATE = 16000
PATCH_FRAMES = 187  # the extractor's n_frames for input_length=3
PARITY_GAIN_DB = -20.0


@dataclass(frozen=True)
class Excerpt:
    name: str
    source: str
    offset_seconds: float
    duration_seconds: float
    gain_db: float
    description: str

    def ffmpeg_command(self) -> list[str]:
        """ffmpeg arguments writing the excerpt as a wav; the output path goes last.

        Output-side ``-ss`` decodes from the start and drops samples, so the cut is exact and
        independent of the container's seek index.
        """
        return [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", self.source,
            "-ss", f"{self.offset_seconds}", "-t", f"{self.duration_seconds}",
            "-af", f"volume={self.gain_db}dB", "-ac", "1", "-ar", f"{SAMPLE_RATE}",
            "-c:a", "pcm_s16le", "-bitexact", "-f", "wav",
        ]  # fmt: skip


SINGULARITY = "/usr/share/games/singularity/music"
ARMYGEDDON = "/usr/share/games/fretsonfire/data/songs/muldjord/armygeddon/song.ogg"

EXCERPTS = (
    Excerpt(
        name="electronic",
        source=f"{SINGULARITY}/Coherence.ogg",
        offset_seconds=60.0,
        duration_seconds=10.0,
        gain_db=PARITY_GAIN_DB,
        description="Singularity soundtrack (singularity-music): fast electronic, synths and beat",
    ),
    Excerpt(
        name="quiet",
        source=f"{SINGULARITY}/lose/Chimes They Fade.ogg",
        offset_seconds=9.0,
        duration_seconds=10.0,
        gain_db=PARITY_GAIN_DB,
        description="Singularity soundtrack (singularity-music): slow, quiet piano and flute",
    ),
    Excerpt(
        name="rock",
        source=ARMYGEDDON,
        offset_seconds=45.0,
        duration_seconds=10.0,
        gain_db=PARITY_GAIN_DB,
        description="Frets on Fire 'Armygeddon' (fretsonfire-songs-muldjord): loud, fast metal",
    ),
    Excerpt(
        name="overflow",
        source=ARMYGEDDON,
        offset_seconds=45.0,
        duration_seconds=10.0,
        gain_db=0.0,
        description="the 'rock' excerpt at its original level: the float16 cast overflows",
    ),
)


def write_excerpt(excerpt: Excerpt, wav: Path) -> None:
    subprocess.run([*excerpt.ffmpeg_command(), str(wav)], check=True)


def pcm_sha256(wav: Path) -> str:
    """sha256 of the samples (the data chunk), independent of the wav header."""
    data = wav.read_bytes()
    start = data.index(b"data") + 8
    return hashlib.sha256(data[start:]).hexdigest()


def penultimate(patches: np.ndarray, checkpoint: str) -> np.ndarray:
    """The penultimate layer for ``patches`` (time, freq), built and restored as the extractor
    does it."""
    import musicnn
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, patches.shape[2]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, checkpoint, 50)
    with tf.compat.v1.Session() as session:
        saver = tf.compat.v1.train.Saver()
        saver.restore(session, os.path.join(os.path.dirname(musicnn.__file__), checkpoint) + "/")
        return session.run(outputs[-1], feed_dict={x: patches, is_training: False})


def main() -> int:
    from musicnn.extractor import batch_data, extractor

    FIXTURES.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    metadata: dict[str, Any] = {
        "generator": "packaging/make_musicnn_fixtures.py",
        "sample_rate": SAMPLE_RATE,
        "patch_frames": PATCH_FRAMES,
        "labels": {},
        "excerpts": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for excerpt in EXCERPTS:
            wav = Path(tmp) / f"{excerpt.name}.wav"
            write_excerpt(excerpt, wav)
            patches, _ = batch_data(str(wav), PATCH_FRAMES, PATCH_FRAMES)
            overflowed = np.isinf(patches).any(axis=(1, 2))
            parity = excerpt.gain_db == PARITY_GAIN_DB
            if parity and overflowed.any():
                raise RuntimeError(f"{excerpt.name}: float16 overflow even at {excerpt.gain_db} dB")
            for checkpoint in CHECKPOINTS:
                taggram, labels = extractor(
                    str(wav),
                    model=checkpoint,
                    input_length=3,
                    input_overlap=False,
                    extract_features=False,
                )
                metadata["labels"][checkpoint] = list(labels)
                arrays[f"{excerpt.name}/{checkpoint}"] = taggram.astype(np.float32)
                if parity:
                    arrays[f"{excerpt.name}/{checkpoint}/penultimate"] = penultimate(
                        patches.astype(np.float32), checkpoint
                    ).astype(np.float32)
            if parity:
                arrays[f"{excerpt.name}/patches"] = patches.transpose(0, 2, 1).astype(np.float16)
            metadata["excerpts"][excerpt.name] = {
                **asdict(excerpt),
                "ffmpeg_command": excerpt.ffmpeg_command(),
                "pcm_sha256": pcm_sha256(wav),
                "overflowed": overflowed.tolist(),
            }
    np.savez_compressed(FIXTURES / "reference.npz", **arrays)
    (FIXTURES / "excerpts.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    size = (FIXTURES / "reference.npz").stat().st_size
    print(f"wrote {len(arrays)} arrays ({size / 1024:.0f} KiB) to {FIXTURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
