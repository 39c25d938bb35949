"""A recipe's tables turned into the objects a run trains with: networks, loss, augmentation.

- :func:`build_network`: ``[model]`` (or a strategy's peer or student) through
  :func:`moodlib.models.build_model`, output biases at a prior when the recipe says so,
  channels-last on CUDA, wrapped in ``DistributedDataParallel`` under ``torchrun``.
- :func:`build_loss`: ``[loss]`` as a :mod:`trainer.losses` module in the strategies'
  :class:`~trainer.strategies.base.TrainingLoss`; the class-balanced losses count the tags of
  the stage's training targets.
- :func:`build_augmentation`: ``[augment]`` as a :class:`~trainer.data.augment.Augmentation`.

Optimisers and learning rates are :mod:`trainer.schedule`'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from moodlib.models import build_model
from trainer import TrainerError
from trainer.data.augment import Augmentation, SpecAugment
from trainer.losses import (
    BinaryCrossEntropy,
    ClassBalancedFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
)
from trainer.processes import Processes
from trainer.recipe import AugmentSpec, NetworkSpec
from trainer.strategies.base import Network, TrainingLoss


def build_network(spec: NetworkSpec, device: torch.device, processes: Processes) -> Network:
    """Build ``spec`` on ``device`` (channels-last on CUDA), wrapped for DDP when distributed."""
    module = build_model(spec.architecture, **spec.config)
    if spec.output_bias_prior is not None:
        init_output_bias(module, spec.output_bias_prior)
    module = module.to(device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    trainable: nn.Module = module
    if processes.distributed:
        trainable = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
        )
    return Network(spec.name, module, trainable)


def init_output_bias(module: nn.Module, prior: float, num_classes: int = 56) -> None:
    """Set the output layer's biases to ``-log((1 - prior) / prior)`` (Lin et al. 2017).

    The output layer is the last ``nn.Linear`` with ``num_classes`` outputs; USC SAIL start
    their focal-loss networks this way (prior 0.01) so that the many easy negatives do not
    swamp the first updates.
    """
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    layers = [m for m in layers if m.out_features == num_classes and m.bias is not None]
    if not layers:
        raise TrainerError(f"{type(module).__name__}: no output layer with biases to initialise")
    with torch.no_grad():
        layers[-1].bias.fill_(-math.log((1 - prior) / prior))


def build_loss(spec: dict[str, Any], targets: np.ndarray) -> TrainingLoss:
    """The recipe's loss; the class-balanced ones count tags over ``targets``.

    A tag without a positive training track counts as one (the class-balanced weights need a
    count), and for the distribution-balanced loss a tag on every track as one fewer (its prior
    log-odds must be finite).
    """
    params = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    counts = np.maximum(targets.sum(axis=0), 1)
    if name == "bce":
        loss: nn.Module = BinaryCrossEntropy(**params)
    elif name == "focal":
        loss = FocalLoss(**params)
    elif name == "cb_focal":
        loss = ClassBalancedFocalLoss(counts, **params)
    else:
        counts = np.minimum(counts, len(targets) - 1)
        loss = DistributionBalancedLoss(counts, len(targets), **params)
    return TrainingLoss(loss)


def build_augmentation(spec: AugmentSpec, *, spec_rows: int | None) -> Augmentation:
    """The recipe's augmentations; SpecAugment masks only the first ``spec_rows`` rows (the mel
    bands) when other sources (HPCP) follow them."""
    specaugment = None
    if spec.specaugment is not None:
        specaugment = SpecAugment(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in spec.specaugment.items()}
        )
    return Augmentation(
        specaugment=specaugment,
        mixup=spec.mixup,
        noise_weight=spec.gaussian_noise,
        spec_rows=spec_rows,
    )
