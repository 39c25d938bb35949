"""The Tagger: segmenting, ensembling, tag mapping, and parity with the official baseline."""

from __future__ import annotations

import itertools
import resource
import sys
from pathlib import Path

import media
import numpy as np
import pytest
import torch
from torch import nn

from moodlib import vocabulary
from moodlib.audio.decode import decode
from moodlib.inference import Tagger, TrackExcerpts, resolve_device
from moodlib.models import build_model
from moodlib.packs import Member, Segmenting, TagSource, manifest_dict
from moodlib.packstore import PackStore
from moodlib.pipeline import read_excerpts

SHARED = Path(__file__).resolve().parents[2] / "shared"
BASELINE = SHARED / "models" / "mtg-baseline" / "best_model.pth"
needs_baseline = pytest.mark.skipif(not BASELINE.is_file(), reason=f"no checkpoint at {BASELINE}")


class OfficialBaseline(nn.Module):
    """The MTG-Jamendo baseline's ``CNN`` as published (sigmoid inside ``forward``)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_init = nn.BatchNorm2d(1)
        channels = [1, 64, 128, 128, 128, 64]
        pools = [(2, 4), (2, 4), (2, 4), (3, 5), (4, 4)]
        for i in range(1, 6):
            setattr(self, f"conv_{i}", nn.Conv2d(channels[i - 1], channels[i], 3, padding=1))
            setattr(self, f"bn_{i}", nn.BatchNorm2d(channels[i]))
            setattr(self, f"mp_{i}", nn.MaxPool2d(pools[i - 1]))
        self.dense = nn.Linear(64, 56)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_init(x.unsqueeze(1))
        for i in range(1, 6):
            conv, bn, mp = (getattr(self, f"{n}_{i}") for n in ("conv", "bn", "mp"))
            x = mp(nn.ELU()(bn(conv(x))))
        x = x.view(x.size(0), -1)
        return nn.Sigmoid()(self.dense(self.dropout(x)))


@pytest.fixture(scope="module")
def baseline_pack(tmp_path_factory):
    if not BASELINE.is_file():
        pytest.skip(f"no checkpoint at {BASELINE}")
    store = PackStore(tmp_path_factory.mktemp("packs"), builtin_dir=Path("/nonexistent"))
    return store.import_checkpoint(BASELINE, name="mtg-baseline", architecture="vggish_baseline")


@needs_baseline
def test_baseline_through_the_tagger_equals_the_state_dict_run_by_hand(
    baseline_pack, real_music_library
) -> None:
    tagger = Tagger(baseline_pack, device="cpu")
    waveforms = [
        decode(real_music_library[fmt], sample_rate=12000) for fmt in ("flac", "mp3", "opus")
    ]
    predictions = tagger.predict_waveforms(waveforms)

    reference = OfficialBaseline()
    reference.load_state_dict(torch.load(BASELINE, map_location="cpu", weights_only=True))
    reference.eval()
    for waveform, prediction in zip(waveforms, predictions, strict=True):
        mel = tagger.mel(waveform)  # the 10 s excerpt is repeated to one 29.1 s segment
        assert mel.shape == (96, 1367)
        start = (mel.shape[1] - 1366) // 2
        with torch.no_grad():
            expected = reference(mel[None, :, start : start + 1366])[0].numpy()
        np.testing.assert_allclose(prediction.scores, expected, atol=1e-6)
    assert not np.allclose(predictions[0].scores, predictions[1].scores, atol=1e-3)


@needs_baseline
def test_decisions_follow_the_pack_thresholds(baseline_pack, real_music_library) -> None:
    tagger = Tagger(baseline_pack, device="cpu")
    waveform = decode(real_music_library["flac"], sample_rate=12000)
    prediction = tagger.predict_waveforms([waveform])[0]
    thresholds = np.array([baseline_pack.thresholds[t] for t in vocabulary.TAGS])
    np.testing.assert_array_equal(prediction.decisions, prediction.scores >= thresholds)
    assert prediction.embedding.shape == (64,)
    scores = [prediction.scores[vocabulary.TAG_INDEX[t]] for t in prediction.tags]
    assert scores == sorted(scores, reverse=True)


@needs_baseline
def test_a_centred_pack_decodes_only_the_middle_of_a_long_track(baseline_pack) -> None:
    tagger = Tagger(baseline_pack, device="cpu")
    [(start, stop)] = tagger.spans(300 * 12000)
    # The segment's 1366 frames and the half window of 256 samples each side of them, from a
    # sample on the frame grid, so the part's frames are the whole track's.
    assert (start % 256, stop - start) == (0, (1366 + 1) * 256)
    assert (start + stop) / 2 == pytest.approx(150 * 12000, abs=256)
    assert tagger.read_window(300.0) == (start / 12000, (stop - start) / 12000)
    assert tagger.read_window(20.0) == (0.0, None)


@pytest.fixture(scope="module")
def starter_pack(tmp_path_factory):
    return PackStore(tmp_path_factory.mktemp("no_installed_packs")).get("starter")


@pytest.fixture(scope="module")
def long_track() -> Path:
    """A whole soundtrack track (Ogg Vorbis, 44.1 kHz stereo, several minutes)."""
    if not media.source_tracks():
        pytest.skip(f"no music in {media.SOURCE_MUSIC_DIR}")
    return media.source_tracks()[0]


def test_a_patch_pack_reads_ten_separate_parts_of_a_long_track(starter_pack) -> None:
    tagger = Tagger(starter_pack, device="cpu")
    total = 300 * 16000
    spans = tagger.spans(total)

    assert len(spans) == 10 and spans[0][0] == 0 and spans[-1][1] is None
    lengths = [(stop or total) - start for start, stop in spans]
    # 187 frames of 256 samples, and a frame of context either side but at the track's ends
    assert set(lengths[1:-1]) == {(187 + 1) * 256}
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    assert tagger.read_window(300.0) == (0.0, None)  # the whole track holds them all


def test_a_track_shorter_than_a_segment_is_read_whole(starter_pack) -> None:
    assert Tagger(starter_pack, device="cpu").spans(2 * 16000) == [(0, None)]


@pytest.mark.slow
@pytest.mark.parametrize("pack_name", ["starter", "mtg-baseline"])
def test_scores_from_the_parts_a_pack_reads_equal_scores_from_the_whole_track(
    pack_name, starter_pack, request, long_track
) -> None:
    pack = starter_pack if pack_name == "starter" else request.getfixturevalue("baseline_pack")
    tagger = Tagger(pack, device="cpu")
    excerpts = read_excerpts(long_track, tagger)
    whole = decode(long_track, sample_rate=tagger.sample_rate)
    assert excerpts.total_samples == len(whole)
    assert sum(len(w) for w in excerpts.waveforms) < len(whole) / 5

    [from_parts] = tagger.predict_excerpts([excerpts])
    [from_whole] = tagger.predict_waveforms([whole])

    np.testing.assert_allclose(from_parts.scores, from_whole.scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(from_parts.embedding, from_whole.embedding, rtol=0, atol=1e-4)


def test_parts_shorter_than_planned_are_refused(starter_pack) -> None:
    tagger = Tagger(starter_pack, device="cpu")
    total = 300 * 16000
    parts = [np.zeros((stop or total) - start, np.float32) for start, stop in tagger.spans(total)]
    cut_short = TrackExcerpts(total, (*parts[:-1], parts[-1][:-20000]))

    assert tagger.fits(TrackExcerpts(total, tuple(parts)))
    assert not tagger.fits(cut_short)
    with pytest.raises(ValueError, match="not the spans"):
        tagger.predict_excerpts([cut_short])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_batch_on_the_cpu_reuses_the_memory_of_the_batch_before(starter_pack) -> None:
    tagger = Tagger(starter_pack, device="cpu")
    mel = torch.randn(96, 187 * 12)
    tagger.predict_mels([mel])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    tagger.predict_mels([mel])

    # Mapped anew, the activations of 10 patches x 2 networks are 260 000 page faults.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 20_000


def _two_member_pack(tmp_path: Path, segmenting: Segmenting, tag_map=None, covered=None):
    """A pack of two small random networks, to check the ensemble arithmetic."""
    torch.manual_seed(0)
    members, weights = [], {}
    for name, weight in (("a", 1.0), ("b", 3.0)):
        model = build_model("vggish_baseline")
        members.append(Member(name, "vggish_baseline", f"{name}.safetensors", {}, weight))
        weights[f"{name}.safetensors"] = model.state_dict()
    manifest = manifest_dict(
        name="pair",
        version="1",
        description="two members",
        tags=vocabulary.TAGS,
        covered=covered or vocabulary.TAGS,
        frontend={"sample_rate": 12000},
        segmenting=segmenting,
        members=members,
        thresholds=dict.fromkeys(vocabulary.TAGS, 0.5),
        tag_map=tag_map,
    )
    store = PackStore(tmp_path / "packs", builtin_dir=tmp_path / "none")
    return store.add("pair", manifest, weights)


def test_ensemble_scores_are_the_weighted_mean_of_member_segment_means(tmp_path) -> None:
    pack = _two_member_pack(tmp_path, Segmenting("uniform", frames=1366, count=3))
    tagger = Tagger(pack, device="cpu")
    mel = torch.randn(96, 4000)
    segments = tagger.segments(mel)
    assert segments.shape == (3, 96, 1366)
    assert tagger.segments(mel[:, :2000]).shape == (2, 96, 1366), "two cover a short track"
    torch.testing.assert_close(segments[0], mel[:, :1366])
    torch.testing.assert_close(segments[-1], mel[:, -1366:])
    models = pack.load_models()
    with torch.no_grad():
        a = torch.sigmoid(models["a"](segments)).mean(0).numpy()
        b = torch.sigmoid(models["b"](segments)).mean(0).numpy()
    scores = tagger.predict_mels([mel])[0].scores
    np.testing.assert_allclose(scores, (1.0 * a + 3.0 * b) / 4.0, atol=1e-6)


def test_a_tag_map_projects_member_tags_and_leaves_uncovered_tags_unscored(tmp_path) -> None:
    tag_map = {
        "happy": (TagSource("a", "fun", 1.0), TagSource("b", "party", 1.0)),
        "sad": (TagSource("b", "sad", 2.0),),
    }
    pack = _two_member_pack(
        tmp_path, Segmenting("patches", frames=1366, hop_frames=683), tag_map, ["happy", "sad"]
    )
    tagger = Tagger(pack, device="cpu")
    mel = torch.randn(96, 1366 + 683 * 2 + 10)
    assert tagger.segments(mel).shape == (3, 96, 1366)
    models = pack.load_models()
    with torch.no_grad():
        a = torch.sigmoid(models["a"](tagger.segments(mel))).mean(0).numpy()
        b = torch.sigmoid(models["b"](tagger.segments(mel))).mean(0).numpy()
    prediction = tagger.predict_mels([mel])[0]
    index = vocabulary.TAG_INDEX
    assert prediction.scores[index["happy"]] == pytest.approx(
        (a[index["fun"]] + b[index["party"]]) / 2, abs=1e-6
    )
    assert prediction.scores[index["sad"]] == pytest.approx(b[index["sad"]], abs=1e-6)
    assert np.isnan(prediction.scores[index["epic"]])
    assert set(prediction.score_dict()) == {"happy", "sad"}
    assert not prediction.decisions[index["epic"]]


def test_the_ensemble_of_chosen_tags_is_differentiable_for_fine_tuning(tmp_path) -> None:
    tag_map = {"happy": (TagSource("a", "fun", 1.0), TagSource("b", "party", 3.0))}
    pack = _two_member_pack(tmp_path, Segmenting("uniform", frames=1366, count=2), tag_map,
                            ["happy"])  # fmt: skip
    tagger = Tagger(pack, device="cpu")
    segments = tagger.segments(torch.randn(96, 3000))
    index = vocabulary.TAG_INDEX
    probabilities, embedding = tagger.ensemble(segments, tags=[index["sad"], index["happy"]])
    assert probabilities.shape == (2, 2) and embedding is None  # the pack names no embedding
    assert torch.isnan(probabilities[:, 0]).all(), "the pack does not predict sad"
    with torch.no_grad():
        a = torch.sigmoid(tagger.models["a"](segments))[:, index["fun"]]
        b = torch.sigmoid(tagger.models["b"](segments))[:, index["party"]]
    torch.testing.assert_close(probabilities[:, 1].detach(), (a + 3 * b) / 4)
    probabilities[:, 1].sum().backward()
    assert all(p.grad is not None for p in tagger.models["a"].parameters() if p.requires_grad)


def test_auto_device_is_the_cpu_here_and_cuda_is_refused_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA"):
        resolve_device("cuda")
