"""Harmonic pitch class profiles (HPCP) as a torch module.

Mirable (Tan, MediaEval 2021) feeds its CRNN a second input next to the mel-spectrogram: a
12-bin HPCP (Gómez, "Tonal description of polyphonic audio for music content processing",
INFORMS Journal on Computing 18(3), 2006) computed with essentia's
``essentia.pytools.spectral.hpcpgram`` at its defaults (44.1 kHz, 4096-sample Blackman-Harris
62 dB frames every 2048 samples, spectral peaks between 100 Hz and 4 kHz, no harmonics,
squared-cosine weighting over one semitone, band preset split at 500 Hz, unit-max
normalisation). :class:`HPCP` re-implements that chain as batched tensor operations:

1. STFT magnitude of symmetric Blackman-Harris 62 dB frames scaled to a sum of 2 (essentia's
   ``Windowing(normalized=True)``), centred like :class:`~moodlib.audio.frontend.MelFrontend`
   so that frame ``t`` of both is centred on sample ``t * hop_length``.
2. ``SpectralPeaks``: local maxima above ``magnitude_threshold`` between ``min_frequency`` and
   ``max_frequency``, refined by parabolic interpolation of the linear magnitudes, plus
   essentia's peak at the first bin when the spectrum falls from it; the ``max_peaks`` largest.
3. ``HPCP``: each peak adds ``magnitude**2`` (times the squared harmonic strength when
   ``harmonics > 0``: essentia's table, in which harmonic ``h`` sends weight
   ``1 / max(1, log2(h) / 2)`` to the pitch class ``12 log2(h)`` semitones below) to the pitch
   classes within ``window_semitones / 2`` of its own, weighted by ``cos**2`` of the distance;
   below and above ``band_split_frequency`` separately, each half scaled to a maximum of 1,
   then summed and scaled to a maximum of 1 again. Bin 0 is the pitch class of
   ``reference_frequency`` (A for 440 Hz), as in essentia.

Where it differs from essentia: a plateau (two equal neighbouring bins) is not a peak here
(essentia takes its middle), and all arithmetic is float32 on whole batches. On real music the
pitch class with the largest value agrees with ``essentia.standard.HPCP`` on practically every
frame with tonal content (``tests/test_hpcp.py``).

The defaults suit MelFrontend's 12 kHz, hop 256 frames: a 1024-sample frame (85 ms, 11.7 Hz
bins) matches the time span and frequency resolution of essentia's 4096 samples at 44.1 kHz.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from moodlib.audio.stft import stft

__all__ = ["HPCP", "blackman_harris_62", "harmonic_weights"]

_BH62_COEFFICIENTS = (0.44959, 0.49364, 0.05677)
# Harmonics whose pitch classes fall within this many semitones of each other share a weight.
_HARMONIC_MERGE_SEMITONES = 0.5


def blackman_harris_62(size: int) -> torch.Tensor:
    """Symmetric 3-term Blackman-Harris window (62 dB sidelobes) scaled to a sum of 2, as
    essentia's ``Windowing(type='blackmanharris62', normalized=True)``; float64."""
    n = torch.arange(size, dtype=torch.float64)
    phase = 2.0 * math.pi * n / (size - 1)
    a0, a1, a2 = _BH62_COEFFICIENTS
    window = a0 - a1 * torch.cos(phase) + a2 * torch.cos(2.0 * phase)
    return window * (2.0 / window.sum())


def harmonic_weights(harmonics: int) -> list[tuple[float, float]]:
    """``(semitones, strength)`` of each distinct pitch-class offset a spectral peak votes for.

    Harmonic ``h = 1 .. harmonics + 1`` of a fundamental lies ``12 log2(h)`` semitones above
    it, so a peak votes for the pitch classes that far below, with strength
    ``1 / max(1, log2(h) / 2)``; offsets that coincide modulo an octave add their strengths.
    The first entry is ``(0.0, ...)``: the peak's own pitch class.
    """
    offsets: list[list[float]] = []
    for harmonic in range(1, harmonics + 2):
        semitones = 12.0 * math.log2(harmonic)
        strength = 1.0 / max(1.0, semitones / 12.0 * 0.5)
        while semitones >= 12.0 - _HARMONIC_MERGE_SEMITONES:
            semitones -= 12.0
        for offset in offsets:
            if abs(offset[0] - semitones) < _HARMONIC_MERGE_SEMITONES:
                offset[1] += strength
                break
        else:
            offsets.append([semitones, strength])
    return [(semitones, strength) for semitones, strength in offsets]


