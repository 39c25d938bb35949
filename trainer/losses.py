"""Multi-label losses of the MediaEval mood/theme papers, computed on logits.

USC SAIL (Knox et al., MediaEval 2020) compare four losses on the 56 tags; this module has them,
each a small ``nn.Module`` whose parameters are plain attributes:

- :class:`BinaryCrossEntropy`: sigmoid + binary cross-entropy, the baseline of every paper.
- :class:`FocalLoss`: Lin et al. (2017), in USC's multi-label form (their eq. 1),
  alpha 0.25 and gamma 2.
- :class:`ClassBalancedFocalLoss`: Cui et al. (2019): the focal loss with alpha_t replaced by
  the effective-number weight of each tag (USC's eq. 2), beta 0.995.
- :class:`DistributionBalancedLoss`: Wu et al. (2020): re-balanced weighting and
  negative-tolerant regularisation (USC's eq. 3), with the focal modulating factor USC add;
  ``variant="usc-code"`` computes it as USC's released code does.

Every ``forward(logits, targets)`` takes raw scores and targets shaped ``(batch, tags)``;
targets may be soft (mixup). Notation: ``p = sigmoid(z)``, ``p_t = p`` for a positive target
and ``1 - p`` for a negative one (``y * p + (1 - y) * (1 - p)`` in general).

``reduction`` follows each paper's equation: ``"batchmean"`` sums over the tags and averages
over the batch (focal and class-balanced: a sum over the classes of one sample), ``"mean"``
averages over every element (BCE; distribution-balanced: ``1 / C`` times the sum over the
classes); ``"sum"`` and ``"none"`` are there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Reduction = Literal["none", "mean", "sum", "batchmean"]

Counts = Sequence[int] | np.ndarray | torch.Tensor


class BinaryCrossEntropy(nn.Module):
    """``-[y log p + (1 - y) log(1 - p)]`` per tag, from logits."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return _reduce(loss, self.reduction)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) for multi-label tagging.

    ``FL = -sum_c alpha_t (1 - p_t)^gamma log(p_t)``, ``alpha_t = alpha`` for a positive tag and
    ``1 - alpha`` for a negative one (Knox et al. 2020, eq. 1).
    """

    def __init__(
        self, *, alpha: float = 0.25, gamma: float = 2.0, reduction: Reduction = "batchmean"
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        alpha_t = targets * self.alpha + (1 - targets) * (1 - self.alpha)
        loss = alpha_t * _focal_cross_entropy(logits, targets, self.gamma)
        return _reduce(loss, self.reduction)


class ClassBalancedFocalLoss(nn.Module):
    """Class-balanced focal loss (Cui et al. 2019), as USC SAIL use it.

    ``CB = -sum_c w_c (1 - p_t)^gamma log(p_t)`` with ``w_c = (1 - beta) / (1 - beta^n_c)``,
    ``n_c`` the training tracks carrying tag ``c`` (Knox et al. 2020, eq. 2). The weights are
    normalised to sum to the number of tags, as Cui et al. do so that the loss keeps the scale
    of the unweighted one. The weight applies to the tag whether the target is positive or not.
    """

    def __init__(
        self,
        positive_counts: Counts,
        *,
        beta: float = 0.995,
        gamma: float = 2.0,
        reduction: Reduction = "batchmean",
    ) -> None:
        super().__init__()
        counts = _positive_counts(positive_counts)
        self.beta = beta
        self.gamma = gamma
        self.reduction = reduction
        weights = (1 - beta) / (1 - beta**counts)
        self.register_buffer("class_weights", (weights / weights.sum() * len(counts)).float())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weights = self.class_weights.to(logits)
        loss = weights * _focal_cross_entropy(logits, targets, self.gamma)
        return _reduce(loss, self.reduction)


DB_VARIANTS = ("paper", "usc-code")

USC_FOCAL_ALPHA = 0.25
"""The focal weight of positive tags in USC SAIL's distribution-balanced loss (their code)."""


