"""The musicnn port: the same tags as the original TensorFlow package, and sensible ones.

References come from the original musicnn 0.1.0 package (``packaging/make_musicnn_fixtures.py``,
``tests/fixtures/musicnn/``): its taggrams and penultimate features, and the mel patches it fed
the network, for 10-s excerpts of real recordings from Debian game-music packages. The audio
is not stored: the tests replay the recorded ffmpeg command on the Debian file and skip when
it is not installed.

The original extractor computes its log-mel in float16: ``10000 * mel`` overflows on loud bins
and every overflowing patch gets the same saturated tags, whatever the music (the parity
excerpts are attenuated by 20 dB so that nothing overflows). moodlib computes in float32, so
it matches the original where the original is finite and tags the loud patches from the music.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import moodlib
from moodlib import vocabulary
from moodlib.audio.decode import decode
from moodlib.audio.frontend import MelFrontend
from moodlib.models import build_model
from moodlib.models.musicnn import PATCH_FRAMES, PooledConvBlock, pretrained_tags

FIXTURES = Path(__file__).parent / "fixtures" / "musicnn"
METADATA = json.loads((FIXTURES / "excerpts.json").read_text(encoding="utf-8"))
EXCERPTS = METADATA["excerpts"]
PARITY_EXCERPTS = [name for name, excerpt in EXCERPTS.items() if not any(excerpt["overflowed"])]
CHECKPOINTS = {"MSD_musicnn": "musicnn_msd", "MTT_musicnn": "musicnn_mtt"}
SAMPLE_RATE = METADATA["sample_rate"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "reference.npz") as arrays:
        return dict(arrays)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {
        checkpoint: build_model(name, pretrained=True) for checkpoint, name in CHECKPOINTS.items()
    }


def tag_probabilities(model: torch.nn.Module, patches: np.ndarray | torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model(torch.as_tensor(patches, dtype=torch.float32))).numpy()


def replay_excerpt(name: str, directory: Path) -> Path:
    """Replay the fixture's ffmpeg command; skip when the Debian recording or ffmpeg is missing,
    or when this ffmpeg decodes or resamples to other samples than the fixture's."""
    excerpt = EXCERPTS[name]
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    if not Path(excerpt["source"]).is_file():
        pytest.skip(f"{excerpt['source']} is missing ({excerpt['description']})")
    wav = directory / f"{name}.wav"
    subprocess.run([*excerpt["ffmpeg_command"], str(wav)], check=True)
    data = wav.read_bytes()
    samples_sha256 = hashlib.sha256(data[data.index(b"data") + 8 :]).hexdigest()
    if samples_sha256 != excerpt["pcm_sha256"]:
        pytest.skip(f"this ffmpeg gives other samples for {name!r} than the fixture's ffmpeg")
    return wav


def mel_patches(
    path: Path, *, offset_seconds: float = 0.0, duration_seconds: float | None = None
) -> torch.Tensor:
    """moodlib's decode and MelFrontend configured as the original package's input (librosa's
    mel, ``log10(1 + 10000 x)``), cut into consecutive 3-s patches with the incomplete tail
    dropped, as the extractor batches them with ``input_overlap=False``:
    ``(patches, 96, 187)``."""
    waveform = decode(
        path,
        sample_rate=SAMPLE_RATE,
        offset_seconds=offset_seconds,
        duration_seconds=duration_seconds,
    )
    frontend = MelFrontend(sample_rate=SAMPLE_RATE, window="hann_periodic", scale="log10_1p")
    with torch.inference_mode():
        mel = frontend(torch.from_numpy(waveform).unsqueeze(0))[0]
    return mel.unfold(1, PATCH_FRAMES, PATCH_FRAMES).movedim(1, 0)


@pytest.fixture(scope="module")
def excerpt_patches(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], torch.Tensor]:
    """Excerpt name -> our mel patches of the replayed excerpt, computed once per module."""
    directory = tmp_path_factory.mktemp("musicnn_excerpts")
    return cache(lambda name: mel_patches(replay_excerpt(name, directory)))


def with_float16_rounding(log_mel: torch.Tensor) -> np.ndarray:
    """The extractor's float16 arithmetic applied to our log-mel: back to mel power, then
    ``np.log10(10000 * mel.astype(np.float16) + 1)`` exactly as the extractor writes it."""
    power = (10.0 ** log_mel.double().numpy() - 1.0) / 10000.0
    return np.log10(10000 * power.astype(np.float16) + 1).astype(np.float32)


