"""The run life cycle and its parts: recipes, output biases, data, resume, export, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from moodlib.inference import Tagger
from moodlib.packs import Segmenting, load_pack
from trainer.builders import init_output_bias
from trainer.cli import main
from trainer.data.jamendo import mel_path, read_split, split_file
from trainer.ensemble import combine
from trainer.inputs import Split, read_data, unlabeled_tracks
from trainer.recipe import RecipeError, load_recipe, recipe_names
from trainer.strategies import build_strategy

ROOT = Path(__file__).resolve().parents[2]
CHEAP = "cpjku2019_faresnet"
"""The cheapest recipe with every moving part: mixup, warm-up schedule, SWA snapshots."""


# -- networks and data -------------------------------------------------------------------------


def test_output_bias_starts_at_the_prior_log_odds():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 56))

    init_output_bias(model, 0.01)

    assert torch.sigmoid(model[2].bias).tolist() == pytest.approx([0.01] * 56)


# -- recipes and data -----------------------------------------------------------------------------


def test_every_recipe_names_its_paper_row_and_numbers():
    for name in recipe_names():
        recipe = load_recipe(name)

        assert recipe.name == name
        assert recipe.paper.row and recipe.paper.citation
        assert 0.1 < recipe.paper.metrics["PR-AUC-macro"] < 0.2


def test_extends_overrides_the_parent_key_by_key():
    focal = load_recipe("usc2020_shortchunk_focal")
    bce = load_recipe("usc2020_shortchunk_bce")

    assert focal.loss == {"name": "focal", "alpha": 0.25, "gamma": 2.0}
    assert focal.optim == bce.optim and focal.data == bce.data
    assert focal.paper.citation == bce.paper.citation and focal.paper.row != bce.paper.row


def test_short_merges_the_cpu_sized_configuration():
    full, short = load_recipe("cpjku2019_faresnet"), load_recipe("cpjku2019_faresnet", short=True)

    assert (full.train.epochs, short.train.epochs) == (200, 4)
    assert short.model.config == {"rho": 5, "base_channels": 16}
    assert short.augment == full.augment


def test_unknown_recipes_and_bad_values_are_refused(tmp_path):
    with pytest.raises(RecipeError, match="no recipe named"):
        load_recipe("no_such_paper")
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "usc2020_shortchunk_bce"\nname = "bad"\n[loss]\nname = "hinge"\n')
    with pytest.raises(RecipeError, match="loss name"):
        load_recipe(bad)


def test_evaluation_segments_are_cut_as_the_tagger_cuts_them():
    assert Segmenting("uniform", frames=200, count=5).starts(1000) == [
        0,
        200,
        400,
        600,
        800,
    ]
    assert Segmenting("uniform", frames=200, count=5).starts(100) == [0]
    # No more segments than it takes to cover a short track once.
    assert Segmenting("uniform", frames=200, count=5).starts(500) == [0, 150, 300]
    assert Segmenting("center", frames=200).starts(1000) == [400]
    assert Segmenting("patches", frames=300).starts(1000) == [0, 300, 600]


def test_unlabeled_tracks_default_to_unlisted_files_then_to_the_training_tracks(
    synthetic_dataset, unlabeled_dataset, tmp_path
):
    split = read_data(synthetic_dataset, split=0, sources=("melspecs", "hpcp"))

    explicit, _ = unlabeled_tracks(split, unlabeled_dataset)
    fallback, origin = unlabeled_tracks(split, None)

    assert len(explicit) == 100
    assert all(str(hpcp).startswith(str(unlabeled_dataset / "hpcp")) for _, hpcp in explicit)
    assert fallback == split.inputs(split.subsets["train"]) and "training" in origin
    assert isinstance(split, Split)


# -- run life cycle -------------------------------------------------------------------------


def run_cheap(data, out, *extra):
    arguments = ["run", CHEAP, "--data", str(data), "--out", str(out), "--short", "--epochs", "3"]
    return main([*arguments, "--workers", "0", "--no-progress", *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic_dataset):
    run = tmp_path_factory.mktemp("finished") / CHEAP
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_cheap(synthetic_dataset, run) == 0
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    finished_run, synthetic_dataset, tmp_path
):
    interrupted = tmp_path / "interrupted"

    assert run_cheap(synthetic_dataset, interrupted, "--stop-after", "2") == 0
    assert not (interrupted / "result.json").exists()
    assert run_cheap(synthetic_dataset, interrupted, "--resume") == 0

    for member in ("model", "model-swa-1"):
        resumed = load_file(str(interrupted / "members" / f"{member}.safetensors"))
        straight = load_file(str(finished_run / "members" / f"{member}.safetensors"))
        assert resumed.keys() == straight.keys()
        for key, tensor in straight.items():
            assert torch.equal(resumed[key], tensor), key


@pytest.mark.slow
def test_a_run_folder_is_not_overwritten_without_resume(finished_run, synthetic_dataset, capsys):
    assert run_cheap(synthetic_dataset, finished_run) == 1

    assert "already there" in capsys.readouterr().err


@pytest.mark.slow
def test_an_exported_pack_loads_and_tags_mels(finished_run, synthetic_dataset, tmp_path, capsys):
    store = tmp_path / "packs"

    assert (
        main(["export", str(finished_run), "--name", "faresnet-test", "--store", str(store)]) == 0
    )

    pack = load_pack(store / "faresnet-test")
    result = json.loads((finished_run / "result.json").read_text())
    assert [m.name for m in pack.members] == list(result["ensemble"])
    assert pack.covered == pack.tags and len(pack.thresholds) == 56
    assert pack.segmenting == Segmenting("uniform", frames=128, count=3)
    assert pack.provenance["runs"][0]["paper"]["row"].startswith("Table 1, FAResNet")
    assert pack.provenance["metrics"]["test"]["PR-AUC-macro"] == pytest.approx(
        result["metrics"]["test"]["PR-AUC-macro"]
    )
    tracks = read_split(split_file(synthetic_dataset / "split-0", "validation"))[:5]
    mels = [
        torch.from_numpy(np.load(mel_path(synthetic_dataset / "melspecs", t.path))) for t in tracks
    ]
    predictions = Tagger(pack, device="cpu").predict_mels(mels)
    scores = np.stack([prediction.scores for prediction in predictions])
    assert scores.shape == (5, 56) and np.isfinite(scores).all()
    # The app scores a track exactly as the run scored it on validation.
    folder = finished_run / "predictions" / "validation"
    members = [np.load(folder / f"{name}.npy")[:5] for name in result["ensemble"]]
    assert scores == pytest.approx(combine(members, list(result["ensemble"].values())), abs=1e-5)


@pytest.mark.slow
def test_exporting_two_runs_fits_weights_over_all_their_members(finished_run, tmp_path):
    store = tmp_path / "packs"

    status = main(
        ["export", str(finished_run), str(finished_run), "--name", "twice", "--store", str(store)]
    )

    assert status == 0
    pack = load_pack(store / "twice")
    assert len(pack.members) == 4  # model and model-swa-1 of each run
    assert sum(m.weight for m in pack.members) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_reproduce_prints_our_numbers_beside_the_papers(finished_run, synthetic_dataset, capsys):
    status = main(
        [
            *("reproduce", "--data", str(synthetic_dataset), "--recipes", CHEAP, "--short"),
            *("--out", str(finished_run.parent), "--no-progress", "--workers", "0"),
        ]
    )

    assert status == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split("\t")[:4] == ["recipe", "paper row", "PR-AUC paper", "PR-AUC ours"]
    cells = row.split("\t")
    assert cells[0] == CHEAP and cells[2] == "0.1463"
    result = json.loads((finished_run / "result.json").read_text())
    assert cells[3] == f"{result['metrics']['test']['PR-AUC-macro']:.4f}"


@pytest.mark.slow
def test_torchrun_trains_with_two_processes_and_rank_0_writes(synthetic_dataset, tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    command += ["-m", "trainer.cli", "run", CHEAP, "--data", str(synthetic_dataset)]
    command += ["--out", str(run), "--short", "--epochs", "3", "--workers", "0", "--no-progress"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    finished = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    checkpoint = torch.load(run / "train" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epochs_done"] == 3 and checkpoint["finished"]
    assert len(checkpoint["rng"]) == 2
    log = (run / "log.csv").read_text().splitlines()
    # Three epochs and the SWA snapshot after the third, each logged once (by rank 0).
    assert len([line for line in log if line.startswith("train,")]) == 3 + 1
    assert json.loads((run / "result.json").read_text())["ensemble"]


def test_hpcp_command_writes_frame_aligned_pitch_classes(tmp_path, capsys):
    from trainer.data.jamendo import Track, split_file, write_split

    data, audio = tmp_path / "data", tmp_path / "audio"
    (data / "split-0").mkdir(parents=True)
    track = Track("track_0000001", "a", "b", "01/1.wav", 2.0, ("happy",))
    for subset in ("train", "validation", "test"):
        write_split(split_file(data / "split-0", subset), [track] if subset == "train" else [])
    (audio / "01").mkdir(parents=True)
    seconds = np.arange(24000) / 12000
    sf.write(audio / "01" / "1.wav", 0.5 * np.sin(2 * np.pi * 440.0 * seconds), 12000)

    assert main(["hpcp", "--data", str(data), "--audio", str(audio), "--no-progress"]) == 0

    profile = np.load(data / "hpcp" / "01" / "1.npy")
    assert profile.shape == (12, 24000 // 256 + 1)
    # Bin 0 is the pitch class of A (440 Hz), as in essentia.
    assert (profile[:, 5:-5].argmax(axis=0) == 0).all()
    assert "written: 1" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", recipe_names())
def test_each_full_recipe_network_reads_its_crops_and_segments(name):
    from moodlib.audio.frontend import build_frontend
    from moodlib.models import build_model

    recipe = load_recipe(name)
    rows = build_frontend(recipe.frontend)(torch.zeros(1, 12000)).shape[1]
    for spec in build_strategy(recipe.strategy).networks(recipe):
        model = build_model(spec.architecture, **spec.config).eval()
        with torch.no_grad():
            for frames in {recipe.data.crop_frames, recipe.data.segmenting.frames}:
                assert model(torch.randn(1, rows, frames) - 30).shape == (1, 56)


@pytest.mark.slow
def test_the_training_throughput_benchmark_times_the_selab_step(tmp_path):
    result = tmp_path / "throughput.json"
    arguments = ["--device", "cpu", "--steps", "2", "--warmup", "1", "--batch-size", "4"]
    arguments += ["--crop", "128", "--tracks", "100", "--workers", "0", "--json", str(result)]

    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), *arguments],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )

    measured = json.loads(result.read_text())
    assert measured["recipe"] == "selab2021_coteaching"
    assert measured["networks"] == ["efficientnet_b0", "rexnet_100"]
    assert measured["crop"] == [96, 128] and measured["batch_size"] == 4
    assert not measured["bf16_autocast"] and not measured["channels_last"]  # CPU: plain fp32
    assert measured["loader_samples_per_s"] > 0 and measured["step_samples_per_s"] > 0