class DistributionBalancedLoss(nn.Module):
    """Distribution-balanced loss (Wu et al. 2020) with the focal factor USC SAIL add.

    ``variant="paper"`` (the default) is the equation of the papers:

    ``DB = 1/C sum_c r_c (1 - p_t)^gamma [y_c log(1 + e^-(z_c - v_c))
    + (1 - y_c) / lambda log(1 + e^(lambda (z_c - v_c)))]`` (Knox et al. 2020, eq. 3; ``gamma = 0``
    gives Wu et al.'s BCE form), where ``p_t`` is read off the regularised logit
    (``z - v`` for a positive tag, ``lambda (z - v)`` for a negative one) and:

    - re-balanced weighting: ``r = (1 / n_c) / sum_{k in y} (1 / n_k)`` is the ratio of the
      class-level to the instance-level sampling probability of the track; it is smoothed to
      ``r_c = alpha + sigmoid(beta (r - mu))`` and applies to every tag of the track, positive
      or negative. A track without positive tags gets ``r = inf``, so ``r_c = alpha + 1``.
    - negative-tolerant regularisation: negative logits are scaled by ``lambda``, and the
      class-specific bias ``v_c = (kappa / lambda) log(N / n_c - 1)``, which is
      ``-kappa / lambda`` times the tag's prior log-odds, moves every logit towards that prior
      (``N`` training tracks, ``n_c`` of them carrying tag ``c``).

    ``variant="usc-code"`` is what USC SAIL's released code computes (``train/losses.py``,
    ``DB_loss``), which departs from their eq. 3 in three ways: no class bias (``kappa = 0``:
    the code works on sigmoid outputs, not logits), no ``lambda`` on the negative logits (only
    the ``1 / lambda`` weight of the negative terms stays), and the focal term carries the focal
    loss's ``alpha_t`` (0.25 for a positive tag, 0.75 for a negative one):

    ``DB = sum_c r_c alpha_t (1 - p_t)^gamma (y_c + (1 - y_c) / lambda) BCE(z_c, y_c)``,

    summed over the tags and averaged over the tracks (``batchmean``, their code's reduction),
    with ``p_t`` read off ``z`` itself. Their code clips the probabilities to ``[1e-8, 1 - 1e-8]``;
    here the loss is computed from the logits, which differs only for ``|z| > 18``.

    The defaults are Wu et al.'s for COCO-MLT (alpha 0.1, beta 10, mu 0.2, lambda 2,
    kappa 0.05 for the paper variant); USC SAIL use the same alpha, beta, mu and lambda. ``v_c``
    is written as the authors' released code computes it. ``reduction`` defaults to the
    variant's: ``mean`` for the paper's ``1/C`` sum, ``batchmean`` for the code's.
    """

    def __init__(
        self,
        positive_counts: Counts,
        num_tracks: int,
        *,
        variant: str = "paper",
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.2,
        neg_scale: float = 2.0,
        kappa: float | None = None,
        gamma: float = 2.0,
        reduction: Reduction | None = None,
    ) -> None:
        super().__init__()
        if variant not in DB_VARIANTS:
            raise ValueError(f"variant must be one of {DB_VARIANTS}, not {variant!r}")
        paper = variant == "paper"
        if kappa is None:
            kappa = 0.05 if paper else 0.0
        if not paper and kappa != 0:
            raise ValueError(f"the usc-code variant has no class bias (kappa 0), not {kappa}")
        counts = _positive_counts(positive_counts)
        if not bool((counts < num_tracks).all()):
            raise ValueError(f"a tag on all {num_tracks} training tracks has no prior log-odds")
        self.variant = variant
        self.alpha = alpha
        self.beta = beta
        self.mu = mu
        self.neg_scale = neg_scale
        self.kappa = kappa
        self.gamma = gamma
        self.reduction = reduction or ("mean" if paper else "batchmean")
        self.register_buffer("inverse_counts", (1 / counts).float())
        bias = kappa / neg_scale * torch.log(num_tracks / counts - 1)
        self.register_buffer("logit_bias", bias.float())

    def rebalancing_weights(self, targets: torch.Tensor) -> torch.Tensor:
        """``r_c`` for every (track, tag) of the batch."""
        inverse = self.inverse_counts.to(targets)
        ratio = inverse / (targets * inverse).sum(dim=1, keepdim=True)
        return self.alpha + torch.sigmoid(self.beta * (ratio - self.mu))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        negative_tolerance = targets + (1 - targets) / self.neg_scale
        weights = self.rebalancing_weights(targets) * negative_tolerance
        if self.variant == "paper":
            shifted = logits - self.logit_bias.to(logits)
            regularised = targets * shifted + (1 - targets) * self.neg_scale * shifted
            loss = weights * _focal_cross_entropy(regularised, targets, self.gamma)
        else:
            alpha_t = targets * USC_FOCAL_ALPHA + (1 - targets) * (1 - USC_FOCAL_ALPHA)
            loss = weights * alpha_t * _focal_cross_entropy(logits, targets, self.gamma)
        return _reduce(loss, self.reduction)


def _focal_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(1 - p_t)^gamma`` times the binary cross-entropy, element-wise."""
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma == 0:
        return cross_entropy
    probability = torch.sigmoid(logits)
    p_t = targets * probability + (1 - targets) * (1 - probability)
    return (1 - p_t) ** gamma * cross_entropy


def _positive_counts(positive_counts: Counts) -> torch.Tensor:
    counts = torch.as_tensor(np.asarray(positive_counts), dtype=torch.float64)
    if counts.ndim != 1:
        raise ValueError(f"positive counts must be one number per tag; got shape {counts.shape}")
    missing = torch.nonzero(counts < 1).flatten().tolist()
    if missing:
        raise ValueError(f"tags without a positive training track (indices {missing})")
    return counts


def _reduce(loss: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "batchmean":
        return loss.sum() / loss.shape[0]
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}; use none, mean, sum or batchmean")