class HPCP(nn.Module):
    """Harmonic pitch class profile of a batch of waveforms, frame-aligned with MelFrontend.

    Parameters
    ----------
    sample_rate
        Sample rate of the input waveforms, in Hz.
    n_fft
        Frame (and FFT) length in samples.
    hop_length
        Samples between frame centres (or starts, with ``center=False``).
    center
        Centre frame ``t`` on sample ``t * hop_length``, padding the signal with zeros.
    size
        Bins per octave of the output; a multiple of 12.
    reference_frequency
        Frequency in Hz whose pitch class is bin 0.
    harmonics
        Harmonics above the fundamental that each peak also votes for (0: none).
    min_frequency, max_frequency
        Only spectral peaks in this range, in Hz, contribute.
    band_split_frequency
        Peaks below and above this frequency are accumulated and normalised separately
        (essentia's ``bandPreset``); ``None`` treats the range as one band.
    window_semitones
        Width of the squared-cosine weighting window around each peak, in semitones.
    max_peaks
        Only the largest this many peaks of a frame contribute.
    magnitude_threshold
        Peaks whose magnitude (of the sum-2 window) is at most this are ignored.

    Examples
    --------
    >>> hpcp = HPCP()
    >>> hpcp(torch.zeros(2, 12000)).shape
    torch.Size([2, 12, 47])
    """

    def __init__(
        self,
        *,
        sample_rate: int = 12000,
        n_fft: int = 1024,
        hop_length: int = 256,
        center: bool = True,
        size: int = 12,
        reference_frequency: float = 440.0,
        harmonics: int = 0,
        min_frequency: float = 100.0,
        max_frequency: float = 4000.0,
        band_split_frequency: float | None = 500.0,
        window_semitones: float = 1.0,
        max_peaks: int = 100,
        magnitude_threshold: float = 1e-5,
    ) -> None:
        super().__init__()
        if size <= 0 or size % 12:
            raise ValueError(f"size must be a positive multiple of 12, got {size}")
        if not 0 < min_frequency < max_frequency <= sample_rate / 2:
            raise ValueError(
                f"need 0 < min_frequency < max_frequency <= {sample_rate / 2} Hz, "
                f"got {min_frequency} and {max_frequency}"
            )
        if harmonics < 0:
            raise ValueError(f"harmonics must not be negative, got {harmonics}")
        self._config: dict[str, Any] = {
            "sample_rate": int(sample_rate),
            "n_fft": int(n_fft),
            "hop_length": int(hop_length),
            "center": bool(center),
            "size": int(size),
            "reference_frequency": float(reference_frequency),
            "harmonics": int(harmonics),
            "min_frequency": float(min_frequency),
            "max_frequency": float(max_frequency),
            "band_split_frequency": (
                None if band_split_frequency is None else float(band_split_frequency)
            ),
            "window_semitones": float(window_semitones),
            "max_peaks": int(max_peaks),
            "magnitude_threshold": float(magnitude_threshold),
        }
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.center = bool(center)
        self.size = int(size)
        self.reference_frequency = float(reference_frequency)
        self.min_frequency = float(min_frequency)
        self.max_frequency = float(max_frequency)
        self.band_split_frequency = band_split_frequency
        self.window_semitones = float(window_semitones)
        self.max_peaks = int(max_peaks)
        self.magnitude_threshold = float(magnitude_threshold)
        offsets = harmonic_weights(int(harmonics))
        self.register_buffer("window", blackman_harris_62(self.n_fft).float(), persistent=False)
        self.register_buffer(
            "harmonic_semitones",
            torch.tensor([semitones for semitones, _ in offsets], dtype=torch.float32),
            persistent=False,
        )
        self.register_buffer(
            "harmonic_strengths",
            torch.tensor([strength for _, strength in offsets], dtype=torch.float32),
            persistent=False,
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Map waveforms ``(batch, samples)`` to profiles ``(batch, size, frames)`` in [0, 1];
        frames without peaks are all zeros."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrum = stft(
                waveform,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=self.center,
            )
            magnitudes = spectrum.abs().transpose(1, 2)  # (batch, frames, bins)
            frequencies, peak_magnitudes = self._spectral_peaks(magnitudes)
            return self._profile(frequencies, peak_magnitudes).transpose(1, 2)

    def _spectral_peaks(self, magnitudes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frequencies and magnitudes ``(batch, frames, max_peaks)`` of each frame's largest
        peaks; unused slots have magnitude 0."""
        bin_hz = self.sample_rate / self.n_fft
        first = math.ceil(self.min_frequency / bin_hz)
        left, middle, right = magnitudes[..., :-2], magnitudes[..., 1:-1], magnitudes[..., 2:]
        bins = torch.arange(1, magnitudes.shape[-1] - 1, device=magnitudes.device)
        is_peak = (middle > left) & (middle > right) & (bins > first)
        # essentia's PeakDetection also keeps the first bin of the range when the spectrum
        # falls from it, without interpolation.
        is_peak |= (bins == first) & (middle > right)
        is_peak &= middle > self.magnitude_threshold
        curvature = left - 2.0 * middle + right
        safe_curvature = torch.where(curvature == 0, torch.ones_like(curvature), curvature)
        shift = torch.where(bins == first, 0.0, 0.5 * (left - right) / safe_curvature)
        position = (bins + shift) * bin_hz
        value = middle - 0.25 * (left - right) * shift
        is_peak &= (position >= self.min_frequency) & (position <= self.max_frequency)
        value = torch.where(is_peak, value, torch.zeros_like(value))
        count = min(self.max_peaks, value.shape[-1])
        peak_magnitudes, index = value.topk(count, dim=-1)
        return position.gather(-1, index), peak_magnitudes

    def _profile(self, frequencies: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
        """Accumulate peaks ``(batch, frames, peaks)`` into ``(batch, frames, size)``."""
        window_bins = self.size / 12 * self.window_semitones
        half_window = window_bins / 2
        # Pitch of each peak (and of the fundamentals its harmonics imply), in unwrapped bins:
        # (batch, frames, peaks, harmonics).
        position = torch.log2(frequencies.clamp(min=1e-6) / self.reference_frequency) * self.size
        position = position.unsqueeze(-1) - self.harmonic_semitones * (self.size / 12)
        energy = magnitudes.square().unsqueeze(-1) * self.harmonic_strengths.square()
        # The integer bins within half a window of each position, as essentia enumerates them:
        # ceil(position - half_window), and the next ones up to position + half_window.
        taps = torch.arange(math.floor(window_bins) + 1, device=position.device)
        bins = torch.ceil(position - half_window).unsqueeze(-1) + taps
        distance = (position.unsqueeze(-1) - bins).abs() / window_bins
        weight = torch.where(
            distance <= 0.5, torch.cos(math.pi * distance).square(), torch.zeros_like(distance)
        )
        contribution = (weight * energy.unsqueeze(-1)).flatten(2)  # (batch, frames, taps...)
        index = torch.remainder(bins, self.size).long().flatten(2)
        if self.band_split_frequency is None:
            return _unit_max(self._accumulate(index, contribution))
        low = (frequencies < self.band_split_frequency)[..., None, None].expand_as(weight)
        low = low.flatten(2)
        low_band = self._accumulate(index, torch.where(low, contribution, 0.0))
        high_band = self._accumulate(index, torch.where(low, 0.0, contribution))
        return _unit_max(_unit_max(low_band) + _unit_max(high_band))

    def _accumulate(self, index: torch.Tensor, contribution: torch.Tensor) -> torch.Tensor:
        profile = contribution.new_zeros(*contribution.shape[:-1], self.size)
        return profile.scatter_add_(-1, index, contribution)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this module: ``HPCP(**config)``."""
        return dict(self._config)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self._config.items())


def _unit_max(profile: torch.Tensor) -> torch.Tensor:
    peak = profile.amax(dim=-1, keepdim=True)
    return torch.where(peak > 0, profile / torch.where(peak > 0, peak, 1.0), profile)
