"""Mel-spectrogram frontend: waveforms in, log-mel spectrograms out, as a torch module.

The defaults reproduce the mel-spectrograms distributed with MTG-Jamendo, which were computed with
essentia (``scripts/melspectrograms.py`` in the dataset repository): 12 kHz audio, frames of 512
samples every 256, centred (the first frame is centred on sample 0, zeros outside the signal),
symmetric Hann window, power spectrum, 96 Slaney mel bands with unit-triangle (Slaney)
normalisation from 0 Hz to Nyquist, then ``UnaryOperator(type='lin2db', scale=2)``, i.e.
``20 * log10(max(mel, 1e-10))`` (essentia's ``lin2db`` floors powers below 1e-10 at -100 dB before
the scale of 2). Essentia emits one frame more than this module at the end (a frame centred past
the last sample); the frames they share agree to about 0.001 dB.

``scale="log10_1p"`` gives ``log10(1 + log_multiplier * mel)``, the compression of musicnn and of
essentia's TensorflowInputMusiCNN; with ``window="hann_periodic"`` the module then reproduces
``librosa.feature.melspectrogram`` (periodic Hann, zero padding in librosa >= 0.10).

``build_frontend`` makes the frontend a model pack describes: a ``MelFrontend``, or a
``MelHpcpFrontend`` that stacks pitch-class profiles (``moodlib.audio.hpcp``) under the bands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from moodlib.audio.hpcp import HPCP
from moodlib.audio.stft import stft

__all__ = ["MelFrontend", "MelHpcpFrontend", "build_frontend", "mel_filterbank", "mel_frequencies"]

_WINDOWS = ("hann_symmetric", "hann_periodic")
_SCALES = ("essentia_db", "log10_1p")
_ESSENTIA_POWER_FLOOR = 1e-10


def mel_filterbank(
    *,
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filterbank, the same as ``librosa.filters.mel``.

    Parameters
    ----------
    sample_rate
        Sample rate of the analysed signal, in Hz.
    n_fft
        FFT length; the filterbank applies to its ``n_fft // 2 + 1`` frequency bins.
    n_mels
        Number of mel bands.
    f_min, f_max
        Lowest and highest frequency covered, in Hz; ``f_max=None`` means Nyquist.
    htk
        Use the HTK mel formula instead of Slaney's (linear below 1 kHz, logarithmic above).
    norm
        ``"slaney"`` divides each triangle by its width in Hz (constant energy per band, essentia's
        ``normalize='unit_tri'``); ``None`` leaves triangles with a peak of 1.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n_mels, n_fft // 2 + 1)``.

    Examples
    --------
    >>> mel_filterbank(sample_rate=12000, n_fft=512, n_mels=96).shape
    (96, 257)
    """
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    band_edges = mel_frequencies(n_mels=n_mels + 2, f_min=f_min, f_max=f_max, htk=htk)
    widths = np.diff(band_edges)
    distances = band_edges[:, None] - fft_frequencies[None, :]
    rising = -distances[:-2] / widths[:-1, None]
    falling = distances[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (band_edges[2:] - band_edges[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_frequencies(
    *, n_mels: int = 128, f_min: float = 0.0, f_max: float = 11025.0, htk: bool = False
) -> np.ndarray:
    """Frequencies evenly spaced on the mel scale, the same as ``librosa.mel_frequencies``.

    Parameters
    ----------
    n_mels
        Number of frequencies.
    f_min, f_max
        The first and the last frequency, in Hz.
    htk
        Use the HTK mel formula instead of Slaney's (linear below 1 kHz, logarithmic above).

    Returns
    -------
    numpy.ndarray
        float64 array of ``n_mels`` frequencies in Hz, ascending. The edges of the bands of
        :func:`mel_filterbank` with ``n_mels`` bands are ``mel_frequencies(n_mels=n_mels + 2)``,
        so band ``i`` peaks at element ``i + 1``.

    Examples
    --------
    >>> mel_frequencies(n_mels=3, f_min=0.0, f_max=2000.0)
    array([   0.        ,  836.06267191, 2000.        ])
    """
    mels = np.linspace(_hz_to_mel(f_min, htk=htk), _hz_to_mel(f_max, htk=htk), n_mels)
    return _mel_to_hz(mels, htk=htk)


def _hz_to_mel(frequency: float, *, htk: bool) -> float:
    if htk:
        return 2595.0 * np.log10(1.0 + frequency / 700.0)
    # Slaney: linear (3 bands per 200 Hz) up to 1 kHz, then logarithmic (27 bands per 6.4x).
    if frequency < 1000.0:
        return frequency * 3.0 / 200.0
    return 15.0 + np.log(frequency / 1000.0) / (np.log(6.4) / 27.0)


def _mel_to_hz(mels: np.ndarray, *, htk: bool) -> np.ndarray:
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    return np.where(
        mels < 15.0, mels * 200.0 / 3.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0))
    )


class MelFrontend(nn.Module):
    """Log-mel spectrogram of a batch of waveforms.

    The defaults reproduce MTG-Jamendo's mel-spectrograms (see the module docstring). Everything
    runs in float32, also under autocast or after ``.half()``, and the output is float32. The
    window and the filterbank are buffers, so they follow ``.to(device)``, but they are derived
    from the configuration and not saved in the ``state_dict``.

    Parameters
    ----------
    sample_rate
        Sample rate of the input waveforms, in Hz.
    n_fft
        Frame (and FFT) length in samples.
    hop_length
        Samples between the starts of consecutive frames.
    n_mels
        Number of mel bands.
    f_min, f_max
        Frequency range of the mel bands, in Hz; ``f_max=None`` means Nyquist.
    window
        ``"hann_symmetric"`` (essentia, ``scipy.signal.windows.hann(n, sym=True)``) or
        ``"hann_periodic"`` (librosa, ``torch.hann_window``).
    center
        Centre frame ``t`` on sample ``t * hop_length``, padding the signal with zeros;
        otherwise frame ``t`` starts at sample ``t * hop_length``.
    power
        Exponent of the magnitude spectrum: 2 for power, 1 for magnitude.
    mel_norm, htk
        Passed to :func:`mel_filterbank` as ``norm`` and ``htk``.
    scale
        ``"essentia_db"``: ``20 * log10(max(mel, 1e-10))``; ``"log10_1p"``:
        ``log10(1 + log_multiplier * mel)``.
    log_multiplier
        Only for ``scale="log10_1p"``.

    Examples
    --------
    >>> frontend = MelFrontend()
    >>> frontend(torch.zeros(2, 12000)).shape
    torch.Size([2, 96, 47])
    """

    def __init__(
        self,
        *,
        sample_rate: int = 12000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 96,
        f_min: float = 0.0,
        f_max: float | None = None,
        window: str = "hann_symmetric",
        center: bool = True,
        power: float = 2.0,
        mel_norm: str | None = "slaney",
        htk: bool = False,
        scale: str = "essentia_db",
        log_multiplier: float = 10000.0,
    ) -> None:
        super().__init__()
        if window not in _WINDOWS:
            raise ValueError(f"window must be one of {_WINDOWS}, got {window!r}")
        if scale not in _SCALES:
            raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self._config: dict[str, Any] = {
            "sample_rate": int(sample_rate),
            "n_fft": int(n_fft),
            "hop_length": int(hop_length),
            "n_mels": int(n_mels),
            "f_min": float(f_min),
            "f_max": None if f_max is None else float(f_max),
            "window": window,
            "center": bool(center),
            "power": float(power),
            "mel_norm": mel_norm,
            "htk": bool(htk),
            "scale": scale,
            "log_multiplier": float(log_multiplier),
        }
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.center = bool(center)
        self.power = float(power)
        self.scale = scale
        self.log_multiplier = float(log_multiplier)
        analysis_window = torch.hann_window(
            self.n_fft, periodic=window == "hann_periodic", dtype=torch.float64
        )
        filterbank = mel_filterbank(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=int(n_mels),
            f_min=float(f_min),
            f_max=f_max,
            htk=htk,
            norm=mel_norm,
        )
        self.register_buffer("window", analysis_window.float(), persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(filterbank), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Map waveforms of shape ``(batch, samples)`` to spectrograms of shape
        ``(batch, n_mels, frames)``, float32."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrum = stft(
                waveform,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=self.center,
            )
            if self.power == 2.0:
                # Squaring the parts avoids the rounding of a square root squared again.
                magnitudes = torch.view_as_real(spectrum).square().sum(dim=-1)
            else:
                magnitudes = spectrum.abs().pow(self.power)
            mel = torch.matmul(self.filterbank.float(), magnitudes)
            if self.scale == "essentia_db":
                return 20.0 * torch.log10(mel.clamp(min=_ESSENTIA_POWER_FLOOR))
            return torch.log10(1.0 + self.log_multiplier * mel)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this frontend:
        ``MelFrontend(**frontend.config())``."""
        return dict(self._config)

    def num_frames(self, num_samples: int) -> int:
        """Number of frames :meth:`forward` returns for ``num_samples`` input samples."""
        if self.center:
            return 1 + num_samples // self.hop_length
        return max(0, 1 + (num_samples - self.n_fft) // self.hop_length)

    @property
    def frames_per_second(self) -> float:
        """Frame rate of the output, in frames per second."""
        return self.sample_rate / self.hop_length

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self._config.items())


class MelHpcpFrontend(nn.Module):
    """A mel spectrogram with an HPCP stacked under it: ``(batch, n_mels + size, frames)``.

    Both share the sample rate, hop and centring, so frame ``t`` of the mel bands and of the
    pitch classes describe the same instant. ``sample_rate``, ``hop_length`` and ``n_fft`` are
    the mel frontend's.
    """

    def __init__(self, mel: MelFrontend, hpcp: HPCP) -> None:
        super().__init__()
        for name in ("sample_rate", "hop_length", "center"):
            if getattr(mel, name) != getattr(hpcp, name):
                raise ValueError(
                    f"HPCP {name}={getattr(hpcp, name)!r} differs from the mel frontend's "
                    f"{getattr(mel, name)!r}: their frames would not line up"
                )
        if not mel.center and mel.n_fft != hpcp.n_fft:
            raise ValueError("without centring, the HPCP n_fft must equal the mel n_fft")
        self.mel = mel
        self.hpcp = hpcp
        self.sample_rate = mel.sample_rate
        self.hop_length = mel.hop_length
        self.n_fft = mel.n_fft
        self.center = mel.center

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mel(waveform), self.hpcp(waveform)], dim=1)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable configuration that :func:`build_frontend` turns back into this."""
        return {**self.mel.config(), "hpcp": self.hpcp.config()}

    def num_frames(self, num_samples: int) -> int:
        """Number of frames :meth:`forward` returns for ``num_samples`` input samples."""
        return self.mel.num_frames(num_samples)

    @property
    def frames_per_second(self) -> float:
        """Frame rate of the output, in frames per second."""
        return self.mel.frames_per_second


def build_frontend(config: dict[str, Any]) -> nn.Module:
    """The frontend a model pack describes.

    ``config`` holds :class:`MelFrontend` keyword arguments; an optional ``"hpcp"`` entry holds
    :class:`HPCP` keyword arguments and adds its pitch classes under the mel bands. HPCP's
    ``sample_rate``, ``hop_length`` and ``center`` default to the mel frontend's.

    Examples
    --------
    >>> build_frontend({})(torch.zeros(1, 12000)).shape
    torch.Size([1, 96, 47])
    >>> build_frontend({"hpcp": {}})(torch.zeros(1, 12000)).shape
    torch.Size([1, 108, 47])
    """
    if "hpcp" not in config:
        return MelFrontend(**config)
    mel_config = {key: value for key, value in config.items() if key != "hpcp"}
    mel = MelFrontend(**mel_config)
    hpcp_config = {
        "sample_rate": mel.sample_rate,
        "hop_length": mel.hop_length,
        "center": mel.center,
        **(config["hpcp"] or {}),
    }
    return MelHpcpFrontend(mel, HPCP(**hpcp_config))
