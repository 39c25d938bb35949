"""Data augmentation, label balancing and sampling of the MediaEval mood/theme papers.

Each method is a small function or module whose parameters are data (the recipes hold the
values each paper states):

- :func:`crop_start` / :func:`crop`: where a training crop starts (``random`` anywhere in the
  track, ``start`` at the first frame as Mirable's long mode, ``center``), and cutting it, with
  short tracks repeated to the crop length (``moodlib.audio.tiling``), as the app's Tagger does.
- :func:`mixup` (Zhang et al. 2018): convex combinations of pairs of examples and of their
  labels. CP-JKU (Koutini et al. 2019) draw one ``lambda ~ Beta(alpha, alpha)`` per example and
  keep ``max(lambda, 1 - lambda)`` so that each mixed example stays nearer its own input
  (alpha 0.3 in their released configuration); USC SAIL's code draws one ``lambda`` per batch
  (alpha 1).
- :class:`SpecAugment` (Park et al. 2019): time and frequency masks. HCMUS (MediaEval 2020) mask
  70% of the inputs with two time and two frequency masks; Mirable (2021) draw the largest mask
  width per batch between 20 and 60 (30 and 90 for the noisy student).
- :func:`gaussian_noise`: Mirable's student input noise, ``x + weight * N(0, 1)``.
- :func:`single_label`: HCMUS's "data balance" (also used by SELAB-HCMUS 2021): every track keeps
  one tag, its rarest in the training set.
- :class:`ClassAwareSampler` (Shen et al. 2016), which USC SAIL tried: draw a tag uniformly, then
  a track carrying it.

Random draws come from torch's global generator (numpy's for the sampler, seeded per epoch),
which the trainer seeds, so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from moodlib.audio.tiling import tile_to_length

CROP_MODES = ("random", "start", "center")

Width = int | tuple[int, int]


def crop_start(n_frames: int, crop_frames: int, *, mode: str = "random") -> int:
    """First frame of a ``crop_frames`` crop of a track of ``n_frames`` frames.

    ``random`` draws it uniformly among the valid starts; ``start`` is 0; ``center`` centres the
    crop (the Tagger's ``center`` segment). A track shorter than the crop starts at 0.
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, not {mode!r}")
    last = max(n_frames - crop_frames, 0)
    if mode == "start" or last == 0:
        return 0
    if mode == "center":
        return last // 2
    return int(torch.randint(0, last + 1, (1,)))


def crop(mel: np.ndarray, start: int, crop_frames: int) -> np.ndarray:
    """``mel[:, start:start + crop_frames]``; a shorter piece is repeated to ``crop_frames``.

    Examples
    --------
    >>> crop(np.arange(4.0).reshape(1, 4), 0, 6)
    array([[0., 1., 2., 3., 0., 1.]], dtype=float32)
    """
    piece = np.array(mel[:, start : start + crop_frames], dtype=np.float32)
    return tile_to_length(piece, crop_frames)


def random_crop(mel: np.ndarray, crop_frames: int) -> np.ndarray:
    """A ``crop_frames`` crop of ``mel (n_mels, frames)`` at a random position."""
    return crop(mel, crop_start(mel.shape[1], crop_frames, mode="random"), crop_frames)


@dataclass(frozen=True)
class Mixed:
    """What :func:`mixup` returns: ``inputs = lam * x + (1 - lam) * x[permutation]``."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lam: torch.Tensor
    """Mixing weight of each example's own input, shape ``(batch,)``."""
    permutation: torch.Tensor
    """Index of the partner of each example."""


def mixup(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float,
    per_example: bool = True,
    own_share_at_least_half: bool = True,
) -> Mixed:
    """Mix each example with a random partner of the batch, inputs and labels alike.

    Parameters
    ----------
    inputs
        Batch ``(batch, ...)``.
    targets
        Labels ``(batch, tags)``, binary or already soft.
    alpha
        ``lambda ~ Beta(alpha, alpha)``: CP-JKU 0.3, USC SAIL 1.0.
    per_example
        One ``lambda`` per example (CP-JKU) rather than one for the batch (Zhang et al., USC).
    own_share_at_least_half
        Use ``max(lambda, 1 - lambda)`` (CP-JKU), so the mixed example is mostly itself.

    Returns
    -------
    :class:`Mixed`; ``targets = lam * y + (1 - lam) * y[permutation]``.
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be positive, not {alpha}")
    batch = inputs.shape[0]
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((batch,) if per_example else (1,)).expand(batch).clone()
    if own_share_at_least_half:
        lam = torch.maximum(lam, 1 - lam)
    permutation = torch.randperm(batch)
    lam = lam.to(inputs.device)
    permutation = permutation.to(inputs.device)
    return Mixed(
        inputs=_mix(inputs, lam, permutation),
        targets=_mix(targets, lam.to(targets.dtype), permutation),
        lam=lam,
        permutation=permutation,
    )


def _mix(values: torch.Tensor, lam: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    lam = lam.view(-1, *([1] * (values.ndim - 1)))
    return lam * values + (1 - lam) * values[permutation]


@dataclass(frozen=True)
class SpecAugmentMasks:
    """Where :class:`SpecAugment` masks each example: ``(batch, masks)`` starts and widths."""

    time_starts: torch.Tensor
    time_widths: torch.Tensor
    freq_starts: torch.Tensor
    freq_widths: torch.Tensor

    def frames(self, n_frames: int) -> torch.Tensor:
        """Boolean ``(batch, n_frames)``: frames inside a time mask."""
        return _covered(self.time_starts, self.time_widths, n_frames)

    def bands(self, n_mels: int) -> torch.Tensor:
        """Boolean ``(batch, n_mels)``: mel bands inside a frequency mask."""
        return _covered(self.freq_starts, self.freq_widths, n_mels)


@dataclass(frozen=True)
class SpecAugment:
    """Time and frequency masking (Park et al. 2019), without time warping.

    An example is augmented with probability ``probability``; it then gets ``time_masks``
    blocks of consecutive frames and ``freq_masks`` blocks of consecutive mel bands, each of a
    width drawn uniformly from ``0`` to the maximum width (Park et al.'s ``t ~ U[0, T]``) at a
    uniformly drawn start (``t0 ~ U[0, frames - t]``). A maximum width given as a pair
    ``(low, high)`` is itself drawn uniformly in that range once per batch (Mirable). Masked
    cells take ``fill``: ``"mean"``, the example's mean, which is where Park et al.'s zero lies
    on a normalised spectrogram (the trainer feeds dB values, normalised inside the models), or
    a number.

    Examples
    --------
    >>> masked = SpecAugment(time_masks=2, time_width=10, freq_masks=2, freq_width=8)(
    ...     torch.randn(4, 96, 200))
    """

    time_masks: int = 2
    time_width: Width = 100
    freq_masks: int = 2
    freq_width: Width = 27
    probability: float = 1.0
    fill: str | float = "mean"

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], not {self.probability}")
        if isinstance(self.fill, str) and self.fill != "mean":
            raise ValueError(f"fill must be 'mean' or a number, not {self.fill!r}")
        for name in ("time_width", "freq_width"):
            low, high = _width_range(getattr(self, name))
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a width >= 0 or a (low, high) pair")

    def sample(self, batch: int, n_mels: int, n_frames: int) -> SpecAugmentMasks:
        """Draw the masks of a batch of ``batch`` spectrograms ``(n_mels, n_frames)``."""
        applied = torch.rand(batch) < self.probability
        time_starts, time_widths = _draw_masks(
            batch, self.time_masks, _draw_max_width(self.time_width), n_frames, applied
        )
        freq_starts, freq_widths = _draw_masks(
            batch, self.freq_masks, _draw_max_width(self.freq_width), n_mels, applied
        )
        return SpecAugmentMasks(time_starts, time_widths, freq_starts, freq_widths)

    def apply(self, mels: torch.Tensor, masks: SpecAugmentMasks) -> torch.Tensor:
        """``mels (batch, n_mels, frames)`` with the masked cells set to the fill value."""
        _, n_mels, n_frames = mels.shape
        masked = (
            masks.bands(n_mels).to(mels.device)[:, :, None]
            | masks.frames(n_frames).to(mels.device)[:, None, :]
        )
        if self.fill == "mean":
            fill = mels.mean(dim=(1, 2), keepdim=True).expand_as(mels)
        else:
            fill = torch.full_like(mels, float(self.fill))
        return torch.where(masked, fill, mels)

    def __call__(self, mels: torch.Tensor) -> torch.Tensor:
        return self.apply(mels, self.sample(*mels.shape))


def _width_range(width: Width) -> tuple[int, int]:
    if isinstance(width, int):
        return width, width
    low, high = width
    return int(low), int(high)


def _draw_max_width(width: Width) -> int:
    low, high = _width_range(width)
    return int(torch.randint(low, high + 1, (1,)))


def _draw_masks(
    batch: int, count: int, max_width: int, length: int, applied: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    max_width = min(max_width, length)
    widths = torch.randint(0, max_width + 1, (batch, count))
    widths = widths * applied[:, None]
    starts = (torch.rand(batch, count) * (length - widths + 1)).long()
    return starts, widths


def _covered(starts: torch.Tensor, widths: torch.Tensor, length: int) -> torch.Tensor:
    positions = torch.arange(length)
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    return inside.any(dim=1)


def gaussian_noise(inputs: torch.Tensor, *, weight: float) -> torch.Tensor:
    """``inputs + weight * N(0, 1)`` (Mirable's student noise, weight 0.01)."""
    return inputs + weight * torch.randn_like(inputs)


def single_label(targets: np.ndarray, train_counts: np.ndarray | None = None) -> np.ndarray:
    """Keep one tag per track: the one fewest training tracks carry (HCMUS's data balance).

    HCMUS (Do et al. 2020, sec. 3.2.1) reduce "the ambiguity of the data" by turning each
    track's tags into a single label, "keeping the most significant tag", "giving preference to
    moods with little data" so that the spread of the per-tag counts shrinks. Here the kept tag
    is the track's rarest (ties go to the first in the official order). Tracks without tags
    stay without.

    Parameters
    ----------
    targets
        Binary ``(tracks, tags)``.
    train_counts
        Tracks per tag that decide which is rarest; by default the column sums of ``targets``.

    Returns
    -------
    Binary ``(tracks, tags)`` with at most one positive per row, same dtype.

    Examples
    --------
    >>> single_label(np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]]))
    array([[0, 1, 0],
           [1, 0, 0],
           [0, 0, 1]])
    """
    targets = np.asarray(targets)
    counts = targets.sum(axis=0) if train_counts is None else np.asarray(train_counts)
    rarity = np.where(targets > 0, counts[None, :], np.inf)
    keep = np.argmin(rarity, axis=1)
    balanced = np.zeros_like(targets)
    tagged = targets.any(axis=1)
    balanced[np.flatnonzero(tagged), keep[tagged]] = 1
    return balanced


class ClassAwareSampler(Sampler[int]):
    """Class-aware sampling (Shen et al. 2016) for multi-label data.

    Each draw picks a tag uniformly among the tags that have tracks, then a track uniformly
    among those carrying it, so every tag is drawn equally often whatever its frequency. A track
    with several tags is reachable through each of them: its probability per draw is
    ``(1 / C) * sum over its tags c of 1 / n_c``.

    The draws of an epoch depend on ``seed`` and the epoch (:meth:`set_epoch`), so every
    process of a distributed run makes the same ``num_samples`` draws and keeps its share
    (``rank::world_size``), as ``DistributedSampler`` does.
    """

    def __init__(
        self,
        targets: np.ndarray,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        targets = np.asarray(targets) > 0
        self.members = [np.flatnonzero(column) for column in targets.T if column.any()]
        if not self.members:
            raise ValueError("class-aware sampling needs at least one tagged track")
        self.num_samples = len(targets) if num_samples is None else int(num_samples)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def draw(self) -> np.ndarray:
        """All draws of the current epoch, before the split between processes."""
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = rng.integers(0, len(self.members), self.num_samples)
        picks = rng.random(self.num_samples)
        draws = [
            members[int(u * len(members))]
            for members, u in zip((self.members[c] for c in classes), picks, strict=True)
        ]
        return np.array(draws, dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.draw()[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))


@dataclass(frozen=True)
class Augmentation:
    """A recipe's training-time augmentations of a batch, in the order they apply.

    SpecAugment masks each example (on its first ``spec_rows`` input rows, the mel bands, when
    the input also carries other rows), mixup then mixes the masked examples and their labels
    (and the label masks: a mixed label counts only where both partners' are known), Gaussian
    noise comes last. Validation and test inputs are never augmented.
    """

    specaugment: SpecAugment | None = None
    mixup: dict | None = None
    """:func:`mixup` keywords (``alpha``, ``per_example``, ``own_share_at_least_half``)."""
    noise_weight: float | None = None
    spec_rows: int | None = None

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.specaugment is not None:
            rows = inputs.shape[1] if self.spec_rows is None else self.spec_rows
            inputs = torch.cat([self.specaugment(inputs[:, :rows]), inputs[:, rows:]], dim=1)
        if self.mixup is not None:
            mixed = mixup(inputs, targets, **self.mixup)
            inputs, targets = mixed.inputs, mixed.targets
            mask = mask * mask[mixed.permutation]
        if self.noise_weight:
            inputs = gaussian_noise(inputs, weight=self.noise_weight)
        return inputs, targets, mask
