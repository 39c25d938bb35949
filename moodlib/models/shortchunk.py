"""Short-chunk ResNet of Won et al., and USC SAIL's variant with a longer chunk.

Won, Ferraro, Bogdanov and Serra, "Evaluation of CNN-based Automatic Music Tagging Models",
SMC 2020 (arXiv:2006.00751): a VGG-like stack of seven residual layers of 3x3 convolutions,
each halving both axes, over a 3.69-s chunk (59049 samples at 16 kHz, 128 mel bands), global
max-pooling over what is left of time, then dense-BN-ReLU-dropout-dense. The layers follow
``ShortChunkCNN_Res`` / ``Res_2d`` in github.com/minzwon/sota-music-tagging-models
(``training/model.py``, ``training/modules.py``, MIT licence): the paper's 2x2 max-pooling is a
stride-2 first convolution there, and the shortcut of a downsampling layer is a stride-2 3x3
convolution + BN. Widths are 128, 128, 256, 256, 256, 256, 512.

Knox, Greer, Ma, Kuo, Somandepalli and Narayanan (USC SAIL), "MediaEval 2020 Emotion and
Theme Recognition in Music Task: Loss Function Approaches for Multi-label Music Tagging": the
same network with "the kernel size of the final two layers" changed so that the temporal
receptive field grows from 3.69 s to 4.6 s. Their code (github.com/usc-sail/media-eval-2020,
``train/model.py``, ``train/main.py``) realises this with strides of (2, 3) - frequency,
time - in the last two layers, trains on 4.6-s chunks (73600 samples at 16 kHz) that the
convolutions reduce to a single time step, and narrows the first dense layer to 256 units;
this module follows the code.

For both, the seconds are what matters, not the frame counts: moodlib's 12 kHz, hop-256
frames give 173 frames for 3.69 s and 216 for 4.6 s (231 and 288 at their 16 kHz). With 96 mel
bands (their 128) the seven halvings still leave one frequency row. Inputs of any length run:
the global max-pooling covers whatever time steps remain. The model keeps the original's
``BatchNorm2d(1)`` on the input spectrogram.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moodlib.models.registry import register_model

LAYER_WIDTH_MULTIPLIERS = (1, 1, 2, 2, 2, 2, 4)
WON_STRIDES = ((2, 2),) * 7
USC_STRIDES = ((2, 2),) * 5 + ((2, 3),) * 2
WON_CHUNK_SECONDS = 59049 / 16000
USC_CHUNK_SECONDS = 73600 / 16000


class ResBlock2d(nn.Module):
    """Conv3x3(stride)-BN-ReLU-conv3x3-BN plus a conv3x3(stride)-BN shortcut when the shape
    changes, then ReLU (Won et al.'s ``Res_2d``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != (1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(residual + self.shortcut(x))


class ShortChunkResNet(nn.Module):
    """Seven residual layers, global max-pooling and a two-layer dense head.

    Parameters
    ----------
    num_classes
        Number of output logits.
    n_channels
        Width of the first two layers; later layers have 2x and 4x.
    strides
        ``(frequency, time)`` stride of each of the seven layers.
    dense_units
        Width of the hidden dense layer; ``None`` means ``4 * n_channels`` (Won et al.).
    dropout
        Dropout before the output layer.
    chunk_seconds
        Length of the chunks the model was designed for (the paper's training input); only
        informative, since inputs of any length run.
    """

    def __init__(
        self,
        num_classes: int = 56,
        n_channels: int = 128,
        strides: tuple[tuple[int, int], ...] = WON_STRIDES,
        dense_units: int | None = None,
        dropout: float = 0.5,
        chunk_seconds: float = WON_CHUNK_SECONDS,
    ) -> None:
        super().__init__()
        if len(strides) != len(LAYER_WIDTH_MULTIPLIERS):
            raise ValueError(f"need {len(LAYER_WIDTH_MULTIPLIERS)} strides, got {len(strides)}")
        self.chunk_seconds = chunk_seconds
        self.spec_bn = nn.BatchNorm2d(1)
        layers = []
        in_channels = 1
        for multiplier, stride in zip(LAYER_WIDTH_MULTIPLIERS, strides, strict=True):
            layers.append(ResBlock2d(in_channels, n_channels * multiplier, tuple(stride)))
            in_channels = n_channels * multiplier
        self.layers = nn.Sequential(*layers)
        dense_units = 4 * n_channels if dense_units is None else dense_units
        self.embedding_dim = in_channels
        self.head = nn.Sequential(
            nn.Linear(in_channels, dense_units),
            nn.BatchNorm1d(dense_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense_units, num_classes),
        )

    def forward_with_embedding(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the globally max-pooled output of the last residual layer."""
        features = self.layers(self.spec_bn(mel.unsqueeze(1)))
        # One frequency row is left for up to 128 mel bands, as in the original; with more,
        # the maximum also runs over the remaining rows.
        embedding = features.amax(dim=(2, 3))
        return self.head(embedding), embedding

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(mel)[0]


@register_model
def shortchunk_resnet(num_classes: int = 56, **kwargs) -> ShortChunkResNet:
    """Won et al.'s short-chunk ResNet ("Short-chunk CNN + Res"), 3.69-s chunks."""
    return ShortChunkResNet(num_classes=num_classes, **kwargs)


@register_model
def shortchunk_resnet_usc(num_classes: int = 56, **kwargs) -> ShortChunkResNet:
    """USC SAIL's MediaEval 2020 short-chunk ResNet: time stride 3 in the last two layers,
    4.6-s chunks, a 256-unit hidden layer."""
    kwargs.setdefault("strides", USC_STRIDES)
    kwargs.setdefault("dense_units", 2 * kwargs.get("n_channels", 128))
    kwargs.setdefault("chunk_seconds", USC_CHUNK_SECONDS)
    return ShortChunkResNet(num_classes=num_classes, **kwargs)
