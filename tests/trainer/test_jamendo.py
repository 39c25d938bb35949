"""Split files, mel-spectrogram files, the datasets runs read, and the synthetic look-alike."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from moodlib.audio.frontend import MelFrontend
from moodlib.packs import Segmenting
from moodlib.vocabulary import FULL_NAMES, TAGS
from trainer.cli import main
from trainer.data import synth
from trainer.data.augment import single_label
from trainer.data.jamendo import (
    HEADER,
    SUBSETS,
    DatasetError,
    Track,
    load_mel,
    mel_path,
    read_split,
    split_file,
    tag_counts,
    tag_matrix,
    write_split,
)
from trainer.data.tracks import CropDataset, SegmentDataset
from trainer.metrics import evaluate, frequency_groups

OFFICIAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mtg-jamendo"
needs_official = pytest.mark.skipif(
    not (OFFICIAL / "split-0").is_dir(),
    reason=f"the official MTG-Jamendo split is not at {OFFICIAL}/split-0",
)


@needs_official
def test_official_split_has_the_published_track_counts():
    counts = {
        subset: len(read_split(split_file(OFFICIAL / "split-0", subset))) for subset in SUBSETS
    }

    assert counts == {"train": 9949, "validation": 3802, "test": 4231}


@needs_official
def test_official_tag_order_is_moodlibs():
    official = (OFFICIAL / "moodtheme_split.txt").read_text().split()

    assert tuple(official) == FULL_NAMES


@needs_official
def test_official_tag_matrix_covers_all_56_tags_in_every_subset():
    for subset in SUBSETS:
        tracks = read_split(split_file(OFFICIAL / "split-0", subset))
        matrix = tag_matrix(tracks)

        assert matrix.shape == (len(tracks), 56)
        assert (matrix.sum(axis=1) >= 1).all(), subset
        assert (matrix.sum(axis=0) >= 1).all(), subset
        assert matrix.sum() == sum(len(track.tags) for track in tracks)


@needs_official
def test_official_first_training_track():
    first = read_split(split_file(OFFICIAL / "split-0", "train"))[0]

    assert first == Track(
        "track_0000948", "artist_000087", "album_000149", "48/948.mp3", 212.7, ("background",)
    )


@needs_official
def test_official_training_counts_split_into_8_head_29_middle_19_tail_tags():
    counts = tag_counts(read_split(split_file(OFFICIAL / "split-0", "train")))

    groups = frequency_groups(counts)

    assert [len(groups[name]) for name in ("head", "middle", "tail")] == [8, 29, 19]


def test_mel_path_swaps_the_extension():
    assert mel_path("/data/melspecs", "48/948.mp3") == Path("/data/melspecs/48/948.npy")


def test_split_files_round_trip_with_any_number_of_tags(tmp_path):
    tracks = [
        Track("track_0000001", "artist_000001", "album_000001", "01/1.mp3", 30.0, ("happy",)),
        Track("track_0000102", "artist_000002", "album_000002", "02/102.mp3", 212.7, TAGS[:7]),
    ]
    path = tmp_path / "autotagging_moodtheme-train.tsv"

    write_split(path, tracks)

    assert path.read_bytes().startswith(("\t".join(HEADER) + "\r\n").encode())
    assert read_split(path) == tracks
    assert tag_matrix(tracks)[1].tolist() == [1.0] * 7 + [0.0] * 49


def test_a_wrong_header_names_the_file(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("ID\tPATH\n1\t01/1.mp3\n")

    with pytest.raises(DatasetError, match=r"bad\.tsv: the header"):
        read_split(path)


def test_an_unknown_tag_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("\t".join(HEADER) + "\nt\ta\tb\t01/1.mp3\t30.0\tmood/theme---grumpy\n")

    with pytest.raises(DatasetError, match=r"bad.tsv:2: .*grumpy"):
        read_split(path)


def test_a_missing_split_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot read"):
        read_split(tmp_path / "absent.tsv")


def test_segment_starts_span_the_track_evenly():
    assert Segmenting("uniform", frames=100, count=4).starts(1000) == [0, 300, 600, 900]
    assert Segmenting("uniform", frames=100, count=3).starts(50) == [0]


@pytest.fixture
def mel_tracks(tmp_path):
    """Two tracks whose mel value at (band, frame) is band * 1000 + frame."""
    tracks = [
        Track("track_0000101", "a", "b", "01/101.mp3", 10.0, ("happy", "sad")),
        Track("track_0000202", "a", "b", "02/202.mp3", 10.0, ("calm",)),
    ]
    for track, frames in zip(tracks, (500, 60), strict=True):
        destination = mel_path(tmp_path, track.path)
        destination.parent.mkdir(parents=True)
        mel = np.arange(96)[:, None] * 1000.0 + np.arange(frames)[None, :]
        np.save(destination, mel.astype(np.float32))
    return tracks, tmp_path


def crop_dataset(tracks, root, *, crop_frames):
    inputs = [(mel_path(root, t.path),) for t in tracks]
    return CropDataset(inputs, tag_matrix(tracks), crop_frames=crop_frames)


def test_training_items_are_random_contiguous_crops(mel_tracks):
    tracks, root = mel_tracks
    dataset = crop_dataset(tracks, root, crop_frames=128)
    torch.manual_seed(0)

    starts = set()
    for _ in range(20):
        crop, tags, _ = dataset[0]
        assert crop.shape == (96, 128) and crop.dtype == torch.float32
        start = int(crop[0, 0])
        assert 0 <= start <= 500 - 128
        expected = np.arange(96)[:, None] * 1000.0 + np.arange(start, start + 128)[None, :]
        assert np.array_equal(crop.numpy(), expected)
        starts.add(start)

    assert len(starts) > 1
    assert tags[[TAGS.index("happy"), TAGS.index("sad")]].tolist() == [1.0, 1.0]
    assert tags.sum() == 2


def test_evaluation_items_are_evenly_spaced_segments(mel_tracks):
    tracks, root = mel_tracks
    dataset = SegmentDataset(
        [(mel_path(root, t.path),) for t in tracks],
        tag_matrix(tracks),
        segmenting=Segmenting("uniform", frames=100, count=5),
    )

    segments, tags = dataset[0]

    assert segments.shape == (5, 96, 100)
    assert segments[:, 0, 0].tolist() == [0, 100, 200, 300, 400]
    assert tags[TAGS.index("happy")] == 1


def test_a_track_shorter_than_the_crop_is_repeated_to_its_length(mel_tracks):
    tracks, root = mel_tracks
    dataset = crop_dataset(tracks, root, crop_frames=100)

    crop, _, _ = dataset[1]

    assert crop.shape == (96, 100)
    assert crop[5, 59].item() == 5059  # the track's 60 frames, then again from its start
    assert crop[5, 60].item() == 5000
    assert (crop[:, 60:] == crop[:, :40]).all()


def test_a_malformed_mel_names_the_file(tmp_path):
    path = tmp_path / "01" / "101.npy"
    path.parent.mkdir()
    np.save(path, np.zeros((64, 10), dtype=np.float32))

    with pytest.raises(DatasetError, match=r"101.npy: expected 96 mel bands"):
        load_mel(path)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("synth"), tracks=200, frames=256, seed=3)


def read_synthetic(dataset):
    return {subset: read_split(split_file(dataset.split_dir, subset)) for subset in SUBSETS}


def test_synthetic_dataset_has_the_official_layout(synthetic):
    subsets = read_synthetic(synthetic)

    assert sum(len(tracks) for tracks in subsets.values()) == 200
    assert len(subsets["train"]) > len(subsets["test"]) > len(subsets["validation"])
    first_line = split_file(synthetic.split_dir, "train").read_bytes().split(b"\r\n")[0]
    assert first_line.decode() == "\t".join(HEADER)
    for tracks in subsets.values():
        for track in tracks:
            number = int(track.track_id.removeprefix("track_"))
            assert track.path == f"{number % 100:02d}/{number}.mp3"
            mel = load_mel(mel_path(synthetic.mel_root, track.path))
            assert mel.shape == (96, 256) and mel.dtype == np.float32


def test_synthetic_values_are_in_the_mtg_db_range(synthetic):
    tracks = read_synthetic(synthetic)["train"][:20]
    values = np.stack([load_mel(mel_path(synthetic.mel_root, t.path)) for t in tracks])

    assert -35 < values.mean() < -12
    assert 10 < values.std() < 25


def test_synthetic_tags_are_imbalanced_and_present_in_every_subset(synthetic):
    subsets = read_synthetic(synthetic)
    for tracks in subsets.values():
        matrix = tag_matrix(tracks)
        assert (matrix.sum(axis=0) >= 1).all()
        assert (matrix.sum(axis=1) >= 1).all()
        assert (matrix.sum(axis=0) < len(tracks)).all()
    counts = tag_counts(subsets["train"])
    assert counts.max() >= 4 * counts.min()


def test_synthetic_dataset_is_reproducible(synthetic, tmp_path):
    again = synth.generate(tmp_path, tracks=200, frames=256, seed=3)

    track = read_synthetic(again)["test"][0]
    assert split_file(again.split_dir, "test").read_bytes() == (
        split_file(synthetic.split_dir, "test").read_bytes()
    )
    assert np.array_equal(
        load_mel(mel_path(again.mel_root, track.path)),
        load_mel(mel_path(synthetic.mel_root, track.path)),
    )


def test_synthetic_tags_are_learnable_from_per_band_means(synthetic):
    subsets = read_synthetic(synthetic)

    def features(tracks):
        return np.stack(
            [load_mel(mel_path(synthetic.mel_root, t.path)).mean(axis=1) for t in tracks]
        )

    train, test = subsets["train"], subsets["test"]
    model = make_pipeline(
        StandardScaler(), OneVsRestClassifier(LogisticRegression(solver="liblinear"))
    )
    model.fit(features(train), tag_matrix(train))
    groundtruth = tag_matrix(test)
    learnt = evaluate(groundtruth, model.predict_proba(features(test)))
    prior = evaluate(groundtruth, np.tile(tag_matrix(train).mean(axis=0), (len(test), 1)))

    assert prior["ROC-AUC-macro"] == pytest.approx(0.5)
    assert learnt["ROC-AUC-macro"] > 0.9
    assert learnt["PR-AUC-macro"] > 3 * prior["PR-AUC-macro"]


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    return synth.generate(
        tmp_path_factory.mktemp("easy"), tracks=200, frames=256, seed=3, difficulty="easy"
    )


def test_easy_synthetic_data_has_the_layout_and_the_db_range(easy):
    subsets = read_synthetic(easy)
    values = np.stack([load_mel(mel_path(easy.mel_root, t.path)) for t in subsets["train"][:20]])

    assert [len(subsets[s]) for s in SUBSETS] == [111, 42, 47]
    assert values.shape == (20, 96, 256) and values.dtype == np.float32
    assert -35 < values.mean() < -5
    assert 10 < values.std() < 25


def test_easy_synthetic_tags_are_nested_in_groups_with_moderate_imbalance(easy):
    subsets = read_synthetic(easy)
    for tracks in subsets.values():
        matrix = tag_matrix(tracks).astype(bool)
        assert matrix.any(axis=0).all() and matrix.any(axis=1).all()
        # tag k is rank k // 8 of group k % 8: a track with a rank has every higher one
        ranks = matrix.reshape(len(tracks), synth.EASY_RANKS, synth.EASY_GROUPS)
        assert (ranks[:, :-1] <= ranks[:, 1:]).all()
    train = tag_matrix(subsets["train"])
    assert 3 < train.sum(axis=1).mean() < 8
    per_rank = train.sum(axis=0).reshape(synth.EASY_RANKS, synth.EASY_GROUPS).mean(axis=1)
    assert (np.diff(per_rank) > 0).all() and 2 < per_rank[-1] / per_rank[0] < 4


def test_easy_synthetic_tags_survive_single_label_balancing(easy):
    train = tag_matrix(read_synthetic(easy)["train"])

    kept = single_label(train)

    assert (kept.sum(axis=0) > 0).sum() >= 50


def test_easy_synthetic_groups_are_their_band_regions(easy):
    tracks = read_synthetic(easy)["validation"]
    mels = np.stack([load_mel(mel_path(easy.mel_root, t.path)) for t in tracks])
    bands = np.arange(96)
    regions = np.stack([np.abs(bands - c) <= 3 for c in synth.EASY_REGION_CENTRES])
    loudness = np.einsum("tbf,gb->tg", mels, regions) / regions.sum(axis=1)

    scores = loudness[:, np.arange(56) % synth.EASY_GROUPS]

    assert evaluate(tag_matrix(tracks), scores)["ROC-AUC-macro"] > 0.95


def test_an_unknown_synthetic_difficulty_is_refused(tmp_path):
    with pytest.raises(ValueError, match="difficulty must be one of"):
        synth.generate(tmp_path, difficulty="hard")


def test_cli_synth_writes_the_dataset(tmp_path, capsys):
    status = main(["synth", str(tmp_path), "--tracks", "100", "--frames", "32", "--seed", "1"])

    assert status == 0
    assert "split-0" in capsys.readouterr().out
    tracks = read_split(split_file(tmp_path / "split-0", "validation"))
    assert load_mel(mel_path(tmp_path / "melspecs", tracks[0].path)).shape == (96, 32)


def test_cli_synth_writes_the_easy_kind_on_request(tmp_path, easy):
    arguments = ["synth", str(tmp_path), "--tracks", "200", "--frames", "256", "--seed", "3"]

    assert main([*arguments, "--difficulty", "easy"]) == 0

    track = read_synthetic(easy)["test"][0]
    written = load_mel(mel_path(tmp_path / "melspecs", track.path))
    assert np.array_equal(written, load_mel(mel_path(easy.mel_root, track.path)))
    assert read_split(split_file(tmp_path / "split-0", "test"))[0] == track


def test_too_few_synthetic_tracks_are_refused(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "--tracks", "20"]) == 1
    assert "at least 100 tracks" in capsys.readouterr().err


def test_easy_audio_has_the_mel_bands_of_its_group_through_the_apps_frontend():
    waveform = synth.easy_audio(3, seconds=10.0, seed=0)
    mel = MelFrontend()(torch.from_numpy(waveform)[None])[0].numpy()

    assert waveform.dtype == np.float32 and waveform.shape == (120_000,)
    bands = np.arange(96)
    tilt = 2.0 - 50.0 * bands / 95
    region = np.exp(-0.5 * np.maximum(np.abs(bands - synth.EASY_REGION_CENTRES[3]) - 3, 0) ** 2)
    phase = np.arange(mel.shape[1]) % 16  # 8 frames at full height, then 8 at half
    full = mel[:, (phase >= 2) & (phase <= 5)].mean(axis=1) - (tilt + 40 * region)
    half = mel[:, (phase >= 10) & (phase <= 13)].mean(axis=1) - (tilt + 20 * region)
    assert np.abs(full).mean() < 1.0 and np.abs(full).max() < 4.0
    assert np.abs(half).mean() < 1.0 and np.abs(half).max() < 4.0
    assert -25 < mel.mean() < -15 and 15 < mel.std() < 22  # where the dataset's values are


def test_easy_audio_refuses_a_group_that_does_not_exist():
    with pytest.raises(ValueError, match=r"group must be in 0\.\.7"):
        synth.easy_audio(8)
