"""musicnn: musically motivated CNNs for music audio tagging, ported from TensorFlow.

Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging",
ISMIR 2019 late-breaking demo (arXiv:1909.06654); the architecture is that of Pons et al.,
"End-to-end learning for music audio tagging at scale", ISMIR 2018. This is a layer-for-layer
PyTorch port of ``build_musicnn`` in the ``musicnn`` 0.1.0 wheel's ``models.py`` (ISC licence,
Music Technology Group, Universitat Pompeu Fabra): the pretrained MSD_musicnn (Million Song
Dataset, 50 tags) and MTT_musicnn (MagnaTagATune, 50 tags) checkpoints load into it after
``packaging/convert_musicnn.py`` and give the original taggrams (``tests/test_musicnn.py``).

The network, for a mel patch of 96 bands x 187 frames (3 s at 16 kHz, hop 256):

- front end: batch norm on the input, then five conv-ReLU-BN branches whose outputs are
  max-pooled over the whole frequency axis: two *timbral* branches (7 frames x 38 and x 67 mel
  bands, 204 filters each) and three *temporal* branches (128, 64 and 32 frames x 1 band, 51
  filters each); all are padded in time like TensorFlow's ``"same"``, so 187 frames stay 187.
- mid end: three conv-ReLU-BN layers of 7 frames over all channels (64 filters), the second
  and third with residual connections; the front-end and mid-end outputs are concatenated
  (561 + 3 x 64 = 753 channels).
- back end: max and mean over time, interleaved per channel (1506 values, the order of
  TensorFlow's flatten), BN, dropout 0.5, dense 200 + ReLU, BN, dropout 0.5, dense to the tags.

Input scale: the wheel feeds ``log10(1 + 10000 * mel_power)`` of a librosa mel spectrogram
(16 kHz, ``n_fft=512``, ``hop_length=256``, 96 bands, Slaney mel), i.e. ``MelFrontend(
sample_rate=16000, window="hann_periodic", scale="log10_1p")``. The wheel's extractor casts
the mel power to float16 before the product, which overflows on loud bins (mel power above
~6.55, found in most 3-s patches of music at ordinary levels): the input holds ``inf`` and the
network outputs one fixed vector for every such patch, whatever the music (MSD: rock,
electronic, pop at 0.2-0.3). This port is fed the float32 log-mel. Where the original's
input is finite, it gives the original's tags to ~1e-6 from the same mel patches and to
~2e-4 from the same audio (the original's float16 rounding of the mel is the difference); on
the loud patches it tags the music instead of saturating.

Batch-norm epsilons are TensorFlow's default (1e-3). The embedding (``forward_with_embedding``)
is the back end's 200-d *penultimate* layer (dense + ReLU + BN, before the output dropout),
what the wheel's extractor calls ``'penultimate'``: fixed-size and length-independent, suited
to training small per-tag heads on top.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from moodlib.models.registry import register_model

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "resources" / "packs" / "starter"
"""Converted checkpoints (``{MSD,MTT}_musicnn.safetensors``) and ``tags.json``."""

PATCH_FRAMES = 187
"""Frames per 3-s patch at 16 kHz, hop 256: the input length the models were trained on."""

# TensorFlow's tf.compat.v1.layers.batch_normalization default.
_TF_BN_EPS = 1e-3


def _same_padding(size: int) -> tuple[int, int]:
    """TensorFlow ``"same"`` padding for one axis (stride 1): the odd pixel goes after."""
    before = (size - 1) // 2
    return before, size - 1 - before


class PooledConvBlock(nn.Module):
    """Conv (time-'same', frequency-valid) -> ReLU -> BN -> max over the frequency axis.

    Input ``(batch, 1, n_mels, frames)``, output ``(batch, filters, frames)``. With a tall kernel
    it is a timbral filter, with a ``1 x time_size`` kernel a temporal one.
    """

    def __init__(self, filters: int, freq_size: int, time_size: int) -> None:
        super().__init__()
        self.time_padding = _same_padding(time_size)
        self.conv = nn.Conv2d(1, filters, kernel_size=(freq_size, time_size))
        self.bn = nn.BatchNorm2d(filters, eps=_TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.time_padding)
        if self.training or not self.bn.track_running_stats:
            return self.bn(F.relu(self.conv(x))).amax(dim=2)
        # In eval mode BN is a per-channel a * v + b, and ReLU and the max over frequency
        # commute with it when a >= 0; where a < 0 the max of a * v is a times the min of v,
        # the max of the filter turned negative. So the filters with a < 0 are negated, one max
        # is taken, and ReLU and BN run on the pooled values: 30 to 96 times fewer, a fifth of
        # the network's CPU time saved, the same outputs to float rounding.
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        sign = torch.where(scale < 0, -1.0, 1.0)
        peak = F.conv2d(x, self.conv.weight * sign[:, None, None, None], self.conv.bias * sign)
        pooled = F.relu(peak.amax(dim=2) * sign[:, None])
        return pooled * scale[:, None] + (self.bn.bias - self.bn.running_mean * scale)[:, None]


class MusicnnFrontend(nn.Module):
    """Input BN, two timbral and three temporal branches, concatenated on the channel axis."""

    def __init__(
        self,
        n_mels: int = 96,
        num_filt: float = 1.6,
        timbral_fractions: tuple[float, ...] = (0.4, 0.7),
        timbral_frames: int = 7,
        temporal_frames: tuple[int, ...] = (128, 64, 32),
    ) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=_TF_BN_EPS)
        timbral = [
            PooledConvBlock(int(num_filt * 128), int(fraction * n_mels), timbral_frames)
            for fraction in timbral_fractions
        ]
        temporal = [PooledConvBlock(int(num_filt * 32), 1, frames) for frames in temporal_frames]
        self.branches = nn.ModuleList(timbral + temporal)
        self.out_channels = sum(branch.conv.out_channels for branch in self.branches)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(mel.unsqueeze(1))
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class MidendLayer(nn.Module):
    """Conv1d of 7 frames over all channels ('same' in time) -> ReLU -> BN."""

    def __init__(self, in_channels: int, filters: int, frames: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, frames, padding=frames // 2)
        self.bn = nn.BatchNorm1d(filters, eps=_TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class MusicnnMidend(nn.Module):
    """Three conv layers, the last two residual; returns the dense concatenation
    ``[front end, layer 1, layer 2, layer 3]`` on the channel axis."""

    def __init__(self, in_channels: int, filters: int = 64) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [MidendLayer(in_channels, filters)] + [MidendLayer(filters, filters) for _ in range(2)]
        )
        self.out_channels = in_channels + 3 * filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.layers[0](x)
        second = self.layers[1](first) + first
        third = self.layers[2](second) + second
        return torch.cat([x, first, second, third], dim=1)


class MusicnnBackend(nn.Module):
    """Temporal max and mean pooling, then BN-dropout-dense-ReLU-BN (the penultimate
    embedding) and dropout-dense to the logits."""

    def __init__(
        self, in_channels: int, units: int = 200, num_classes: int = 50, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.pool_bn = nn.BatchNorm1d(2 * in_channels, eps=_TF_BN_EPS)
        self.dense = nn.Linear(2 * in_channels, units)
        self.dense_bn = nn.BatchNorm1d(units, eps=_TF_BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(units, num_classes)

    def forward_with_embedding(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # TensorFlow concatenates (channels, [max, mean]) and flattens: max and mean of each
        # channel sit side by side, which the converted dense kernel expects.
        pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)
        hidden = F.relu(self.dense(self.dropout(self.pool_bn(pooled))))
        penultimate = self.dense_bn(hidden)
        return self.classifier(self.dropout(penultimate)), penultimate


class Musicnn(nn.Module):
    """musicnn tagger: mel ``(batch, n_mels, frames)`` in the ``log10(1 + 10000 x)`` scale
    -> logits ``(batch, num_classes)``. Trained on 187-frame patches; any length of at least
    a few frames runs (the back end pools over time)."""

    def __init__(
        self,
        num_classes: int = 50,
        n_mels: int = 96,
        num_filt_frontend: float = 1.6,
        num_filt_midend: int = 64,
        num_units_backend: int = 200,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.frontend = MusicnnFrontend(n_mels=n_mels, num_filt=num_filt_frontend)
        self.midend = MusicnnMidend(self.frontend.out_channels, num_filt_midend)
        self.backend = MusicnnBackend(
            self.midend.out_channels, num_units_backend, num_classes, dropout
        )
        self.embedding_dim = num_units_backend

    def forward_with_embedding(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the 200-d penultimate embedding."""
        return self.backend.forward_with_embedding(self.midend(self.frontend(mel)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(mel)[0]


@cache
def pretrained_tags(checkpoint: str) -> tuple[str, ...]:
    """The 50 tag names, in output order, of ``"MSD_musicnn"`` or ``"MTT_musicnn"``."""
    tags = json.loads((WEIGHTS_DIR / "tags.json").read_text(encoding="utf-8"))
    return tuple(tags[checkpoint])


def _build(checkpoint: str, pretrained: bool, **kwargs) -> Musicnn:
    model = Musicnn(**kwargs)
    if pretrained:
        model.load_state_dict(load_file(WEIGHTS_DIR / f"{checkpoint}.safetensors"))
        model.eval()
    return model


@register_model
def musicnn_msd(pretrained: bool = False, **kwargs) -> Musicnn:
    """musicnn trained on the Million Song Dataset's top 50 Last.fm tags (MSD_musicnn).

    ``pretrained=True`` loads the converted weights and returns the model in eval mode.
    """
    return _build("MSD_musicnn", pretrained, **kwargs)


@register_model
def musicnn_mtt(pretrained: bool = False, **kwargs) -> Musicnn:
    """musicnn trained on MagnaTagATune's top 50 tags (MTT_musicnn).

    ``pretrained=True`` loads the converted weights and returns the model in eval mode.
    """
    return _build("MTT_musicnn", pretrained, **kwargs)
