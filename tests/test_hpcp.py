"""HPCP against essentia's chain (Windowing -> Spectrum -> SpectralPeaks -> HPCP) on real music,
and the frontend factory that stacks it under the mel bands."""

from __future__ import annotations

import math

import media
import numpy as np
import pytest
import torch

from moodlib.audio import MelFrontend, decode
from moodlib.audio.frontend import MelHpcpFrontend, build_frontend
from moodlib.audio.hpcp import HPCP, harmonic_weights

SAMPLE_RATE = 12000
EXCERPT_SECONDS = 20.0


def excerpt(name: str) -> np.ndarray:
    path = media.SOURCE_MUSIC_DIR / f"{name}.ogg"
    if not path.exists():
        pytest.skip(f"{path} is missing (apt install singularity-music)")
    return decode(
        path, sample_rate=SAMPLE_RATE, offset_seconds=60.0, duration_seconds=EXCERPT_SECONDS
    )


def essentia_hpcpgram(audio: np.ndarray, module: HPCP) -> np.ndarray:
    """Essentia's per-frame chain with the module's settings, frames centred like the module's
    (``startFromZero=False``); ``(frames, size)``."""
    es = pytest.importorskip("essentia.standard", reason="essentia is not installed")
    config = module.config()
    window = es.Windowing(type="blackmanharris62")
    spectrum = es.Spectrum()
    peaks = es.SpectralPeaks(
        minFrequency=config["min_frequency"],
        maxFrequency=config["max_frequency"],
        maxPeaks=config["max_peaks"],
        magnitudeThreshold=config["magnitude_threshold"],
        sampleRate=SAMPLE_RATE,
    )
    hpcp = es.HPCP(
        sampleRate=SAMPLE_RATE,
        minFrequency=config["min_frequency"],
        maxFrequency=config["max_frequency"],
        harmonics=config["harmonics"],
        size=config["size"],
    )
    frames = es.FrameGenerator(
        audio, frameSize=config["n_fft"], hopSize=config["hop_length"], startFromZero=False
    )
    return np.array([hpcp(*peaks(spectrum(window(frame)))) for frame in frames])


def hpcpgram(module: HPCP, audio: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(audio)[None])[0].T.numpy()


@pytest.mark.parametrize(("track", "harmonics"), [("Awakening", 0), ("Coherence", 8)])
def test_pitch_class_per_frame_agrees_with_essentia(track: str, harmonics: int) -> None:
    audio = excerpt(track)
    module = HPCP(harmonics=harmonics)
    reference = essentia_hpcpgram(audio, module)
    ours = hpcpgram(module, audio)
    frames = min(len(reference), len(ours))
    reference, ours = reference[:frames], ours[:frames]
    tonal = reference.max(axis=1) > 0
    assert tonal.mean() > 0.9  # the excerpts are music throughout

    agreement = (reference.argmax(axis=1) == ours.argmax(axis=1))[tonal].mean()

    # Measured: every frame agrees, and the profiles differ by ~1e-5 on average (a few
    # frames differ more, where float32 and float64 order peaks of equal size differently).
    assert agreement > 0.98
    assert np.abs(reference - ours).mean() < 1e-3


def test_frames_line_up_with_the_mel_frontend() -> None:
    waveform = torch.randn(2, SAMPLE_RATE * 3 + 17)
    mel = MelFrontend()

    profile = HPCP()(waveform)

    assert profile.shape == (2, 12, mel(waveform).shape[-1])
    assert profile.shape[-1] == mel.num_frames(waveform.shape[-1])


def tone(semitones_above_a4: int, amplitude: float = 1.0) -> torch.Tensor:
    seconds = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    frequency = 440.0 * 2 ** (semitones_above_a4 / 12)
    return amplitude * torch.sin(2 * math.pi * frequency * seconds)[None]


def test_a_pure_tone_lands_in_its_pitch_class() -> None:
    c5 = tone(3)  # 523 Hz: bin 3, as bin 0 is A

    profile = HPCP(band_split_frequency=None)(c5)[0, :, 10:-10]

    assert (profile.argmax(dim=0) == 3).all()
    assert torch.allclose(profile.amax(dim=0), torch.ones(profile.shape[1]))
    assert (profile[[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]] < 1e-3).all()


def test_each_band_is_scaled_to_one_before_they_are_summed() -> None:
    # A loud C5 (523 Hz) over a quiet E4 (330 Hz, 40 dB down), either side of the 500-Hz split.
    mix = tone(3) + tone(-5, amplitude=0.01)

    split = HPCP()(mix)[0, :, 10:-10]
    single_band = HPCP(band_split_frequency=None)(mix)[0, :, 10:-10]

    assert torch.allclose(split[3], torch.ones(split.shape[1]))
    assert torch.allclose(split[7], torch.ones(split.shape[1]), atol=1e-3)
    assert (single_band[7] < 1e-3).all()


def test_silence_gives_all_zero_profiles() -> None:
    assert (HPCP()(torch.zeros(1, SAMPLE_RATE)) == 0).all()


def test_harmonic_table_matches_essentia_weights() -> None:
    # Harmonics 1, 2, 4, 8 share the fundamental's pitch class: 1 + 1 + 1 + 1 / 1.5; 3 and 6
    # are a fifth (19.02 and 31.02 semitones) up: 1 + 1 / (31.02 / 24).
    offsets = dict(harmonic_weights(8))

    assert offsets[0.0] == pytest.approx(3 + 1 / 1.5)
    fifth = next(strength for semitones, strength in offsets.items() if 6.9 < semitones < 7.1)
    assert fifth == pytest.approx(1 + 24 / (12 * math.log2(6)))
    assert harmonic_weights(0) == [(0.0, 1.0)]


def test_build_frontend_without_hpcp_is_the_mel_frontend() -> None:
    frontend = build_frontend({"n_mels": 64})

    assert isinstance(frontend, MelFrontend)
    assert frontend.config()["n_mels"] == 64


def test_build_frontend_stacks_hpcp_under_the_mel_bands() -> None:
    frontend = build_frontend({"hpcp": {"harmonics": 4}})
    waveform = torch.randn(2, SAMPLE_RATE * 2)

    stacked = frontend(waveform)

    assert isinstance(frontend, MelHpcpFrontend)
    assert stacked.shape == (2, 96 + 12, frontend.num_frames(waveform.shape[-1]))
    assert torch.equal(stacked[:, :96], MelFrontend()(waveform))
    assert torch.equal(stacked[:, 96:], HPCP(harmonics=4)(waveform))
    assert (frontend.sample_rate, frontend.hop_length, frontend.n_fft) == (12000, 256, 512)


def test_stacked_frontend_config_rebuilds_it() -> None:
    frontend = build_frontend({"n_mels": 64, "hpcp": {"n_fft": 2048}})

    config = frontend.config()
    rebuilt = build_frontend(config)

    assert config["hpcp"]["n_fft"] == 2048 and config["n_mels"] == 64
    assert rebuilt.config() == config


def test_build_frontend_refuses_an_hpcp_on_other_frames() -> None:
    with pytest.raises(ValueError, match="hop_length"):
        build_frontend({"hpcp": {"hop_length": 512}})
