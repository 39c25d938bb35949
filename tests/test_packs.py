"""Model packs: importing the official baseline, installing it over HTTP, verifying files."""

from __future__ import annotations

import functools
import http.server
import json
import pickle
import threading
from pathlib import Path

import pytest
import torch

from moodlib import tags as vocabulary
from moodlib.packs import PackError, load_pack
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
