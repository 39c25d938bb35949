"""A track shorter than a pack's segment is repeated to the segment's length, not padded."""

from __future__ import annotations

import media
import numpy as np
import pytest
import torch

from moodlib import vocabulary
from moodlib.audio.decode import decode, probe
from moodlib.audio.tiling import tile_to_length
from moodlib.inference import Tagger
from moodlib.packstore import PackStore
from moodlib.pipeline import read_track
from trainer.data.augment import crop

EXCERPT_SECONDS = 7.0


def test_a_short_signal_is_repeated_along_its_last_axis() -> None:
    mel = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert tile_to_length(mel, 7).tolist() == [[1, 2, 3, 1, 2, 3, 1], [4, 5, 6, 4, 5, 6, 4]]
    waveform = torch.tensor([0.5, -0.5])
    assert tile_to_length(waveform, 5).tolist() == [0.5, -0.5, 0.5, -0.5, 0.5]
    assert tile_to_length(mel, 3) is mel, "a long enough signal is returned as it is"
    with pytest.raises(ValueError, match="empty"):
        tile_to_length(np.zeros((2, 0)), 4)


def repeated(array: np.ndarray, length: int) -> np.ndarray:
    """The oracle: ``array`` written out enough times along its last axis, cut to ``length``."""
    copies = -(-length // array.shape[-1])
    return np.concatenate([array] * copies, axis=-1)[..., :length]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Tagger:
    return Tagger(PackStore(tmp_path_factory.mktemp("packs")).get("mtg-baseline"), device="cpu")


def test_the_tagger_hears_a_short_waveform_repeated_to_one_segment(tagger) -> None:
    waveform = np.random.default_rng(0).standard_normal(2 * tagger.sample_rate)
    waveform = waveform.astype(np.float32)  # 2 s of noise; the segment is 29.1 s
    with torch.inference_mode():
        mel = tagger.mel(waveform)
        expected = tagger.frontend(torch.from_numpy(repeated(waveform, tagger.min_samples))[None])
    np.testing.assert_array_equal(mel.numpy(), expected[0].numpy())
    assert tagger.segments(mel).shape == (1, 96, tagger.pack.segmenting.frames)


def test_the_tagger_and_the_trainer_repeat_a_short_mel_alike(tagger) -> None:
    frames = tagger.pack.segmenting.frames
    short = np.random.default_rng(1).normal(-40, 10, size=(96, 300)).astype(np.float32)
    segment = tagger.segments(torch.from_numpy(short))[0].numpy()
    np.testing.assert_array_equal(segment, repeated(short, frames))
    np.testing.assert_array_equal(crop(short, 0, frames), repeated(short, frames))


@pytest.mark.slow
def test_a_seven_second_excerpt_shares_a_top_three_tag_with_its_whole_track(tagger) -> None:
    if media.missing_tools():
        pytest.skip(media.missing_tools())
    for source in media.source_tracks():
        middle = probe(source).duration_seconds / 2
        excerpt = decode(
            source,
            sample_rate=tagger.sample_rate,
            offset_seconds=middle - EXCERPT_SECONDS / 2,
            duration_seconds=EXCERPT_SECONDS,
        )
        assert len(excerpt) == pytest.approx(EXCERPT_SECONDS * tagger.sample_rate, rel=0.01)
        whole, short = tagger.predict_waveforms([read_track(source, tagger).waveform, excerpt])
        whole_top, short_top = ({vocabulary.TAGS[i] for i in np.argsort(-p.scores)[:3]}
                                for p in (whole, short))  # fmt: skip
        assert whole_top & short_top, f"{source.name}: {whole_top} vs {short_top}"
