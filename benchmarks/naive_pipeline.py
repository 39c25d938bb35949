"""A pack's models run the obvious way: the yardstick ``scan_throughput.py`` holds the scan to.

Each file is loaded whole with ``librosa.load`` (mono, resampled to the pack's rate with
soxr's VHQ recipe, moodlib's: librosa's default moves scores by up to 7e-4), turned
into librosa's mel spectrogram with the pack's frontend parameters, cut into the pack's
segments (``Segmenting.starts``), and every member runs on the track's segments, one track at
a time, as plain PyTorch modules (``Pack.load_models``) in PyTorch's default threading. The
scores are combined as the Tagger combines them (``inference.tag_projections``), so they can
be compared with a scan's.

    python benchmarks/naive_pipeline.py --pack starter --out scores.json FILE...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import librosa
import numpy as np
import scipy.signal
import torch

from moodlib.inference import tag_projections
from moodlib.packstore import PackStore


def mel_spectrogram(waveform: np.ndarray, frontend: dict) -> np.ndarray:
    """librosa's mel spectrogram of ``waveform`` with a pack's ``MelFrontend`` parameters."""
    if "hpcp" in frontend:
        raise SystemExit("the naive pipeline has no HPCP: pick a pack with a mel-only frontend")
    n_fft = frontend["n_fft"]
    window = "hann" if frontend["window"] == "hann_periodic" else scipy.signal.windows.hann(n_fft)
    mel = librosa.feature.melspectrogram(
        y=waveform,
        sr=frontend["sample_rate"],
        n_fft=n_fft,
        hop_length=frontend["hop_length"],
        window=window,
        center=frontend["center"],
        pad_mode="constant",
        power=frontend["power"],
        n_mels=frontend["n_mels"],
        fmin=frontend["f_min"],
        fmax=frontend["f_max"],
        htk=frontend["htk"],
        norm=frontend["mel_norm"],
    )
    if frontend["scale"] == "essentia_db":
        return 20.0 * np.log10(np.maximum(mel, 1e-10))
    return np.log10(1.0 + frontend["log_multiplier"] * mel)


def track_scores(path: Path, pack, models: dict, projections: dict, norm: np.ndarray) -> list:
    frontend = pack.frontend
    waveform, _ = librosa.load(path, sr=frontend["sample_rate"], mono=True, res_type="soxr_vhq")
    mel = mel_spectrogram(waveform, frontend).astype(np.float32)
    plan = pack.segmenting
    if mel.shape[1] < plan.frames:
        mel = np.pad(mel, ((0, 0), (0, plan.frames - mel.shape[1])), constant_values=mel.min())
    segments = np.stack([mel[:, s : s + plan.frames] for s in plan.starts(mel.shape[1])])
    votes = np.zeros(len(norm), np.float32)
    with torch.no_grad():
        for name, model in models.items():
            probabilities = torch.sigmoid(model(torch.from_numpy(segments))).numpy()
            votes += probabilities.mean(axis=0) @ projections[name]
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(norm > 0, votes / norm, np.nan)
    return [None if np.isnan(s) else float(s) for s in scores]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--pack", required=True)
    parser.add_argument("--out", type=Path, help="write {path: 56 scores (null: not predicted)}")
    args = parser.parse_args()
    pack = PackStore().get(args.pack)
    models = pack.load_models("cpu")
    projections, norm = tag_projections(pack)
    scores = {str(path): track_scores(path, pack, models, projections, norm) for path in args.files}
    if args.out:
        args.out.write_text(json.dumps(scores))
    print(f"{len(scores)} tracks scored with {pack.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
