"""Write the shipped ``starter`` pack's manifest from its mapping table.

The folder ``moodlib/resources/packs/starter/`` holds the converted musicnn weights
(``packaging/convert_musicnn.py``), their tag lists, licence and notes, and
``mapping.toml`` (musicnn's MSD/MTT tags -> our tags, thresholds, reasons). This script turns
them into ``manifest.json`` with every file's sha256, and checks that the result loads.

    python packaging/build_starter_pack.py
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from moodlib import vocabulary
from moodlib.audio.frontend import MelFrontend
from moodlib.models.musicnn import PATCH_FRAMES, pretrained_tags
from moodlib.packs import (
    MANIFEST,
    Member,
    Segmenting,
    TagSource,
    load_pack,
    manifest_dict,
    sha256_file,
)

PACK = Path(__file__).resolve().parent.parent / "moodlib" / "resources" / "packs" / "starter"
VERSION = "1.0"
PATCH_SEGMENTS = 10


def build(folder: Path = PACK) -> dict:
    mapping = tomllib.loads((folder / "mapping.toml").read_text(encoding="utf-8"))["tags"]
    unknown = [t for t in mapping if t not in vocabulary.TAG_INDEX]
    if unknown:
        raise SystemExit(f"mapping.toml names tags outside the 56: {unknown}")
    covered = [t for t in vocabulary.TAGS if t in mapping]
    members = [
        Member("msd", "musicnn_msd", "MSD_musicnn.safetensors", {}, 1.0,
               pretrained_tags("MSD_musicnn")),
        Member("mtt", "musicnn_mtt", "MTT_musicnn.safetensors", {}, 1.0,
               pretrained_tags("MTT_musicnn")),
    ]  # fmt: skip
    tag_map = {
        tag: tuple(TagSource(s["member"], s["tag"], float(s["weight"])) for s in entry["sources"])
        for tag, entry in mapping.items()
    }
    frontend = MelFrontend(
        sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, window="hann_periodic",
        scale="log10_1p", log_multiplier=10000.0,
    )  # fmt: skip
    files = ["MSD_musicnn.safetensors", "MTT_musicnn.safetensors", "tags.json", "mapping.toml",
             "LICENSE", "README.md"]  # fmt: skip
    return manifest_dict(
        name="starter",
        version=VERSION,
        description=(
            "musicnn's pretrained MSD and MTT taggers (Pons & Serra 2019) mapped onto the "
            f"{len(covered)} mood/theme tags they really discriminate"
        ),
        tags=vocabulary.TAGS,
        covered=covered,
        frontend=frontend.config(),
        # The original extractor averages every consecutive 3-s patch of a track; a library
        # scan averages 10 patches spread evenly over it (30 s of music, as long as the
        # MTG-Jamendo baseline hears), a tenth of the work for a 5-minute track.
        segmenting=Segmenting("uniform", frames=PATCH_FRAMES, count=PATCH_SEGMENTS),
        members=members,
        thresholds={tag: float(entry["threshold"]) for tag, entry in mapping.items()},
        tag_map=tag_map,
        # MTT_musicnn's 200-d penultimate features: the member with the sharper view of tempo,
        # loudness and timbre, which is what personal heads learn from.
        embedding_member="mtt",
        provenance={
            "source": "musicnn 0.1.0 (PyPI wheel), MSD_musicnn and MTT_musicnn checkpoints",
            "paper": "Pons & Serra 2019, musicnn: pre-trained convolutional neural networks "
            "for music audio tagging",
            "licence": "ISC (see LICENSE), Music Technology Group, Universitat Pompeu Fabra",
            "converted_by": "packaging/convert_musicnn.py",
            "mapping": "mapping.toml (reasons per tag), docs/starter-pack.md",
        },
        files={name: sha256_file(folder / name) for name in files},
    )


def main() -> int:
    manifest = build()
    (PACK / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    pack = load_pack(PACK)
    print(
        f"{pack.name} {pack.version}: {len(pack.covered)} tags covered: {', '.join(pack.covered)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