def top_tags(checkpoint: str, scores: np.ndarray, count: int) -> list[str]:
    return [pretrained_tags(checkpoint)[i] for i in np.argsort(-scores)[:count]]


def test_converted_checkpoints_carry_the_original_tag_lists() -> None:
    for checkpoint in CHECKPOINTS:
        assert pretrained_tags(checkpoint) == tuple(METADATA["labels"][checkpoint])
        assert len(pretrained_tags(checkpoint)) == 50
    assert pretrained_tags("MTT_musicnn")[:3] == ("guitar", "classical", "slow")


@pytest.mark.parametrize("name", ["musicnn_msd", "musicnn_mtt"])
def test_registered_model_maps_mel_patches_to_50_logits_and_200d_embedding(name: str) -> None:
    model = build_model(name, pretrained=True)
    logits, embedding = model.forward_with_embedding(torch.rand(3, 96, PATCH_FRAMES) * 4)
    assert logits.shape == (3, 50)
    assert embedding.shape == (3, 200) == (3, model.embedding_dim)


def test_in_eval_mode_a_pooled_block_is_conv_relu_bn_and_the_max_over_frequency() -> None:
    torch.manual_seed(0)
    block = PooledConvBlock(filters=32, freq_size=38, time_size=7)
    with torch.no_grad():
        for statistic in (block.bn.weight, block.bn.bias, block.bn.running_mean):
            statistic.copy_(torch.randn(32))  # about half the BN scales negative
        block.bn.running_var.copy_(torch.rand(32) + 0.5)
    block.eval()
    x = torch.randn(3, 1, 96, 50)

    with torch.no_grad():
        expected = block.bn(F.relu(block.conv(F.pad(x, block.time_padding)))).amax(dim=2)
        torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)
    assert (block.bn.weight < 0).any() and (block.bn.weight > 0).any()


@pytest.mark.parametrize("excerpt", PARITY_EXCERPTS)
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_model_matches_original_taggram_on_its_mel_patches(
    models: dict, reference: dict, checkpoint: str, excerpt: str
) -> None:
    patches = reference[f"{excerpt}/patches"]
    probabilities = tag_probabilities(models[checkpoint], patches.astype(np.float32))
    expected = reference[f"{excerpt}/{checkpoint}"]
    assert probabilities.shape == expected.shape == (len(patches), 50)
    assert np.abs(probabilities - expected).max() <= TOLERANCE


@pytest.mark.parametrize("excerpt", PARITY_EXCERPTS)
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_embedding_is_the_original_penultimate_layer(
    models: dict, reference: dict, checkpoint: str, excerpt: str
) -> None:
    patches = torch.from_numpy(reference[f"{excerpt}/patches"].astype(np.float32))
    with torch.inference_mode():
        _, embedding = models[checkpoint].forward_with_embedding(patches)
    expected = reference[f"{excerpt}/{checkpoint}/penultimate"]
    assert np.abs(embedding.numpy() - expected).max() <= TOLERANCE * np.abs(expected).max()


