"""The short-time Fourier transform that every frontend computes its frames with."""

from __future__ import annotations

import torch


def stft(
    waveform: torch.Tensor, *, n_fft: int, hop_length: int, window: torch.Tensor, center: bool
) -> torch.Tensor:
    """Complex spectra ``(batch, n_fft // 2 + 1, frames)`` of waveforms ``(batch, samples)``,
    in float32; with ``center``, frame ``t`` is centred on sample ``t * hop_length`` and the
    signal is taken as zeros outside (as essentia pads). Call it with autocast disabled."""
    if waveform.ndim != 2:
        raise ValueError(f"expected a waveform of shape (batch, samples), got {waveform.shape}")
    return torch.stft(
        waveform.float(),
        n_fft=n_fft,
        hop_length=hop_length,
        window=window.float(),
        center=center,
        pad_mode="constant",
        return_complex=True,
    )
