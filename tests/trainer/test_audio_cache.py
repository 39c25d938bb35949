"""Training from audio: the recipe's inputs computed through the app's frontend and cached.

The dataset is ``moodlib-train synth --audio``: 100 WAV files of shaped noise in the official
layout, each sounding like its tags' groups (``synth.easy_audio``), one of them corrupt.
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from moodlib.audio.decode import decode
from moodlib.audio.frontend import MelFrontend
from moodlib.audio.hpcp import HPCP
from moodlib.inference import Tagger
from moodlib.packs import load_pack
from moodlib.vocabulary import TAGS
from trainer.cli import main
from trainer.data import audio_cache, synth
from trainer.data.jamendo import mel_path, read_split, split_file
from trainer.ensemble import combine

FRAMES = 400  # 8.5 s


@pytest.fixture(scope="module")
def audio_dataset(tmp_path_factory):
    """Read-only: copy before changing a file."""
    root = tmp_path_factory.mktemp("audio-dataset")
    dataset = synth.generate(root, tracks=100, frames=FRAMES, seed=5, difficulty="easy", audio=True)
    [corrupt, *_] = read_split(split_file(dataset.split_dir, "train"))
    (dataset.audio_root / corrupt.path).write_bytes(b"RIFF, but not a wave file at all")
    return dataset, corrupt.path


def test_synth_audio_writes_the_official_layout_with_wav_files(audio_dataset):
    dataset, _ = audio_dataset

    tracks = read_split(split_file(dataset.split_dir, "validation"))
    assert all(t.path.endswith(".wav") for t in tracks)
    assert not dataset.mel_root.exists()
    waveform = decode(dataset.audio_root / tracks[0].path, sample_rate=synth.SAMPLE_RATE)
    assert waveform.shape == (FRAMES * synth.HOP_LENGTH,)
    assert tracks[0].duration == pytest.approx(FRAMES * synth.HOP_LENGTH / synth.SAMPLE_RATE, 0.01)


def test_synth_audio_sounds_like_the_tracks_groups(audio_dataset):
    dataset, _ = audio_dataset
    frontend = MelFrontend()
    tracks = read_split(split_file(dataset.split_dir, "test"))

    for track in tracks[:10]:
        waveform = decode(dataset.audio_root / track.path, sample_rate=synth.SAMPLE_RATE)
        mel = frontend(torch.from_numpy(waveform)[None])[0].numpy()
        centres = synth.EASY_REGION_CENTRES
        loudness = np.array([mel[c - 3 : c + 4].mean() for c in centres])
        groups = {TAGS.index(tag) % synth.EASY_GROUPS for tag in track.tags}
        quiet = [g for g in range(synth.EASY_GROUPS) if g not in groups]
        # a group's region is 30 dB (its mean over the pulse) above the others' after the tilt
        tilt = 2.0 - 50.0 * centres / 95
        assert (loudness - tilt)[sorted(groups)].min() > (loudness - tilt)[quiet].max() + 20


def test_synth_audio_is_the_easy_kind_only(tmp_path):
    with pytest.raises(ValueError, match="easy kind only"):
        synth.generate(tmp_path, audio=True, difficulty="realistic")


def test_cached_inputs_are_the_frontends_on_the_decoded_audio(audio_dataset, tmp_path):
    dataset, _ = audio_dataset
    paths = [t.path for t in read_split(split_file(dataset.split_dir, "validation"))[:3]]
    modules = audio_cache.source_modules({"hpcp": {}}, ["melspecs", "hpcp"])

    folders, report = audio_cache.cache_inputs(
        tmp_path, dataset.audio_root, paths, modules, show_progress=False
    )

    assert (report.computed, report.reused, report.failed) == (3, 0, [])
    assert [f.split("-")[0] for f in folders] == ["melspecs", "hpcp"]
    assert json.loads((tmp_path / folders[1] / "config.json").read_text()) == HPCP().config()
    waveform = decode(dataset.audio_root / paths[1], sample_rate=12_000)
    with torch.inference_mode():
        mel = MelFrontend()(torch.from_numpy(waveform)[None])[0].numpy()
        hpcp = HPCP()(torch.from_numpy(waveform)[None])[0].numpy()
    assert np.array_equal(np.load(mel_path(tmp_path / folders[0], paths[1])), mel)
    assert np.array_equal(np.load(mel_path(tmp_path / folders[1], paths[1])), hpcp)
    assert mel.shape == (96, FRAMES + 1) and hpcp.shape == (12, FRAMES + 1)


def test_the_cache_is_reused_until_the_audio_changes(audio_dataset, tmp_path):
    dataset, _ = audio_dataset
    audio = tmp_path / "audio"
    shutil.copytree(dataset.audio_root, audio)
    paths = [t.path for t in read_split(split_file(dataset.split_dir, "test"))[:3]]
    modules = audio_cache.source_modules({}, ["melspecs"])
    cache = tmp_path / "cache"
    [folder], _ = audio_cache.cache_inputs(cache, audio, paths, modules, show_progress=False)
    # Times set, not waited for: each cached input as old as its audio, then one file newer.
    written = 1_700_000_000 * 10**9
    for path in paths:
        for file in (audio / path, mel_path(cache / folder, path)):
            os.utime(file, ns=(written, written))

    _, again = audio_cache.cache_inputs(cache, audio, paths, modules, show_progress=False)
    os.utime(audio / paths[0], ns=(written + 10**9, written + 10**9))
    _, changed = audio_cache.cache_inputs(cache, audio, paths, modules, show_progress=False)

    assert (again.computed, again.reused) == (0, 3)
    assert (changed.computed, changed.reused) == (1, 2)


def test_another_frontend_configuration_gets_its_own_folder():
    default = audio_cache.source_modules({}, ["melspecs"])["melspecs"]
    other = audio_cache.source_modules({"f_max": 5000.0}, ["melspecs"])["melspecs"]

    assert audio_cache.cache_folder("melspecs", default) != audio_cache.cache_folder(
        "melspecs", other
    )
    assert audio_cache.cache_folder("melspecs", default) == audio_cache.cache_folder(
        "melspecs", MelFrontend()
    )


def test_unreadable_audio_is_reported_and_the_others_go_on(audio_dataset, tmp_path):
    dataset, corrupt = audio_dataset
    paths = [corrupt, "99/missing.wav", read_split(split_file(dataset.split_dir, "test"))[0].path]
    modules = audio_cache.source_modules({}, ["melspecs"])

    folders, report = audio_cache.cache_inputs(
        tmp_path, dataset.audio_root, paths, modules, show_progress=False
    )

    assert report.computed == 1 and len(report.failed) == 2
    assert corrupt in report.failed[0] and "missing.wav" in report.failed[1]
    assert not mel_path(tmp_path / folders[0], corrupt).exists()


def test_a_source_the_frontend_cannot_make_is_refused():
    with pytest.raises(audio_cache.AudioCacheError, match="cannot compute"):
        audio_cache.source_modules({}, ["melspecs", "chords"])


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_recipe_trains_on_audio_and_its_pack_scores_audio_as_the_run_did(
    audio_dataset, tmp_path, caplog
):
    dataset, corrupt = audio_dataset
    data = tmp_path / "data"
    shutil.copytree(dataset.split_dir, data / "split-0")
    run = tmp_path / "run"
    arguments = ["run", "cpjku2019_faresnet", "--data", str(data), "--out", str(run), "--short"]
    arguments += ["--audio", str(dataset.audio_root), "--workers", "0", "--no-progress"]

    assert main(arguments) == 0

    assert f"left out: {dataset.audio_root / corrupt}" in caplog.text
    result = json.loads((run / "result.json").read_text())
    [source] = result["inputs"]
    assert source.startswith("melspecs-") and (data / "audio-cache" / source).is_dir()
    validation = result["metrics"]["validation"]
    assert validation["ROC-AUC-macro"] >= 0.75  # it learns from audio as from mels
    # the exported pack tags audio exactly as the run scored it
    assert main(["export", str(run), "--name", "from-audio", "--store", str(tmp_path)]) == 0
    tagger = Tagger(load_pack(tmp_path / "from-audio"), device="cpu")
    tracks = read_split(split_file(data / "split-0", "validation"))[:4]
    waveforms = [decode(dataset.audio_root / t.path, sample_rate=12_000) for t in tracks]
    scores = np.stack([p.scores for p in tagger.predict_waveforms(waveforms)])
    folder = run / "predictions" / "validation"
    members = [np.load(folder / f"{name}.npy")[:4] for name in result["ensemble"]]
    expected = combine(members, list(result["ensemble"].values()))
    assert scores == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_the_noisy_student_reads_mels_hpcps_and_unlabeled_tracks_from_audio(
    audio_dataset, tmp_path
):
    dataset, _ = audio_dataset
    data = tmp_path / "data"
    shutil.copytree(dataset.split_dir, data / "split-0")
    unlabeled = tmp_path / "unlabeled"
    for track in read_split(split_file(dataset.split_dir, "test"))[:10]:
        destination = unlabeled / "album" / f"{track.track_id}.wav"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(dataset.audio_root / track.path, destination)
    (unlabeled / "cover.jpg").write_bytes(b"not audio, not listed")
    run = tmp_path / "run"
    arguments = ["run", "mirable2021_long_hpcp_noisy", "--data", str(data), "--out", str(run)]
    arguments += ["--audio", str(dataset.audio_root), "--unlabeled", str(unlabeled)]

    assert main([*arguments, "--short", "--epochs", "1", "--workers", "0", "--no-progress"]) == 0

    result = json.loads((run / "result.json").read_text())
    assert [source.split("-")[0] for source in result["inputs"]] == ["melspecs", "hpcp"]
    pseudo = np.load(run / "pseudo_labels.npz")
    assert pseudo["targets"].shape == (10, 56)
    for source in result["inputs"]:
        cached = sorted((data / "audio-cache" / "unlabeled" / source / "album").glob("*.npy"))
        assert len(cached) == 10


def test_cli_synth_audio_writes_wav_files(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "--tracks", "100", "--frames", "32", "--audio"]) == 0

    assert f"audio: {tmp_path / 'audio'}" in capsys.readouterr().out
    [track, *_] = read_split(split_file(tmp_path / "split-0", "train"))
    assert decode(tmp_path / "audio" / track.path, sample_rate=12_000).shape == (32 * 256,)
