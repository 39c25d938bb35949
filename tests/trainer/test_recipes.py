"""Every shipped recipe, in its CPU-sized ``--short`` form, trains end to end on synthetic data.

Each run goes through the whole trainer: the recipe's data pipeline, augmentations, loss,
optimiser phases and schedule, strategy, validation every epoch, checkpoints, weight
averaging, and the final scoring that fits ensemble weights and thresholds. The bar for the
result is the tag prior: the run's validation PR-AUC-macro must be well above that of scoring
every track with the training frequency of each tag. (On 26 validation tracks that bar is low:
with one or two positives per tag, any ranking that is not constant lifts PR-AUC; the tests of
each method, not these runs, check that the methods are right.)
"""

import csv
import json

import numpy as np
import pytest

from moodlib.inference import Tagger
from moodlib.packs import load_pack
from trainer.cli import main
from trainer.recipe import load_recipe, recipe_names

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_dataset, unlabeled_dataset):
    """``trained(name) -> (run folder, result)``, each recipe trained once per module."""
    folder = tmp_path_factory.mktemp("runs")
    runs = {}

    def train(name):
        if name not in runs:
            run = folder / name
            arguments = ["run", name, "--data", str(synthetic_dataset), "--out", str(run)]
            arguments += ["--short", "--workers", "0", "--no-progress"]
            if load_recipe(name).strategy.name == "noisy_student":
                arguments += ["--unlabeled", str(unlabeled_dataset)]
            assert main(arguments) == 0
            runs[name] = run, json.loads((run / "result.json").read_text())
        return runs[name]

    return train


def log_rows(run):
    with (run / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", recipe_names())
def test_recipe_trains_and_beats_the_tag_prior(name, trained, validation_prior):
    recipe = load_recipe(name, short=True)

    run, result = trained(name)

    assert result["metrics"]["validation"]["PR-AUC-macro"] > 1.5 * validation_prior
    assert result["recipe"] == name
    assert result["paper"]["metrics"] == recipe.paper.metrics
    assert sum(result["ensemble"].values()) == pytest.approx(1.0)
    assert len(result["thresholds"]) == 56
    for member in result["ensemble"]:
        assert (run / "members" / f"{member}.safetensors").is_file()
        assert (run / "predictions" / "test" / f"{member}.npy").is_file()
    epochs = {int(row["epoch"]) for row in log_rows(run)}
    assert max(epochs) <= recipe.train.epochs


def test_the_baseline_reports_the_test_metrics_with_decisions(trained):
    _, result = trained("mediaeval_baseline")

    test = result["metrics"]["test"]
    assert 0 <= test["F-score-macro"] <= 1
    assert set(test) >= {"ROC-AUC-macro", "PR-AUC-macro", "PR-AUC-micro", "PR-AUC-tail"}


def test_cpjku_exports_the_best_network_and_the_last_swa_snapshots(trained):
    run, result = trained("cpjku2019_faresnet")

    # [short] swa: a snapshot after epochs 3 and 4 of 4; the paper averages best + last 4.
    assert result["ensemble"] == pytest.approx(
        {"model": 1 / 3, "model-swa-1": 1 / 3, "model-swa-2": 1 / 3}
    )
    assert [row["epoch"] for row in log_rows(run) if row["network"] == "model-swa"] == ["3", "4"]


def test_usc_switches_from_adam_to_sgd_at_the_phase_boundary(trained):
    run, _ = trained("usc2020_shortchunk_focal")

    phases = [(row["epoch"], row["phase"], float(row["lr"])) for row in log_rows(run)]

    assert phases == [("1", "0", 3e-3), ("2", "0", 3e-3), ("3", "1", 1e-2)]


def test_coteaching_trains_both_networks_and_weighs_them_on_validation(trained):
    run, result = trained("selab2021_coteaching")

    assert set(result["ensemble"]) == {"efficientnet_b0", "rexnet_100"}
    networks = [row["network"] for row in log_rows(run)]
    assert networks.count("efficientnet_b0") == networks.count("rexnet_100") == 2


def test_noisy_student_labels_the_unlabeled_tracks_and_exports_the_student(trained):
    run, result = trained("mirable2021_long_hpcp_noisy")

    pseudo = np.load(run / "pseudo_labels.npz")
    assert pseudo["targets"].shape == pseudo["masks"].shape == (100, 56)
    assert (pseudo["targets"] <= pseudo["masks"]).all()
    assert {member["name"] for member in result["members"]} == {"teacher", "student"}
    assert result["ensemble"] == {"student": 1.0}
    assert {row["stage"] for row in log_rows(run)} == {"teacher", "student"}


def test_an_hpcp_pack_tags_a_waveform_through_the_apps_frontend(trained, tmp_path):
    run, result = trained("mirable2021_long_hpcp_noisy")
    store = tmp_path / "packs"

    assert main(["export", str(run), "--name", "mirable-test", "--store", str(store)]) == 0

    pack = load_pack(store / "mirable-test")
    assert "hpcp" in pack.frontend
    tagger = Tagger(pack, device="cpu")
    seconds = np.arange(4 * tagger.sample_rate) / tagger.sample_rate
    chord = sum(np.sin(2 * np.pi * f * seconds) for f in (220.0, 277.2, 329.6)) / 4
    [prediction] = tagger.predict_waveforms([chord.astype(np.float32)])
    assert prediction.scores.shape == (56,) and np.isfinite(prediction.scores).all()
    assert pack.provenance["runs"][0]["paper"]["row"] == result["paper"]["row"]
