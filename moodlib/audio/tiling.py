"""Short tracks are repeated to a model's input length, never padded with silence.

A model that hears a 29-s segment of which 22 s are silence scores the silence: the
MTG-Jamendo baseline then finds no tag at all on a 7-s track. Repeating the track until the
segment is full gives the model music throughout, and a short loop or jingle is heard as
what it is. The app's ``Tagger`` (waveforms and mels) and the trainer's crops
(``trainer.data.augment.crop``) both go through :func:`tile_to_length`.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Signal = TypeVar("Signal", np.ndarray, torch.Tensor)


def tile_to_length(signal: Signal, length: int) -> Signal:
    """``signal`` repeated along its last axis to ``length`` samples (or frames).

    A signal at least ``length`` long is returned unchanged; numpy arrays and torch tensors
    alike (a tensor stays on its device).

    Examples
    --------
    >>> tile_to_length(np.array([[1.0, 2.0, 3.0]]), 7)
    array([[1., 2., 3., 1., 2., 3., 1.]])
    """
    have = signal.shape[-1]
    if have >= length:
        return signal
    if have == 0:
        raise ValueError("an empty signal cannot be repeated to any length")
    index = np.arange(length) % have
    if isinstance(signal, torch.Tensor):
        return signal[..., torch.from_numpy(index).to(signal.device)]
    return signal[..., index]
