"""The mel-spectrogram frontend against the references it must reproduce: essentia's chain that
made MTG-Jamendo's mel-spectrograms, and librosa's filterbank and melspectrogram."""

from __future__ import annotations

import json

import media
import numpy as np
import pytest
import torch

from moodlib.audio import MelFrontend, decode, mel_filterbank, mel_frequencies

EXCERPT_SECONDS = 30.0
PARITY_TRACKS = ("Awakening", "Nebula")


def singularity_excerpt(
    name: str, sample_rate: int, seconds: float = EXCERPT_SECONDS
) -> np.ndarray:
    path = media.SOURCE_MUSIC_DIR / f"{name}.ogg"
    if not path.exists():
        pytest.skip(f"{path} is missing (apt install singularity-music)")
    return decode(path, sample_rate=sample_rate, offset_seconds=60.0, duration_seconds=seconds)


def essentia_mtg_jamendo_melspectrogram(audio: np.ndarray) -> np.ndarray:
    """``melspectrogram()`` of MTG-Jamendo's ``scripts/melspectrograms.py``, with its defaults."""
    es = pytest.importorskip("essentia.standard", reason="essentia is not installed")
    windowing = es.Windowing(type="hann", normalized=False, zeroPadding=0)
    spectrum = es.Spectrum()
    melbands = es.MelBands(
        numberBands=96,
        sampleRate=12000,
        lowFrequencyBound=0,
        highFrequencyBound=6000,
        inputSize=512 // 2 + 1,
        weighting="linear",
        normalize="unit_tri",
        warpingFormula="slaneyMel",
        type="power",
    )
    amp2db = es.UnaryOperator(type="lin2db", scale=2)
    frames = es.FrameGenerator(audio, frameSize=512, hopSize=256, startFromZero=False)
    return np.array([amp2db(melbands(spectrum(windowing(frame)))) for frame in frames]).T


def melspectrogram(frontend: MelFrontend, audio: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return frontend(torch.from_numpy(audio)[None])[0].numpy()


@pytest.mark.parametrize("track", PARITY_TRACKS)
def test_defaults_reproduce_mtg_jamendo_essentia_melspectrograms(track: str) -> None:
    audio = singularity_excerpt(track, 12000)
    reference = essentia_mtg_jamendo_melspectrogram(audio)

    ours = melspectrogram(MelFrontend(), audio)

    # Essentia adds a frame centred past the last sample unless the length is a multiple of hop.
    assert len(audio) % 256 != 0
    assert reference.shape == (96, ours.shape[1] + 1)
    reference = reference[:, : ours.shape[1]]
    audible = reference > -90.0
    assert audible.mean() > 0.5
    difference = np.abs(ours - reference)[audible]
    assert difference.mean() <= 0.01
    assert difference.max() <= 0.1


def test_digital_silence_sits_on_essentias_floor() -> None:
    silence = np.zeros(12000, np.float32)

    ours = melspectrogram(MelFrontend(), silence)

    np.testing.assert_array_equal(ours, -200.0)
    np.testing.assert_array_equal(essentia_mtg_jamendo_melspectrogram(silence), -200.0)


@pytest.mark.parametrize(
    "config",
    [
        {"sample_rate": 12000, "n_fft": 512, "n_mels": 96},
        {"sample_rate": 16000, "n_fft": 512, "n_mels": 96},
        {"sample_rate": 22050, "n_fft": 2048, "n_mels": 128, "f_min": 30.0, "f_max": 8000.0},
        {"sample_rate": 16000, "n_fft": 1024, "n_mels": 64, "htk": True},
        {"sample_rate": 12000, "n_fft": 512, "n_mels": 96, "norm": None},
    ],
    ids=["mtg-jamendo", "musicnn", "wide", "htk", "unnormalised"],
)
def test_filterbank_equals_librosa(config: dict) -> None:
    librosa = pytest.importorskip("librosa")
    librosa_names = {"sample_rate": "sr", "f_min": "fmin", "f_max": "fmax"}
    expected = librosa.filters.mel(**{librosa_names.get(k, k): v for k, v in config.items()})

    np.testing.assert_allclose(mel_filterbank(**config), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("htk", [False, True], ids=["slaney", "htk"])
def test_mel_frequencies_equal_librosa(htk: bool) -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.mel_frequencies(n_mels=98, fmin=30.0, fmax=8000.0, htk=htk)

    ours = mel_frequencies(n_mels=98, f_min=30.0, f_max=8000.0, htk=htk)

    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_each_filterbank_band_peaks_at_its_mel_frequency() -> None:
    bank = mel_filterbank(sample_rate=12000, n_fft=4096, n_mels=20, norm=None)
    centres = mel_frequencies(n_mels=22, f_min=0.0, f_max=6000.0)[1:-1]
    peaks = np.fft.rfftfreq(4096, d=1 / 12000)[bank.argmax(axis=1)]

    np.testing.assert_allclose(peaks, centres, atol=12000 / 4096)


def test_log10_1p_with_periodic_window_equals_librosa_melspectrogram() -> None:
    librosa = pytest.importorskip("librosa")
    audio = singularity_excerpt(PARITY_TRACKS[0], 16000, seconds=10.0)
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, hop_length=256, n_fft=512, n_mels=96)
    expected = np.log10(1 + 10000 * mel)
    frontend = MelFrontend(sample_rate=16000, window="hann_periodic", scale="log10_1p")

    ours = melspectrogram(frontend, audio)

    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_batch_items_are_computed_independently() -> None:
    waveforms = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (2, 24000)))
    frontend = MelFrontend()

    with torch.no_grad():
        batch = frontend(waveforms)
        alone = [frontend(waveform[None])[0] for waveform in waveforms]

    torch.testing.assert_close(batch, torch.stack(alone))


