"""Receptive-field-regularised ResNets of CP-JKU: CP-ResNet, FA-ResNet and Shake-Shake FA-ResNet.

Koutini, Chowdhury, Haunschmid, Eghbal-zadeh and Widmer, "Emotion and Theme Recognition in
Music with Frequency-Aware RF-Regularized CNNs", MediaEval 2019 (the top three runs of that
year). The networks are those of Koutini, Eghbal-zadeh and Widmer, "Receptive-Field-Regularized
CNN Variants for Acoustic Scene Classification", DCASE 2019 workshop (arXiv:1909.02859), and
this module follows the code that paper cites, github.com/kkoutini/cpjku_dcase19
(``models/cp_resnet.py``, ``models/cp_faresnet.py``, ``get_model_based_on_rho``):

- a 5x5 stride-2 input convolution (128 channels), then three stages of four basic residual
  blocks (128, 256, 512 channels; 26 layers in all), 2x2 max-pooling after blocks 1, 2 and 4
  of the first stage, and a 1x1 convolution to the classes + BN + global average pooling;
- the receptive field (RF) is set by ``rho``: the first block has a 3x3 then a 1x1 kernel,
  and of the 22 convolutions after it the first ``rho`` are 3x3 and the rest 1x1, so the RF
  grows with ``rho`` and stops growing early in the network. (The original writes this as a
  table of comparisons of ``rho - 7``; ``test_rho_kernels_match_published_config`` checks the
  two agree.) The MediaEval paper regularises the frequency RF and varies the time RF across
  ensemble members: ``rho_time`` sets the time axis separately;
- frequency awareness (FA): every convolution of a residual block sees one more input channel
  holding the frequency position of each row, ``2 f / F - 1`` for row ``f`` of ``F``, so that
  a network with a small RF still knows where in the spectrum it looks;
- Shake-Shake (Gastaldi, "Shake-Shake regularization", arXiv:1705.07485): each block has two
  residual branches mixed with a random weight per example in training, a different random
  weight for the gradients, and 0.5 at evaluation ("Shake-Shake-Image").

Initialisation follows the ``"weight_init": "fixup"`` of the original configuration: He-normal
convolutions, the first convolution of each branch scaled by ``blocks ** -0.5``, the second and
the classifier zero-initialised, batch norm kept.

Departures from the original: mono input (their DCASE models took two channels); a
``BatchNorm2d(1)`` on the input stands in for their dataset-wide input normalisation, so the
model takes moodlib's dB mel-spectrograms as they are; the MediaEval paper used 256 mel bands at
44.1 kHz (hop 512), moodlib feeds 96 bands at 12 kHz (hop 256) - the networks are fully
convolutional and the FA channel is relative, so only the RF measured in Hz and seconds changes.
The paper does not state ``rho``; the defaults are those of the cited code: ``rho=7`` for
CP-ResNet (its ``configs/cp_resnet.json``) and ``rho=5`` for the FA variants
(``exp_cp_faresnet.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from moodlib.models.registry import register_model

STAGE_CHANNELS_MULTIPLIERS = (1, 2, 4)
BLOCKS_PER_STAGE = 4
POOL_AFTER_BLOCKS = (1, 2, 4)
"""2x2 max-pooling follows these blocks (1-based) of the first stage."""

_INPUT_KERNEL, _INPUT_STRIDE, _INPUT_PADDING = 5, 2, 1


def rho_kernels(rho: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Kernel sizes ``(k1, k2)`` of each block of each stage for a given ``rho``.

    The first block's kernels are fixed (3 then 1); of the 22 convolutions that follow, in
    network order, the first ``rho`` are 3 wide and the others 1.
    """
    flat = [3, 1] + [3 if slot <= rho else 1 for slot in range(1, 2 * 3 * BLOCKS_PER_STAGE - 1)]
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    return tuple(
        tuple(pairs[s * BLOCKS_PER_STAGE : (s + 1) * BLOCKS_PER_STAGE])
        for s in range(len(STAGE_CHANNELS_MULTIPLIERS))
    )


