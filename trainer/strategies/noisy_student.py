"""Noisy student training (Xie et al., CVPR 2020) as Mirable (Tan, MediaEval 2021) ran it.

1. A teacher is trained normally (Mirable's HPCP model of the same input length).
2. The teacher scores tracks without labels. Only confident scores become pseudo-labels:
   above ``0.1`` a positive, below ``1e-6`` a negative; every score in between is left out
   of the student's loss (a mask, :func:`pseudo_labels`). Mirable chose both thresholds from
   the 5% tails of the teacher's score distributions on the training and validation sets.
3. A student of the same size is trained on the labelled tracks plus the pseudo-labelled ones
   with more noise than the teacher had: SpecAugment masks up to 30-90 instead of 20-60,
   standard Gaussian noise of weight 0.01 on the input, and stochastic depth (three blocks
   bypassed with probability 0.1, dropout 0.1 after their ReLU), all of which the student's
   recipe table sets. Mirable run one iteration; so does the trainer.

:class:`NoisyStudent` runs the three steps as stages of the run (``teacher``, then
``student``), each trained by the standard step; the run caches the pseudo-labels, so a resumed
run labels the tracks once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from trainer.data.tracks import CropDataset
from trainer.recipe import AugmentSpec, NetworkSpec, merge
from trainer.strategies.base import Members, StageRunner
from trainer.strategies.standard import Standard

POSITIVE_ABOVE = 0.1
NEGATIVE_BELOW = 1e-6


def pseudo_labels(
    probabilities: np.ndarray,
    *,
    positive_above: float = POSITIVE_ABOVE,
    negative_below: float = NEGATIVE_BELOW,
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-labels and the mask of the confident ones from teacher probabilities.

    Returns
    -------
    ``(targets, mask)``, float32 like ``probabilities``: ``targets`` is 1 where the probability
    is above ``positive_above``, ``mask`` is 1 where it is above ``positive_above`` or below
    ``negative_below`` (the cells the student learns from).

    Examples
    --------
    >>> pseudo_labels(np.array([[0.5, 0.05, 1e-7]]))
    (array([[1., 0., 0.]], dtype=float32), array([[1., 0., 1.]], dtype=float32))
    """
    if not negative_below < positive_above:
        raise ValueError("the negative threshold must lie below the positive one")
    probabilities = np.asarray(probabilities)
    positive = probabilities > positive_above
    known = positive | (probabilities < negative_below)
    return positive.astype(np.float32), known.astype(np.float32)


def student_spec(teacher: NetworkSpec, params: Mapping[str, Any]) -> NetworkSpec:
    """The student: the teacher's architecture with ``params["student_config"]`` merged into
    its configuration (stochastic depth), named ``student``."""
    return NetworkSpec(
        name="student",
        architecture=params.get("student_architecture", teacher.architecture),
        config=merge(teacher.config, params.get("student_config", {})),
        output_bias_prior=teacher.output_bias_prior,
    )


class NoisyStudent(Standard):
    """A teacher, its pseudo-labels, a noisier student; both trained by the standard step.

    ``[strategy]`` keys: ``positive_above`` and ``negative_below`` (:func:`pseudo_labels`),
    ``student_architecture`` and ``student_config`` (:func:`student_spec`), and
    ``student_augment``, an ``[augment]``-like table merged over the recipe's for the student.
    """

    name: ClassVar[str] = "noisy_student"

    def label(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pseudo-labels and mask of teacher probabilities, at the recipe's thresholds."""
        return pseudo_labels(
            probabilities,
            positive_above=float(self.params.get("positive_above", POSITIVE_ABOVE)),
            negative_below=float(self.params.get("negative_below", NEGATIVE_BELOW)),
        )

    def train(self, stages: StageRunner) -> Members | None:
        recipe = stages.recipe
        labelled = stages.labelled()
        teacher = dataclasses.replace(recipe.model, name="teacher")
        teachers = stages.train("teacher", [teacher], labelled, recipe.augment)
        if teachers is None:
            return None
        tracks, targets, masks = stages.pseudo_labelled(teachers["teacher"], self.label)
        students_set = CropDataset(
            labelled.tracks + tracks,
            np.concatenate([labelled.targets, targets]),
            masks=np.concatenate([labelled.masks, masks]),
            crop_frames=recipe.data.crop_frames,
            crop_mode=recipe.data.crop_mode,
        )
        augment = AugmentSpec(
            **merge(dataclasses.asdict(recipe.augment), self.params.get("student_augment", {}))
        )
        student = student_spec(recipe.model, self.params)
        students = stages.train("student", [student], students_set, augment)
        if students is None:
            return None
        return {**teachers, **students}
