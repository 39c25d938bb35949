"""Mirable's CRNN with an HPCP branch and stochastic depth (MediaEval 2021).

Tan, "Semi-Supervised Music Emotion Recognition using Noisy Student Training and Harmonic
Pitch Class Profiles", MediaEval 2021 (arXiv:2112.00702); code:
github.com/gudgud96/noisy-student-emotion-training (``models.py``: ``CRNNBlock``,
``HPCPModel``, ``NoisyHPCPModel``). A CRNN in the manner of Choi et al. (ICASSP 2017) with:

- three ConvBlocks (3x3 conv, BN, ReLU, 64 channels) with residual connections, each followed
  by 2x2 generalised-mean pooling (GeM, Radenović et al., learnable exponent, initially 3);
  the first block's residual is its one-channel input, broadcast over the 64 channels;
- a bidirectional GRU (256 units) over time on the flattened channels x bands; its two final
  states, concatenated, go through a dense layer + ReLU to a 256-d representation;
- the same stack, as a second branch, over a 12-bin HPCP; the two 256-d representations are
  concatenated and a dense-ReLU-dense head gives the tags ("long-hpcp", "short-hpcp");
- for the noisy student ("-noisy" rows of the paper's Table 1): three StochasticConvBlocks in
  each branch, ConvBlocks with dropout 0.1 after the ReLU that training bypasses with
  probability 0.1 and evaluation always runs, and dropout 0.3 in the head.

The architecture is the same for the paper's short (~9.25 s) and long (~185 s) inputs; only the
training chunks differ. The paper computes mels at 44.1 kHz (hop 512) averaged over 10 frames
(8.6 frames/s) and HPCPs at 21.5 frames/s; moodlib feeds one tensor of 46.9 frames/s,
``(batch, n_mels + 12, frames)`` - mel bands stacked on the HPCP of
:func:`moodlib.audio.frontend.build_frontend` - and the model averages the mel frames in
fives (9.4/s) and the HPCP frames in pairs (23.4/s) before the branches, so a 9.25-s chunk
gives 86 mel and 216 HPCP steps (the paper's 80 and 200).

Departures, and why: the mel branch receives ``(mel_db + 100) / 100`` rather than
``log1p(power mel) / 9.6``: both put silence at 0 and loud bins near 1, which GeM (it clamps
its input at 1e-6) needs; averaging happens after the dB conversion instead of before it. In
the original the StochasticConvBlocks are plain (bypassing = identity) blocks and the bypass is
drawn once per batch and also at evaluation time; here they are residual blocks whose branch
is dropped per example in training and scaled by 1 / (1 - p) when kept, so evaluation (all
blocks on, as the paper says) needs no rescaling. The original's unused ``GRUCell`` and its
dropout on the output probabilities are left out, and 96 mel bands are used instead of 128.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moodlib.models.registry import register_model

POOLINGS_PER_BRANCH = 3
"""Each branch halves bands and time three times (2x2 GeM)."""


class GeM(nn.Module):
    """Generalised-mean pooling over 2x2 windows with a learnable exponent."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x.clamp(min=self.eps).pow(self.p), 2, stride=2).pow(1.0 / self.p)


class ConvBlock(nn.Module):
    """``x + ReLU(BN(conv3x3(x)))``: the input is broadcast when it has one channel."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.bn(self.conv(x)))


class DropPath(nn.Module):
    """Zeroes its input for a random ``p`` of the examples in training and scales the rest by
    ``1 / (1 - p)``; the identity in evaluation."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) < keep
        return x * mask.to(x.dtype) / keep


class StochasticConvBlock(nn.Module):
    """A residual ConvBlock with dropout whose branch stochastic depth bypasses."""

    def __init__(self, channels: int, drop_path: float, dropout: float) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.branch(x))