def test_config_round_trips_through_json() -> None:
    frontend = MelFrontend(sample_rate=16000, n_mels=128, f_max=7000.0, scale="log10_1p")

    config = json.loads(json.dumps(frontend.config()))
    rebuilt = MelFrontend(**config)

    assert rebuilt.config() == frontend.config()
    waveform = torch.randn(1, 16000)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(waveform), frontend(waveform))


def test_default_config_names_the_mtg_jamendo_parameters() -> None:
    assert MelFrontend().config() == {
        "sample_rate": 12000,
        "n_fft": 512,
        "hop_length": 256,
        "n_mels": 96,
        "f_min": 0.0,
        "f_max": None,
        "window": "hann_symmetric",
        "center": True,
        "power": 2.0,
        "mel_norm": "slaney",
        "htk": False,
        "scale": "essentia_db",
        "log_multiplier": 10000.0,
    }


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("num_samples", [512, 513, 767, 768, 12000, 360000])
def test_num_frames_matches_the_output(center: bool, num_samples: int) -> None:
    frontend = MelFrontend(center=center)

    with torch.no_grad():
        output = frontend(torch.zeros(1, num_samples))

    assert output.shape == (1, 96, frontend.num_frames(num_samples))


def test_frames_per_second() -> None:
    assert MelFrontend().frames_per_second == 12000 / 256


def test_derived_buffers_stay_out_of_the_state_dict() -> None:
    assert MelFrontend().state_dict() == {}


def test_rejects_a_waveform_without_batch_dimension() -> None:
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        MelFrontend()(torch.zeros(12000))


def test_autocast_does_not_lower_the_precision() -> None:
    waveform = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (1, 12000)))
    frontend = MelFrontend()

    with torch.no_grad():
        expected = frontend(waveform)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            output = frontend(waveform)

    assert output.dtype == torch.float32
    torch.testing.assert_close(output, expected, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_under_autocast_matches_cpu() -> None:
    waveform = torch.from_numpy(singularity_excerpt(PARITY_TRACKS[1], 12000, seconds=10.0))[None]
    frontend = MelFrontend()

    with torch.no_grad():
        expected = frontend(waveform)
        frontend.cuda()
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            output = frontend(waveform.cuda())

    assert output.dtype == torch.float32
    audible = expected > -90.0
    difference = (output.cpu() - expected).abs()[audible]
    assert difference.mean() <= 0.01
    assert difference.max() <= 0.1
