"""The VGG-ish CNN published as the MTG-Jamendo mood/theme baseline.

Bogdanov et al., "The MTG-Jamendo Dataset for Automatic Music Tagging", ICML 2019 workshop;
code: github.com/MTG/mtg-jamendo-dataset, ``scripts/baseline`` (Apache 2.0). The layer names
match the published ``best_model.pth`` so its state_dict loads unchanged. The original applies a
sigmoid inside ``forward``; here ``forward`` returns logits like every registered model and the
Tagger applies the sigmoid.

Input: mel spectrogram ``(batch, 96, 1366)`` in the dataset's dB scale (a 29.1 s segment).

The embedding (what a personal pack's head learns from) is the 64 pooled features the tag
layer reads; ``embedding_blocks=k`` appends the mean and the maximum over frequency and time
of each of the first ``k`` blocks' channels. Those carry the timbre and loudness that the 64
tag-trained features pool away: with ``k=2`` (448 values) personal heads learnt a simulated
listener's taste markedly better (docs/default-pack.md).
"""

from __future__ import annotations

import torch
from torch import nn

from moodlib.models.registry import register_model

_CHANNELS = (64, 128, 128, 128, 64)
_POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))


class VggishBaseline(nn.Module):
    """BatchNorm on the input, five conv3x3-BN-ELU-maxpool blocks, dropout, one linear layer."""

    cpu_channels_last = True
    """The Tagger runs this model on channels-last tensors on the CPU too: oneDNN computes
    its 3x3 convolutions 1.7 times faster so (``docs/benchmarks.md``)."""

    def __init__(self, num_classes: int = 56, dropout: float = 0.5, embedding_blocks: int = 0):
        super().__init__()
        if not 0 <= embedding_blocks <= len(_CHANNELS):
            raise ValueError(
                f"embedding_blocks must be 0 to {len(_CHANNELS)}, not {embedding_blocks}"
            )
        self.embedding_blocks = embedding_blocks
        self.bn_init = nn.BatchNorm2d(1)
        in_channels = 1
        for i, (channels, pool) in enumerate(zip(_CHANNELS, _POOLS, strict=True), start=1):
            setattr(self, f"conv_{i}", nn.Conv2d(in_channels, channels, 3, padding=1))
            setattr(self, f"bn_{i}", nn.BatchNorm2d(channels))
            setattr(self, f"mp_{i}", nn.MaxPool2d(pool))
            in_channels = channels
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(_CHANNELS[-1], num_classes)
        self.activation = nn.ELU()

    def forward_with_embedding(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn_init(mel.unsqueeze(1))
        block_statistics = []
        for i in range(1, len(_CHANNELS) + 1):
            conv, bn, pool = (getattr(self, f"{n}_{i}") for n in ("conv", "bn", "mp"))
            # ELU after the max pooling: it rises monotonically, so ELU(max) = max(ELU), and
            # it is computed on 8 to 16 times fewer values (a third of the CPU time).
            x = self.activation(pool(bn(conv(x))))
            if i <= self.embedding_blocks:
                block_statistics += [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))]
        pooled = x.flatten(1)
        return self.dense(self.dropout(pooled)), torch.cat([pooled, *block_statistics], dim=1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(mel)[0]


@register_model
def vggish_baseline(
    num_classes: int = 56, dropout: float = 0.5, embedding_blocks: int = 0
) -> VggishBaseline:
    """The official MTG-Jamendo baseline (96 x 1366 input; embedding: 64 pooled features,
    plus the mean and maximum of each channel of the first ``embedding_blocks`` blocks)."""
    return VggishBaseline(
        num_classes=num_classes, dropout=dropout, embedding_blocks=embedding_blocks
    )
