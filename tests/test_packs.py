"""Model packs: importing the official baseline, installing it over HTTP, verifying files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import pickle
import shutil
import threading
from pathlib import Path

import pytest
import torch

from moodlib import vocabulary
from moodlib.packs import PackError, load_pack, write_pack
from moodlib.packstore import MTG_BASELINE_SHA256, PackStore

SHARED = Path(__file__).resolve().parents[2] / "shared"
BASELINE = SHARED / "models" / "mtg-baseline" / "best_model.pth"

needs_baseline = pytest.mark.skipif(
    not BASELINE.is_file(), reason=f"official baseline checkpoint not found at {BASELINE}"
)


@pytest.fixture
def store(tmp_path: Path) -> PackStore:
    return PackStore(tmp_path / "packs", builtin_dir=tmp_path / "no-builtin")


@pytest.fixture
def http_root(tmp_path: Path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (folder, base url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_baseline
def test_imported_baseline_is_a_verified_56_tag_pack(store: PackStore) -> None:
    pack = store.import_checkpoint(BASELINE, name="baseline", architecture="vggish_baseline")
    manifest = json.loads((pack.root / "manifest.json").read_text())
    assert manifest["tags"] == list(vocabulary.TAGS)
    assert manifest["covered"] == list(vocabulary.TAGS)
    assert manifest["segmenting"] == {"mode": "center", "frames": 1366}
    assert manifest["provenance"]["source_sha256"] == MTG_BASELINE_SHA256
    assert set(manifest["thresholds"]) == set(vocabulary.TAGS)
    assert not list(pack.root.glob("*.pth")), "a pack holds safetensors only"
    weights = pack.load_models()["vggish_baseline"].state_dict()
    original = torch.load(BASELINE, map_location="cpu", weights_only=True)
    assert all(torch.equal(weights[k], original[k]) for k in original)


@needs_baseline
def test_a_corrupted_weight_file_is_refused_on_load(store: PackStore) -> None:
    pack = store.import_checkpoint(BASELINE, name="baseline", architecture="vggish_baseline")
    weights = pack.root / pack.members[0].weights
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PackError, match="corrupt"):
        load_pack(pack.root)


@needs_baseline
def test_install_downloads_verifies_and_converts_the_baseline(store, http_root) -> None:
    folder, url = http_root
    (folder / "best_model.pth").write_bytes(BASELINE.read_bytes())
    pack = store.install_mtg_baseline(url=f"{url}/best_model.pth")
    assert pack.name == "mtg-baseline"
    assert pack.provenance["source"] == f"{url}/best_model.pth"
    assert store.names() == ["mtg-baseline"]
    assert [p.name for p in store.user_dir.iterdir()] == ["mtg-baseline"], "no leftovers"
    # Converted as the shipped pack was: same weights, thresholds, licence and notes.
    shipped = PackStore(store.user_dir).get("mtg-baseline")
    assert shipped.builtin and pack.thresholds == shipped.thresholds
    assert {f: pack.files[f] for f in shipped.files} == shipped.files


def test_install_of_the_shipped_baseline_downloads_nothing(tmp_path, http_root) -> None:
    _, url = http_root
    store = PackStore(tmp_path / "packs")
    pack = store.install_mtg_baseline(url=f"{url}/missing.pth")  # would fail if fetched
    assert pack.builtin and pack.name == "mtg-baseline" and len(pack.covered) == 56
    assert not store.user_dir.exists()


@needs_baseline
def test_install_refuses_a_download_with_the_wrong_sha256(store, http_root) -> None:
    folder, url = http_root
    data = bytearray(BASELINE.read_bytes())
    data[1000] ^= 0x01
    (folder / "best_model.pth").write_bytes(bytes(data))
    with pytest.raises(PackError, match="sha256 mismatch"):
        store.install_mtg_baseline(url=f"{url}/best_model.pth")
    assert store.names() == []


def test_install_reports_an_unreachable_address(store, http_root) -> None:
    _, url = http_root
    with pytest.raises(PackError, match="download failed"):
        store.install_mtg_baseline(url=f"{url}/missing.pth")


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_with_code_in_its_pickle_is_never_executed(store, tmp_path, capsys) -> None:
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"conv.weight": _Payload()}))
    with pytest.raises(PackError, match="cannot read checkpoint"):
        store.import_checkpoint(evil, name="evil", architecture="vggish_baseline")
    assert "this must never run" not in capsys.readouterr().out
    assert store.names() == []


@needs_baseline
def test_a_checkpoint_of_another_architecture_is_refused(store) -> None:
    with pytest.raises(PackError, match="does not fit efficientnet_b0"):
        store.import_checkpoint(BASELINE, name="wrong", architecture="efficientnet_b0")
    assert store.names() == []


@needs_baseline
def test_remove_deletes_a_user_pack_but_never_a_shipped_one(tmp_path) -> None:
    shipped = PackStore(tmp_path / "shipped-store", builtin_dir=tmp_path / "builtin")
    shipped.import_checkpoint(BASELINE, name="base", architecture="vggish_baseline")
    store = PackStore(tmp_path / "user", builtin_dir=tmp_path / "shipped-store")
    store.import_checkpoint(BASELINE, name="mine", architecture="vggish_baseline")
    with pytest.raises(PackError, match="shipped packs cannot be removed"):
        store.remove("base")
    store.remove("mine")
    assert store.names() == ["base"]


def test_models_list_shows_a_broken_pack_beside_the_readable_ones(tmp_path, monkeypatch, capsys):
    from moodlib.cli import main

    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    broken = tmp_path / "home" / "packs" / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{ not json")

    assert main(["models", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("* mtg-baseline ") for line in lines)  # shipped, active
    [line] = [line for line in lines if "broken" in line]
    assert line.startswith("! broken") and "unreadable:" in line
    entries = dict(PackStore(tmp_path / "home" / "packs").list())
    assert isinstance(entries["broken"], PackError) and entries["starter"].name == "starter"


# Packs are data: every file they name is inside their folder


def evil_copy_of_the_starter_pack(tmp_path: Path, weights_at: str) -> Path:
    """The shipped pack, with its MSD member's weights named ``weights_at`` in the manifest
    (a copy of the weights is put there, so that only the name is wrong)."""
    pack = Path(shutil.copytree(PackStore().get("starter").root, tmp_path / "evil"))
    original = "MSD_musicnn.safetensors"
    target = Path(weights_at) if Path(weights_at).is_absolute() else pack / weights_at
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pack / original, target)
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["members"][0]["weights"] = weights_at
    manifest["files"] = {
        weights_at if k == original else k: v for k, v in manifest["files"].items()
    }
    (pack / "manifest.json").write_text(json.dumps(manifest))
    return pack


@pytest.mark.parametrize("where", ["absolute", "parent", "subfolder", "backslash"])
def test_a_manifest_naming_a_file_outside_the_pack_is_refused_everywhere(
    tmp_path, where, monkeypatch, capsys
) -> None:
    outside = tmp_path / "outside.safetensors"
    weights_at = {
        "absolute": str(outside),
        "parent": "../outside.safetensors",
        "subfolder": "sub/MSD_musicnn.safetensors",
        "backslash": "..\\outside.safetensors",
    }[where]
    pack = evil_copy_of_the_starter_pack(tmp_path, weights_at)
    refused = "is not a plain file name inside the pack folder"

    with pytest.raises(PackError, match=refused):
        load_pack(pack)
    store = PackStore(tmp_path / "store", builtin_dir=tmp_path / "no-builtin")
    with pytest.raises(PackError, match=refused):
        store.install_folder(pack)
    assert store.names() == []
    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    from moodlib.cli import main

    assert main(["models", "import", str(pack)]) == 1
    assert refused in capsys.readouterr().err


def test_a_file_linked_out_of_the_pack_folder_is_refused(tmp_path) -> None:
    pack = Path(shutil.copytree(PackStore().get("starter").root, tmp_path / "linked"))
    outside = Path(shutil.copyfile(pack / "LICENSE", tmp_path / "LICENSE"))
    (pack / "LICENSE").unlink()
    (pack / "LICENSE").symlink_to(outside)

    with pytest.raises(PackError, match="LICENSE is a link to a file outside the pack folder"):
        load_pack(pack)


def test_verifying_a_manifest_never_reads_a_file_it_names_outside(tmp_path) -> None:
    system_file = tmp_path / "secret"
    system_file.write_text("not for packs\n")
    pack = Path(shutil.copytree(PackStore().get("starter").root, tmp_path / "nosy"))
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["files"][str(system_file)] = "0" * 64
    (pack / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(PackError) as refused:
        load_pack(pack)

    assert "not a plain file name" in str(refused.value)
    assert hashlib.sha256(system_file.read_bytes()).hexdigest() not in str(refused.value)


@pytest.mark.parametrize("where", ["parent", "absolute", "dots"])
def test_writing_a_pack_refuses_file_names_outside_it(tmp_path, where) -> None:
    escaped = tmp_path / "escaped.safetensors"
    name = {"parent": f"../../{escaped.name}", "absolute": str(escaped), "dots": ".."}[where]
    with pytest.raises(PackError, match="not a plain file name"):
        write_pack(tmp_path / "packs" / "new", {}, {name: {"w": torch.zeros(1)}})
    assert not escaped.exists() and not (tmp_path / "packs" / "new").exists()


def test_a_fresh_install_lists_a_shipped_pack_covering_all_56_tags(
    tmp_path, monkeypatch, capsys
) -> None:
    from moodlib.cli import main

    monkeypatch.setenv("MOODLIB_HOME", str(tmp_path / "home"))
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:5] for line in lines] == [
        ["*", "mtg-baseline", "1", "shipped", "56/56"],
        ["starter", "1.0", "shipped", "11/56", "tags"],
    ]
    assert main(["models", "install", "mtg-baseline"]) == 0
    assert "mtg-baseline ships with moodlib (56 tags): nothing to do" in capsys.readouterr().out


@needs_baseline
def test_a_user_copy_named_like_a_shipped_pack_is_reported_not_listed_twice(tmp_path) -> None:
    old = PackStore(tmp_path / "old", builtin_dir=tmp_path / "none")
    old.import_checkpoint(BASELINE, name="mtg-baseline", architecture="vggish_baseline")
    store = PackStore(tmp_path / "old")  # the same folder, now beside the shipped packs
    entries = store.list()
    assert [name for name, _ in entries] == ["mtg-baseline", "starter", "mtg-baseline"]
    assert entries[0][1].builtin
    assert "hidden by the shipped pack" in entries[2][1].reason
    assert store.get("mtg-baseline").builtin
