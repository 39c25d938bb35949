"""Retrain on my corrections, the full path: the starter pack's networks fine-tuned end to end.

The library is the 10-s real-music excerpts (one per format of ``media.FORMATS``), spread
over three album folders (album tags set in the files) so that no album holds only loud or
only quiet tracks, scanned with the starter pack. The simulated user accepts "energetic"
(covered by the starter pack) on the louder half and rejects it on the quieter half, and does
the reverse for "dark" (not covered).

A dozen tracks and two CPU epochs are far too few for the fine-tuned networks to be expected to
beat the base pack on the held-out album, so nothing here asserts that; what is asserted is
that the training loss fell, every member's weights moved, and the pack is a valid one.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import media
import mutagen
import numpy as np
import pytest
from safetensors.torch import load_file

from moodlib import vocabulary
from moodlib.audio.decode import decode
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packs import Head, load_pack
from moodlib.packstore import PackStore
from moodlib.pipeline import scan
from moodlib.progress import Cancelled, Progress
from trainer.finetune import NOT_COVERED
from trainer.finetune_full import finetune_full
from trainer.finetune_prepare import FinetuneError

pytestmark = pytest.mark.slow

ALBUMS = ("Album A", "Album B", "Album C")


def copy_into_album(source: Path, folder: Path, album: str) -> Path:
    """A copy of ``source`` in ``folder`` tagged with ``album``. mutagen's easy interface
    cannot tag WAVE and AIFF files (raw ID3 chunk), so those are copied as FLAC."""
    folder.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in (".wav", ".aiff"):
        target = folder / (source.name.split(".")[0] + ".flac")
        media.tool_output("ffmpeg", "-v", "error", "-i", source, "-c:a", "flac", target)
    else:
        target = Path(shutil.copyfile(source, folder / source.name))
    audio = mutagen.File(target, easy=True)
    audio["album"] = album
    audio["artist"] = media.ARTIST
    audio.save()
    return target


@pytest.fixture(scope="module")
def reviewed(real_music_library, tmp_path_factory):
    """MOODLIB_HOME-like folder with a scanned, reviewed catalog; (root, catalog, store, base)."""
    root = tmp_path_factory.mktemp("finetune_full")
    store = PackStore(root / "packs")
    base = store.get("starter")
    tagger = Tagger(base, device="cpu")
    sources = sorted(real_music_library.values())
    loudness = [
        float(np.sqrt(np.mean(decode(p, sample_rate=tagger.sample_rate) ** 2))) for p in sources
    ]
    rank = {p: r for r, p in enumerate(sorted(sources, key=lambda p: loudness[sources.index(p)]))}
    copies = {}
    for source in sources:
        album = ALBUMS[rank[source] % len(ALBUMS)]  # every album gets loud and quiet tracks
        target = copy_into_album(source, root / "music" / album, album)
        copies[str(target)] = rank[source]
    catalog = Catalog(root / "catalog.sqlite")
    result = scan([root / "music"], catalog, tagger, workers=2)
    assert not result.failed, result.failed
    loud = len(sources) // 2
    for track in catalog.tracks():
        louder = copies[track.path] >= loud
        catalog.set_decision(track.id, "energetic", "accept" if louder else "reject")
        catalog.set_decision(track.id, "dark", "reject" if louder else "accept")
    catalog.add_tag(catalog.tracks()[0].id, "boss fight")
    assert {t.album for t in catalog.tracks()} == set(ALBUMS)
    yield root, catalog, store, base
    catalog.close()


def test_fine_tunes_every_member_and_writes_a_pack_the_tagger_runs(reviewed) -> None:
    _, catalog, store, base = reviewed
    stages = []
    result = finetune_full(
        catalog, base, store, name="full-test", device="cpu", epochs=2,
        progress=lambda update: stages.append((update.text, update.done)),
    )  # fmt: skip
    table = result.table()
    reports = {r.tag: r for r in result.reports}
    energetic, dark = reports["energetic"], reports["dark"]
    assert energetic.trained, table
    assert energetic.held_out_positives >= 1 and energetic.held_out_negatives >= 1, table
    for key in ("base_pr_auc", "personal_pr_auc", "base_roc_auc", "personal_roc_auc"):
        assert getattr(energetic, key) is not None, table
    assert not dark.trained and result.not_trained["dark"] == NOT_COVERED
    assert NOT_COVERED in table and "'boss fight': 1 labels not learned" in table
    assert result.train_tracks + result.held_out_tracks == len(media.FORMATS)
    assert result.train_tracks >= 6
    # No claim that a dozen tracks beat the base pack; the training itself must have worked.
    assert len(result.epoch_losses) == 2
    assert result.train_loss_after < result.train_loss_before, table
    assert any(s.startswith("training, epoch 2/2") for s, _ in stages)
    assert stages[-1] == ("saved", 100)

    pack = load_pack(result.pack.root)  # every file's sha256 verified
    assert pack.provenance["base_pack"] == "starter"
    assert pack.provenance["method"].startswith("full fine-tune")
    assert pack.provenance["epochs"] == 2
    assert pack.provenance["label_counts"]["energetic"] == {
        "positives": energetic.positives, "negatives": energetic.negatives,
    }  # fmt: skip
    assert pack.head is None and pack.covered == base.covered
    for member in base.members:
        tuned = load_file(str(pack.root / pack.member(member.name).weights))
        original = load_file(str(base.root / member.weights))
        assert tuned.keys() == original.keys()
        moved = [k for k in tuned if not np.array_equal(tuned[k].numpy(), original[k].numpy())]
        assert moved, f"{member.name}'s weights did not change"
        assert not any("running_" in k for k in moved), "batch-norm statistics are kept"

    track = catalog.tracks()[0]
    personal = Tagger(pack, device="cpu").predict_waveforms(
        [decode(track.path, sample_rate=16000)]
    )[0]
    plain = catalog.prediction(track.id, base.name)  # what the scan with the base pack said
    covered = [vocabulary.TAG_INDEX[t] for t in base.covered]
    assert not np.isnan(personal.scores[covered]).any()
    assert not np.allclose(personal.scores[covered], plain[covered], atol=1e-4)


def test_cancel_before_the_first_step_writes_nothing(reviewed) -> None:
    _, catalog, store, base = reviewed
    before = store.names()
    cancel = threading.Event()
    stages = []

    def progress(update: Progress) -> None:
        stages.append(update.text)
        if update.text.startswith("training"):
            cancel.set()

    with pytest.raises(Cancelled):
        finetune_full(catalog, base, store, device="cpu", epochs=1, cancel=cancel,
                      progress=progress)  # fmt: skip
    assert "decoding" in stages
    assert store.names() == before


def test_a_personal_pack_with_a_head_is_refused(reviewed) -> None:
    _, catalog, store, base = reviewed
    fast = dataclasses.replace(base, head=Head("personal_head.safetensors", ("calm",)))
    with pytest.raises(FinetuneError, match="head"):
        finetune_full(catalog, fast, store, device="cpu", epochs=1)


def test_the_cli_runs_the_full_path(reviewed, monkeypatch, capsys) -> None:
    root, _, store, _ = reviewed
    monkeypatch.setenv("MOODLIB_HOME", str(root))
    from trainer.cli import main

    argv = ["finetune", "--from-catalog", "--full", "--epochs", "1", "--device", "cpu",
            "--base", "starter", "--name", "full-cli"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split()[:3] == ["tag", "pos", "neg"]
    assert any(line.startswith("energetic ") for line in out.splitlines())
    assert "switch to it with: moodlib models use full-cli" in err
    assert "full-cli" in store.names()
    assert load_pack(store.get("full-cli").root).provenance["epochs"] == 1
