"""Convert the pretrained musicnn 0.1.0 taggers (TensorFlow 1 checkpoints) to safetensors.

Run it in a throwaway TensorFlow venv, never in moodlib's own environment::

    python -m venv /root/venvs/tf
    /root/venvs/tf/bin/pip install tensorflow-cpu tf_keras librosa safetensors
    /root/venvs/tf/bin/pip install --no-deps musicnn==0.1.0     # only for the fixtures script
    pip download --no-deps musicnn==0.1.0 -d /tmp/musicnn        # the wheel converted here
    /root/venvs/tf/bin/python packaging/convert_musicnn.py /tmp/musicnn/musicnn-0.1.0-*.whl

It reads the ``MSD_musicnn`` and ``MTT_musicnn`` checkpoints straight out of the wheel with
``NewCheckpointReader`` (``tf.train.load_checkpoint`` fails: the ``checkpoint`` file names the
authors' absolute path), drops the Adam slots and step counters, renames every variable to the
state_dict key of ``moodlib.models.musicnn.Musicnn`` and transposes the kernels to PyTorch's
layout. It writes, into ``moodlib/resources/packs/starter/``:

- ``MSD_musicnn.safetensors``, ``MTT_musicnn.safetensors`` (float32, written with
  ``safetensors.numpy``: no torch needed here);
- ``tags.json``: the 50 output tags of each, from the wheel's ``configuration.py``;
- ``LICENSE``: the wheel's ISC licence, and ``README.md``: source, version, sha256, what and how.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tensorflow.python.training import py_checkpoint_reader

WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
CHECKPOINTS = ("MSD_musicnn", "MTT_musicnn")
LABEL_LISTS = {"MSD_musicnn": "MSD_LABELS", "MTT_musicnn": "MTT_LABELS"}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "moodlib" / "resources" / "packs" / "starter"

# TensorFlow variable scope -> (PyTorch module path, kind), in the order build_musicnn creates
# them. Kinds: "bn" batch norm; "conv2d" a front-end kernel (time, freq, in, out) -> PyTorch
# (out, in, freq, time) since moodlib's mel is (n_mels, frames); "conv1d" a mid-end kernel
# (time, channels, 1, out) -> (out, channels, time); "dense" (in, out) -> (out, in).
LAYERS: tuple[tuple[str, str, str], ...] = (
    ("batch_normalization", "frontend.input_bn", "bn"),
    ("conv2d", "frontend.branches.0.conv", "conv2d"),
    ("batch_normalization_1", "frontend.branches.0.bn", "bn"),
    ("conv2d_1", "frontend.branches.1.conv", "conv2d"),
    ("batch_normalization_2", "frontend.branches.1.bn", "bn"),
    ("conv2d_2", "frontend.branches.2.conv", "conv2d"),
    ("batch_normalization_3", "frontend.branches.2.bn", "bn"),
    ("conv2d_3", "frontend.branches.3.conv", "conv2d"),
    ("batch_normalization_4", "frontend.branches.3.bn", "bn"),
    ("conv2d_4", "frontend.branches.4.conv", "conv2d"),
    ("batch_normalization_5", "frontend.branches.4.bn", "bn"),
    ("conv2d_5", "midend.layers.0.conv", "conv1d"),
    ("batch_normalization_6", "midend.layers.0.bn", "bn"),
    ("conv2d_6", "midend.layers.1.conv", "conv1d"),
    ("batch_normalization_7", "midend.layers.1.bn", "bn"),
    ("conv2d_7", "midend.layers.2.conv", "conv1d"),
    ("batch_normalization_8", "midend.layers.2.bn", "bn"),
    ("batch_normalization_9", "backend.pool_bn", "bn"),
    ("dense", "backend.dense", "dense"),
    ("batch_normalization_10", "backend.dense_bn", "bn"),
    ("dense_1", "backend.classifier", "dense"),
)

_BN_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}

_KERNEL_LAYOUT = {
    "conv2d": lambda k: k.transpose(3, 2, 1, 0),
    "conv1d": lambda k: k[:, :, 0, :].transpose(2, 1, 0),
    "dense": lambda k: k.T,
}

# Training-only variables in the checkpoint: Adam's moment estimates and its power counters.
_SKIPPED = ("/Adam", "beta1_power", "beta2_power")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """Read one TF checkpoint (``prefix`` = its folder + '/') into a PyTorch-keyed state_dict."""
    reader = py_checkpoint_reader.NewCheckpointReader(prefix)
    trained = {
        name
        for name in reader.get_variable_to_shape_map()
        if not any(marker in name for marker in _SKIPPED)
    }

    def tensor(name: str) -> np.ndarray:
        trained.discard(name)
        return reader.get_tensor(name)

    state: dict[str, np.ndarray] = {}
    for scope, module, kind in LAYERS:
        if kind == "bn":
            for tf_name, torch_name in _BN_NAMES.items():
                state[f"{module}.{torch_name}"] = tensor(f"{scope}/{tf_name}")
            # PyTorch keeps a step counter in every BN; inference ignores it.
            state[f"{module}.num_batches_tracked"] = np.array(0, dtype=np.int64)
        else:
            state[f"{module}.weight"] = _KERNEL_LAYOUT[kind](tensor(f"{scope}/kernel"))
            state[f"{module}.bias"] = tensor(f"{scope}/bias")
    if trained:
        raise ValueError(f"{prefix}: variables with no PyTorch counterpart: {sorted(trained)}")
    return {
        key: np.ascontiguousarray(
            value, dtype=np.int64 if key.endswith("num_batches_tracked") else np.float32
        )
        for key, value in state.items()
    }


def read_labels(configuration_py: Path) -> dict[str, list[str]]:
    """The MSD/MTT label lists, parsed from ``configuration.py`` without importing it."""
    assignments = {
        node.targets[0].id: node.value
        for node in ast.parse(configuration_py.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    return {
        checkpoint: ast.literal_eval(assignments[variable])
        for checkpoint, variable in LABEL_LISTS.items()
    }


def readme_text(wheel_sha256: str, parameter_counts: dict[str, int]) -> str:
    counts = ", ".join(f"{name} {count:,}" for name, count in parameter_counts.items())
    return f"""# musicnn 0.1.0 taggers, converted to PyTorch

