"""The shipped ``mtg-baseline`` pack: the official checkpoint at the official thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from moodlib import vocabulary
from moodlib.packs import sha256_file
from moodlib.packstore import BUILTIN_PACKS, MTG_BASELINE_SHA256, PackStore
from trainer.data.jamendo import read_thresholds

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BASELINE = SHARED / "models" / "mtg-baseline" / "best_model.pth"
THRESHOLDS = SHARED / "data" / "mtg-jamendo" / "results" / "baseline_vggish_thresholds.txt"
APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
SHIPPED = BUILTIN_PACKS / "mtg-baseline"

needs_shared = pytest.mark.skipif(
    not (BASELINE.is_file() and THRESHOLDS.is_file()),
    reason=f"the official baseline and its results are not in {SHARED}",
)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return PackStore(tmp_path_factory.mktemp("packs")).get("mtg-baseline")


def test_the_shipped_baseline_is_the_default_and_covers_every_tag(shipped) -> None:
    from moodlib import config

    assert shipped.name == config.DEFAULT_PACK and shipped.builtin
    assert shipped.covered == vocabulary.TAGS
    assert shipped.segmenting.mode == "center" and shipped.segmenting.frames == 1366
    assert shipped.provenance["source_sha256"] == MTG_BASELINE_SHA256
    assert sorted(p.name for p in SHIPPED.iterdir()) == [
        "LICENSE", "README.md", "manifest.json", "weights.safetensors",
    ], "safetensors, licence and notes only: never the .pth"  # fmt: skip
    assert all(p.stat().st_size < 2_000_000 for p in SHIPPED.iterdir())


def test_the_licence_and_the_attribution_ship_beside_the_weights() -> None:
    licence = (SHIPPED / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    readme = (SHIPPED / "README.md").read_text()
    for author in ("Bogdanov", "Won", "Tovstogan", "Porter", "Serra"):
        assert author in readme
    assert MTG_BASELINE_SHA256 in readme


@needs_shared
def test_the_shipped_weights_and_thresholds_are_the_official_ones(shipped) -> None:
    weights = shipped.load_models()["vggish_baseline"].state_dict()
    original = torch.load(BASELINE, map_location="cpu", weights_only=True)
    assert weights.keys() == original.keys()
    assert all(torch.equal(weights[k], original[k]) for k in original)
    official = read_thresholds(THRESHOLDS)
    assert [shipped.thresholds[t] for t in vocabulary.TAGS] == official.tolist()


@needs_shared
@pytest.mark.skipif(not APACHE_TEXT.is_file(), reason=f"no Apache 2.0 text at {APACHE_TEXT}")
def test_the_conversion_script_makes_the_shipped_pack_again(tmp_path) -> None:
    out = tmp_path / "mtg-baseline"
    subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "convert_mtg_baseline.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    made = json.loads((out / "manifest.json").read_text())
    assert made["files"] == {name: sha256_file(SHIPPED / name) for name in made["files"]}
    ours = json.loads((SHIPPED / "manifest.json").read_text())
    assert {k: v for k, v in made.items() if k != "provenance"} == {
        k: v for k, v in ours.items() if k != "provenance"
    }