class CRNNBranch(nn.Module):
    """ConvBlock-GeM, optional StochasticConvBlocks, two more ConvBlock-GeM, a bidirectional
    GRU over time, and dense + ReLU: ``(batch, 1, bands, steps)`` -> ``(batch, hidden)``."""

    def __init__(
        self,
        bands: int,
        channels: int,
        hidden: int,
        stochastic_blocks: int,
        drop_path: float,
        block_dropout: float,
    ) -> None:
        super().__init__()
        if bands < 2**POOLINGS_PER_BRANCH:
            raise ValueError(f"a branch needs at least {2**POOLINGS_PER_BRANCH} bands, got {bands}")
        self.first = nn.Sequential(ConvBlock(1, channels), GeM())
        self.stochastic = nn.Sequential(
            *(
                StochasticConvBlock(channels, drop_path, block_dropout)
                for _ in range(stochastic_blocks)
            )
        )
        self.rest = nn.Sequential(
            ConvBlock(channels, channels), GeM(), ConvBlock(channels, channels), GeM()
        )
        self.gru = nn.GRU(
            channels * (bands // 2**POOLINGS_PER_BRANCH),
            hidden,
            batch_first=True,
            bidirectional=True,
        )
        self.project = nn.Linear(2 * hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rest(self.stochastic(self.first(x)))
        sequence = x.flatten(1, 2).transpose(1, 2)  # (batch, steps, channels * bands)
        _, last_states = self.gru(sequence)  # (2 directions, batch, hidden)
        return F.relu(self.project(torch.cat([last_states[0], last_states[1]], dim=-1)))


class MirableCRNN(nn.Module):
    """Mirable's CRNN on ``(batch, n_mels [+ n_hpcp], frames)``: mel dB bands, then (with
    ``hpcp``) the HPCP bins, stacked on one axis.

    Parameters
    ----------
    num_classes
        Number of output logits.
    n_mels, n_hpcp
        Bands of each part of the input.
    hpcp
        Whether the input carries HPCP bins and the model its HPCP branch.
    channels, hidden
        Convolution width and GRU / representation width.
    mel_time_pool, hpcp_time_pool
        Frames averaged into one step before each branch.
    stochastic_blocks, drop_path, block_dropout
        StochasticConvBlocks per branch, their bypass probability in training, and the
        dropout inside them.
    head_dropout
        Dropout after the head's hidden layer.
    mel_floor_db, mel_range_db
        The mel branch sees ``(mel - mel_floor_db) / mel_range_db``.
    """

    def __init__(
        self,
        num_classes: int = 56,
        n_mels: int = 96,
        n_hpcp: int = 12,
        hpcp: bool = True,
        channels: int = 64,
        hidden: int = 256,
        mel_time_pool: int = 5,
        hpcp_time_pool: int = 2,
        stochastic_blocks: int = 0,
        drop_path: float = 0.1,
        block_dropout: float = 0.1,
        head_dropout: float = 0.0,
        mel_floor_db: float = -100.0,
        mel_range_db: float = 100.0,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.n_hpcp = n_hpcp if hpcp else 0
        self.mel_time_pool = mel_time_pool
        self.hpcp_time_pool = hpcp_time_pool
        self.mel_floor_db = mel_floor_db
        self.mel_range_db = mel_range_db
        branch_args = (channels, hidden, stochastic_blocks, drop_path, block_dropout)
        self.mel_branch = CRNNBranch(n_mels, *branch_args)
        self.hpcp_branch = CRNNBranch(n_hpcp, *branch_args) if hpcp else None
        self.embedding_dim = hidden * (2 if hpcp else 1)
        self.head = nn.Sequential(
            nn.Linear(self.embedding_dim, hidden),
            nn.Dropout(head_dropout),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    @property
    def min_frames(self) -> int:
        """Shortest input, in frames, that survives the time averaging and three poolings."""
        pools = [self.mel_time_pool] + ([self.hpcp_time_pool] if self.hpcp_branch else [])
        return max(pools) * 2**POOLINGS_PER_BRANCH

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the concatenated branch representations."""
        bands = self.n_mels + self.n_hpcp
        if x.ndim != 3 or x.shape[1] != bands:
            raise ValueError(f"expected input of shape (batch, {bands}, frames), got {x.shape}")
        if x.shape[2] < self.min_frames:
            raise ValueError(f"need at least {self.min_frames} frames, got {x.shape[2]}")
        mel = (x[:, : self.n_mels] - self.mel_floor_db) / self.mel_range_db
        mel = F.avg_pool1d(mel, self.mel_time_pool)
        representations = [self.mel_branch(mel.unsqueeze(1))]
        if self.hpcp_branch is not None:
            hpcp = F.avg_pool1d(x[:, self.n_mels :], self.hpcp_time_pool)
            representations.append(self.hpcp_branch(hpcp.unsqueeze(1)))
        embedding = torch.cat(representations, dim=-1)
        return self.head(embedding), embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]


@register_model
def mirable_crnn(num_classes: int = 56, hpcp: bool = True, **kwargs) -> MirableCRNN:
    """The teacher: mel + HPCP CRNN ("short-hpcp" / "long-hpcp"; ``hpcp=False``:
    "short-normal" / "long-normal")."""
    return MirableCRNN(num_classes=num_classes, hpcp=hpcp, **kwargs)


@register_model
def mirable_crnn_noisy(num_classes: int = 56, hpcp: bool = True, **kwargs) -> MirableCRNN:
    """The noisy student ("-hpcp-noisy"): three StochasticConvBlocks per branch (bypassed with
    probability 0.1 in training), dropout 0.3 in the head."""
    kwargs.setdefault("stochastic_blocks", 3)
    kwargs.setdefault("drop_path", 0.1)
    kwargs.setdefault("head_dropout", 0.3)
    return MirableCRNN(num_classes=num_classes, hpcp=hpcp, **kwargs)