@pytest.mark.parametrize("excerpt", PARITY_EXCERPTS)
def test_audio_pipeline_reproduces_the_original_mel_and_taggram(
    models: dict, reference: dict, excerpt_patches: Callable, excerpt: str
) -> None:
    """decode + MelFrontend + 3-s patching + model = the original package, once our float32
    log-mel is rounded the way the extractor's float16 arithmetic rounds it."""
    patches = excerpt_patches(excerpt)
    rounded = with_float16_rounding(patches)
    expected_mel = reference[f"{excerpt}/patches"].astype(np.float32)
    assert rounded.shape == expected_mel.shape
    # Bins whose float32 power sits on a float16 rounding boundary (mostly float16 subnormals,
    # near silence) may round the other way; all others are identical.
    assert np.mean(rounded != expected_mel) < 1e-3
    assert np.abs(rounded - expected_mel).max() < 2e-3
    for checkpoint, model in models.items():
        expected = reference[f"{excerpt}/{checkpoint}"]
        assert np.abs(tag_probabilities(model, rounded) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("excerpt", PARITY_EXCERPTS)
def test_float32_audio_pipeline_differs_from_original_only_by_its_float16_rounding(
    models: dict, reference: dict, excerpt_patches: Callable, excerpt: str
) -> None:
    """moodlib's own path keeps the log-mel in float32: the tags move by the float16 rounding
    the original applies (up to ~2e-4 on these excerpts), no more."""
    patches = excerpt_patches(excerpt)
    for checkpoint, model in models.items():
        expected = reference[f"{excerpt}/{checkpoint}"]
        assert np.abs(tag_probabilities(model, patches) - expected).max() <= 1e-3


def test_port_tags_loud_patches_where_the_original_saturates(
    models: dict, reference: dict, excerpt_patches: Callable
) -> None:
    """At its original level the 'rock' excerpt overflows the extractor's float16 on every
    patch: the original then outputs one fixed vector (MTT: guitar, indian, electronic; MSD:
    rock, electronic, pop), whatever the music. The port tags the music."""
    overflowed = np.array(EXCERPTS["overflow"]["overflowed"])
    assert overflowed.all()
    patches = excerpt_patches("overflow")
    for checkpoint, model in models.items():
        original = reference[f"overflow/{checkpoint}"]
        assert np.all(original == original[0])
        ours = tag_probabilities(model, patches)
        assert np.isfinite(ours).all()
        assert np.abs(ours - ours[0]).max() > 0.05
    mtt = tag_probabilities(models["MTT_musicnn"], patches).mean(axis=0)
    msd = tag_probabilities(models["MSD_musicnn"], patches).mean(axis=0)
    assert {"rock", "loud", "fast"} <= set(top_tags("MTT_musicnn", mtt, 4))
    assert top_tags("MSD_musicnn", msd, 1) == ["metal"]


SINGULARITY = Path("/usr/share/games/singularity/music")
QUIET_PIECE = (SINGULARITY / "lose" / "Chimes They Fade.ogg", 0.0)
LOUD_PIECES = {
    "electronic": (SINGULARITY / "Coherence.ogg", 45.0),
    "metal": (Path("/usr/share/games/fretsonfire/data/songs/muldjord/armygeddon/song.ogg"), 45.0),
}
CALM_TAGS = ("slow", "quiet", "soft")
INTENSE_TAGS = ("fast", "drums")


def mtt_track_scores(path: Path, offset_seconds: float, model: torch.nn.Module) -> np.ndarray:
    """MTT tag scores of 30 s of ``path``, decoded by moodlib, averaged over the 3-s patches
    as the Tagger does."""
    if not path.is_file():
        pytest.skip(f"{path} is missing (a Debian game-music package)")
    patches = mel_patches(path, offset_seconds=offset_seconds, duration_seconds=30.0)
    return tag_probabilities(model, patches).mean(axis=0)


@pytest.mark.slow
@pytest.mark.parametrize("loud", LOUD_PIECES)
def test_quiet_slow_piece_and_loud_fast_piece_get_opposite_tags(models: dict, loud: str) -> None:
    model = models["MTT_musicnn"]
    quiet = mtt_track_scores(*QUIET_PIECE, model)
    intense = mtt_track_scores(*LOUD_PIECES[loud], model)
    tags = pretrained_tags("MTT_musicnn")
    assert top_tags("MTT_musicnn", quiet, 1) == ["slow"]
    assert top_tags("MTT_musicnn", intense, 1)[0] in {"techno", "rock", "loud", "fast", "metal"}
    for tag in CALM_TAGS:
        assert quiet[tags.index(tag)] > 3 * intense[tags.index(tag)], tag
    for tag in INTENSE_TAGS:
        assert intense[tags.index(tag)] > 3 * quiet[tags.index(tag)], tag


def test_starter_mapping_names_our_tags_and_real_musicnn_tags() -> None:
    mapping_path = Path(moodlib.__file__).parent / "resources/packs/starter/mapping.toml"
    mapping = tomllib.loads(mapping_path.read_text(encoding="utf-8"))["tags"]
    member_tags = {"msd": pretrained_tags("MSD_musicnn"), "mtt": pretrained_tags("MTT_musicnn")}
    assert set(mapping) <= set(vocabulary.TAGS)
    for tag, entry in mapping.items():
        assert set(entry) == {"sources", "threshold", "why"}, tag
        assert 0.0 < entry["threshold"] < 1.0, tag
        assert entry["why"].strip(), tag
        for source in entry["sources"]:
            assert source["tag"] in member_tags[source["member"]], (tag, source)
            assert source["weight"] > 0, (tag, source)