Source: the PyPI wheel `{WHEEL_NAME}`
(sha256 `{wheel_sha256}`), project <https://github.com/jordipons/musicnn>,
by Jordi Pons and Xavier Serra, Music Technology Group, Universitat Pompeu Fabra.
Licence: ISC, see `LICENSE` (copied from the wheel's `musicnn-0.1.0.dist-info/LICENSE.md`).

Paper: J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music
audio tagging", ISMIR 2019 late-breaking/demo, arXiv:1909.06654.

## What was converted

- `MSD_musicnn.safetensors`: the wheel's `musicnn/MSD_musicnn/` checkpoint, trained on the
  Million Song Dataset's 50 most frequent Last.fm tags.
- `MTT_musicnn.safetensors`: `musicnn/MTT_musicnn/`, trained on MagnaTagATune's 50 top tags.
- `tags.json`: the 50 output tag names of each, in output order (`MSD_LABELS` and `MTT_LABELS`
  of the wheel's `configuration.py`).

Trainable parameters ({counts}) plus the batch-norm moving
averages, float32. The Adam slots and power counters of the training checkpoints were
dropped; the VGG baselines were not converted.

## How

`packaging/convert_musicnn.py` (run in a throwaway TensorFlow venv) reads each checkpoint with
TensorFlow's `NewCheckpointReader`, maps every variable to the state_dict key of
`moodlib.models.musicnn.Musicnn`, transposes the kernels to PyTorch's layout (front-end conv
kernels (time, freq, in, out) -> (out, in, freq, time); mid-end kernels (time, channels, 1, out)
-> Conv1d (out, channels, time); dense (in, out) -> (out, in)) and writes safetensors with
`safetensors.numpy`. `tests/test_musicnn.py` checks the PyTorch model against taggrams the
original package computed (`packaging/make_musicnn_fixtures.py`).

The models expect the wheel's input: `log10(1 + 10000 * mel)` of a 96-band Slaney mel power
spectrogram (16 kHz, `n_fft=512`, hop 256), in 3-s patches of 187 frames.

## One difference from the original package

The wheel's extractor computes `10000 * mel` in float16, which overflows on loud bins (most
3-s patches of music at ordinary levels); the network then outputs one fixed vector for every
such patch. moodlib computes the mel in float32 and so tags those patches from the music; where
the original's input is finite, the outputs agree (see `tests/test_musicnn.py`).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help=f"path to {WHEEL_NAME}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    wheel_sha256 = sha256_of(args.wheel)
    if wheel_sha256 != WHEEL_SHA256:
        parser.error(f"{args.wheel}: sha256 {wheel_sha256} is not that of {WHEEL_NAME}")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp)
        zipfile.ZipFile(args.wheel).extractall(unpacked)
        parameter_counts = {}
        for checkpoint in CHECKPOINTS:
            state = convert_checkpoint(f"{unpacked / 'musicnn' / checkpoint}/")
            save_file(state, str(args.out / f"{checkpoint}.safetensors"))
            parameter_counts[checkpoint] = sum(
                v.size for k, v in state.items() if k.endswith(("weight", "bias"))
            )
        labels = read_labels(unpacked / "musicnn" / "configuration.py")
        licence = (unpacked / "musicnn-0.1.0.dist-info" / "LICENSE.md").read_text(encoding="utf-8")

    (args.out / "tags.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")
    (args.out / "LICENSE").write_text(licence.rstrip() + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(
        readme_text(wheel_sha256, parameter_counts), encoding="utf-8"
    )
    print(f"wrote {', '.join(CHECKPOINTS)} ({parameter_counts}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