def _axis_receptive_field(rho: int) -> int:
    """Exact receptive field along one axis, in input bins, of the deepest unit."""
    size, jump = _INPUT_KERNEL, _INPUT_STRIDE
    for stage, blocks in enumerate(rho_kernels(rho)):
        for block, kernels in enumerate(blocks, start=1):
            for kernel in kernels:
                size += (kernel - 1) * jump
            if stage == 0 and block in POOL_AFTER_BLOCKS:
                size += jump
                jump *= 2
    return size


def receptive_field(rho: int, rho_time: int | None = None) -> tuple[int, int]:
    """Receptive field ``(mel bands, frames)`` of a CP-ResNet's last feature map.

    Counts every convolution and pooling window on the longest path (the residual branches),
    so it is exact. The ``get_maxrf`` helper of the original code applies each pooling stride
    one convolution early and reports slightly more (145 instead of 135 for ``rho=7``).

    Examples
    --------
    >>> receptive_field(7)
    (135, 135)
    >>> receptive_field(5, rho_time=9)
    (87, 199)
    """
    return (
        _axis_receptive_field(rho),
        _axis_receptive_field(rho if rho_time is None else rho_time),
    )


class FrequencyPosition(nn.Module):
    """Appends one channel holding each row's frequency position, ``2 f / F - 1``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, rows, columns = x.shape
        position = torch.arange(rows, device=x.device, dtype=x.dtype) * (2.0 / rows) - 1.0
        position = position.view(1, 1, rows, 1).expand(batch, 1, rows, columns)
        return torch.cat([x, position], dim=1)


def _padding(kernel: tuple[int, int]) -> tuple[int, int]:
    # The original pads k // 3: "same" for the 1x1 and 3x3 kernels rho produces.
    return kernel[0] // 3, kernel[1] // 3


class ResidualBranch(nn.Module):
    """Conv-BN-ReLU-conv-BN, each convolution optionally fed the frequency-position channel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel1: tuple[int, int],
        kernel2: tuple[int, int],
        frequency_aware: bool,
    ) -> None:
        super().__init__()
        extra = 1 if frequency_aware else 0
        self.position = FrequencyPosition() if frequency_aware else nn.Identity()
        self.conv1 = nn.Conv2d(
            in_channels + extra, out_channels, kernel1, padding=_padding(kernel1), bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(
            out_channels + extra, out_channels, kernel2, padding=_padding(kernel2), bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(self.position(x))))
        return self.bn2(self.conv2(self.position(y)))


class _ShakeShakeMix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(
            (first.shape[0],) + (1,) * (first.ndim - 1), device=first.device, dtype=first.dtype
        )
        return alpha * first + (1.0 - alpha) * second

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta = torch.rand(
            (grad.shape[0],) + (1,) * (grad.ndim - 1), device=grad.device, dtype=grad.dtype
        )
        return beta * grad, (1.0 - beta) * grad


class ShakeShake(nn.Module):
    """Mixes two branches: random per example forward and backward in training ("shake-shake",
    when ``shake``), their mean otherwise."""

    def __init__(self, shake: bool = True) -> None:
        super().__init__()
        self.shake = shake

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if self.training and self.shake:
            return _ShakeShakeMix.apply(first, second)
        return 0.5 * (first + second)


