"""The app's retrain button and ``moodlib-train finetune --from-catalog`` are one retraining.

One home: real-music excerpts in three album folders, scanned with the starter pack (the active
pack) and reviewed by a user with a consistent taste. Two of the reviewed files changed on disk
since and were rescanned with the MTG-Jamendo baseline only, so the starter pack has not scored
them. On two copies of that home, the button's work (``operations.retrain``, what the window
runs in a worker) and the command line each retrain the active pack: both must score those two
files first, choose the same base, name the pack by the same rule and learn the same head,
weight for weight.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from media import ALBUM_SONGS, copy_albums, review_by_taste
from safetensors.torch import load_file

from moodlib import config
from moodlib.gui import operations
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packs import Pack, load_pack
from moodlib.packstore import PackStore
from moodlib.pipeline import scan
from trainer.cli import main
from trainer.finetune_prepare import new_pack_name

pytestmark = pytest.mark.slow

ALBUMS = 3


@pytest.fixture(scope="module")
def reviewed_home(tmp_path_factory, real_music_library) -> Path:
    """The home described above (read-only: tests copy it)."""
    root = tmp_path_factory.mktemp("retrain_faces")
    music = root / "music"
    copy_albums(real_music_library, music, ALBUMS)
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch, Catalog(home / "catalog.sqlite") as catalog:
        patch.setenv("MOODLIB_HOME", str(home))
        config.save_setting("active_pack", "starter")
        scan([music], catalog, Tagger(PackStore().get("starter"), device="cpu"))
        review_by_taste(catalog, catalog.tracks())
        changed = catalog.tracks()[:2]
        for track in changed:
            os.utime(track.path, ns=(track.mtime_ns + 10**9, track.mtime_ns + 10**9))
        baseline = Tagger(PackStore().get("mtg-baseline"), device="cpu")
        scan([t.path for t in changed], catalog, baseline)
        assert [catalog.embedding(t.id, "starter") for t in changed] == [None, None]
        assert len(catalog.tracks()) == ALBUMS * len(ALBUM_SONGS)
    return home


def names_by_the_rule(started: float) -> set[str]:
    """The names the rule gives a pack made within two minutes of ``started``."""
    return {new_pack_name(PackStore(), started + 60 * minutes) for minutes in range(3)}


def personal_pack(store: PackStore) -> Pack:
    (name,) = [n for n in store.names() if n.startswith("personal-")]
    return load_pack(store.get(name).root)  # every file's sha256 verified


def test_the_button_and_the_cli_make_the_same_personal_pack(
    reviewed_home, tmp_path, monkeypatch, capsys
) -> None:
    button_home = Path(shutil.copytree(reviewed_home, tmp_path / "button"))
    cli_home = Path(shutil.copytree(reviewed_home, tmp_path / "cli"))
    with Catalog(reviewed_home / "catalog.sqlite") as original:
        unscored = sorted(
            original.track(i).path
            for i in original.reviewed_track_ids()
            if original.embedding(i, "starter") is None
        )
    assert len(unscored) == 2

    monkeypatch.setenv("MOODLIB_HOME", str(button_home))
    expected = names_by_the_rule(time.time())
    outcome = operations.retrain(
        config.active_pack_name(), operations.TaggerCache("cpu"), progress=lambda _: None,
        cancel=threading.Event(),
    )  # fmt: skip
    assert outcome.problem is None and outcome.base == "starter"
    button = personal_pack(PackStore())
    assert button.name == outcome.result.pack.name and button.name in expected

    monkeypatch.setenv("MOODLIB_HOME", str(cli_home))
    expected = names_by_the_rule(time.time())
    assert main(["finetune", "--from-catalog", "--device", "cpu"]) == 0
    cli = personal_pack(PackStore())
    assert cli.name in expected
    err = capsys.readouterr().err
    assert f"personal pack {cli.name} (base starter, 2 of them scored with it first)" in err

    # The same tracks were scored first, to the same embeddings.
    assert sorted(outcome.scored) == unscored  # the copies keep the music where it was
    with (
        Catalog(button_home / "catalog.sqlite") as one,
        Catalog(cli_home / "catalog.sqlite") as two,
    ):
        for path in unscored:
            first = one.embedding(one.track_by_path(path).id, "starter")
            second = two.embedding(two.track_by_path(path).id, "starter")
            assert first is not None and np.array_equal(first, second)

    # The same pack: base, tags, head and every file, byte for byte.
    assert button.provenance == cli.provenance
    assert button.provenance["base_pack"] == "starter"
    assert button.head == cli.head and set(button.head.tags) == {"dark", "happy"}
    assert button.covered == cli.covered and button.thresholds == cli.thresholds
    heads = [load_file(str(p.root / p.head.weights)) for p in (button, cli)]
    assert heads[0].keys() == heads[1].keys() == {"weight", "bias"}
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    assert button.files == cli.files  # sha256 of every file: the members' weights too