class ResidualBlock(nn.Module):
    """One or two (shake-shake) residual branches plus a 1x1-conv-BN shortcut when the width
    changes, then ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel1: tuple[int, int],
        kernel2: tuple[int, int],
        frequency_aware: bool,
        branches: int,
        shake: bool,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            ResidualBranch(in_channels, out_channels, kernel1, kernel2, frequency_aware)
            for _ in range(branches)
        )
        self.mix = ShakeShake(shake) if branches == 2 else None
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            residual = self.branches[0](x)
        else:
            residual = self.mix(self.branches[0](x), self.branches[1](x))
        return F.relu(residual + self.shortcut(x))


class CPResNet(nn.Module):
    """CP-JKU's receptive-field-regularised ResNet on ``(batch, n_mels, frames)`` mels.

    Parameters
    ----------
    num_classes
        Number of output logits.
    rho, rho_time
        Receptive-field parameter of both axes, and optionally a separate one for time.
    base_channels
        Width of the first stage; the others have 2x and 4x.
    frequency_aware
        Feed each residual convolution the frequency-position channel (FA-ResNet).
    shake_shake
        Two residual branches per block (Shake-Shake ResNet).
    shake
        With ``shake_shake``, mix the branches randomly in training; otherwise average them.
    """

    def __init__(
        self,
        num_classes: int = 56,
        rho: int = 7,
        rho_time: int | None = None,
        base_channels: int = 128,
        frequency_aware: bool = False,
        shake_shake: bool = False,
        shake: bool = True,
    ) -> None:
        super().__init__()
        self.rho = rho
        self.rho_time = rho if rho_time is None else rho_time
        self.receptive_field = receptive_field(rho, rho_time)
        self.input_bn = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(
            nn.Conv2d(
                1,
                base_channels,
                _INPUT_KERNEL,
                stride=_INPUT_STRIDE,
                padding=_INPUT_PADDING,
                bias=False,
            ),
            nn.BatchNorm2d(base_channels),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_channels = base_channels
        frequency_kernels, time_kernels = rho_kernels(rho), rho_kernels(self.rho_time)
        for stage, multiplier in enumerate(STAGE_CHANNELS_MULTIPLIERS):
            out_channels = base_channels * multiplier
            layers: list[nn.Module] = []
            for block in range(BLOCKS_PER_STAGE):
                (f1, f2), (t1, t2) = frequency_kernels[stage][block], time_kernels[stage][block]
                layers.append(
                    ResidualBlock(
                        in_channels,
                        out_channels,
                        (f1, t1),
                        (f2, t2),
                        frequency_aware,
                        branches=2 if shake_shake else 1,
                        shake=shake,
                    )
                )
                if stage == 0 and block + 1 in POOL_AFTER_BLOCKS:
                    layers.append(nn.MaxPool2d(2, 2))
                in_channels = out_channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Conv2d(in_channels, num_classes, 1, bias=False)
        self.classifier_bn = nn.BatchNorm2d(num_classes)
        self.embedding_dim = in_channels
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        blocks = [m for m in self.modules() if isinstance(m, ResidualBlock)]
        for block in blocks:
            for branch in block.branches:
                conv1 = branch.conv1
                fan_out = conv1.kernel_size[0] * conv1.kernel_size[1] * conv1.out_channels
                nn.init.normal_(conv1.weight, 0.0, len(blocks) ** -0.5 * math.sqrt(2.0 / fan_out))
                nn.init.zeros_(branch.conv2.weight)
            if isinstance(block.shortcut, nn.Sequential):
                conv = block.shortcut[0]
                nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / conv.out_channels))
        nn.init.zeros_(self.classifier.weight)

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``(batch, 4 * base_channels, rows, columns)``."""
        return self.stages(self.stem(self.input_bn(mel.unsqueeze(1))))

    def forward_with_embedding(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the globally averaged last feature map."""
        features = self.forward_features(mel)
        logits = self.classifier_bn(self.classifier(features)).mean(dim=(2, 3))
        return logits, features.mean(dim=(2, 3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(mel)[0]


@register_model
def cpjku_resnet(num_classes: int = 56, rho: int = 7, **kwargs) -> CPResNet:
    """CP-ResNet, the single RF-regularised ResNet of CP-JKU's MediaEval 2019 paper
    (Table 1, "CP ResNet")."""
    return CPResNet(num_classes=num_classes, rho=rho, **kwargs)


@register_model
def cpjku_faresnet(num_classes: int = 56, rho: int = 5, **kwargs) -> CPResNet:
    """Frequency-aware CP-ResNet, the members of CP-JKU's "FAResNet" run."""
    return CPResNet(num_classes=num_classes, rho=rho, frequency_aware=True, **kwargs)


@register_model
def cpjku_shake_faresnet(
    num_classes: int = 56, rho: int = 5, shake: bool = True, **kwargs
) -> CPResNet:
    """Shake-Shake frequency-aware CP-ResNet, the members of CP-JKU's "ShakeFAResNet" run
    (their best single-architecture submission). ``shake=False`` averages the branches."""
    return CPResNet(
        num_classes=num_classes,
        rho=rho,
        frequency_aware=True,
        shake_shake=True,
        shake=shake,
        **kwargs,
    )
