"""Model packs: the one format the app loads, the trainer exports and the fine-tuner writes.

A pack is a folder holding ``manifest.json`` and one ``.safetensors`` file per member::

    {
      "format": 1,
      "name": "mtg-baseline", "version": "1.0", "description": "...",
      "tags": ["action", ...],              # the pack's output vocabulary (our 56 tags)
      "covered": ["action", ...],           # tags the pack really predicts
      "frontend": {...},                    # MelFrontend(**frontend)
      "segmenting": {"mode": "center", "frames": 1366},
      "members": [{"name": "vggish", "architecture": "vggish_baseline", "config": {...},
                   "weights": "vggish.safetensors", "weight": 1.0,
                   "output_tags": null}],   # null: the member predicts "tags" directly
      "tag_map": null,                      # or {tag: [{"member", "tag", "weight"}, ...]}
      "thresholds": {"action": 0.09, ...},
      "embedding_member": "vggish",         # whose pooled features the catalog stores
      "head": null,                         # or a personal head, see below
      "provenance": {...},
      "files": {"vggish.safetensors": "<sha256>"}
    }

Every file named in ``files`` is verified against its sha256 when the pack is loaded. File
names (``files``, members' and the head's ``weights``) must be plain names of files inside the
pack folder: a manifest naming an absolute path, ``..`` or a subfolder is refused when a pack
is loaded, imported, installed or written (``PackError``).

A personal pack (made by the fine-tuner from a user's review decisions) adds a ``head``:
``{"weights": "personal_head.safetensors", "tags": [...]}``, a linear layer on the embedding
member's pooled embedding whose output is added to the logit of the pack's score for each
listed tag (the score itself for tags the base pack does not cover).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from moodlib import vocabulary
from moodlib.download import sha256_file
from moodlib.models import build_model

PACK_FORMAT = 1
MANIFEST = "manifest.json"
SEGMENT_MODES = ("center", "patches", "uniform")


class PackError(Exception):
    """A pack that cannot be found, read, verified or built; names the pack and the reason."""

    def __init__(self, where: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = reason


@dataclass(frozen=True)
class Segmenting:
    """How a track's mel spectrogram is cut into model inputs.

    ``center``: one segment of ``frames`` frames around the middle of the track (the
    MTG-Jamendo baseline's 29.1 s). ``patches``: consecutive segments every ``hop_frames``
    (musicnn's 3 s patches). ``uniform``: ``count`` evenly spaced segments, fewer when fewer
    cover the track (the seeds' segment-averaged evaluation). Segment scores are averaged.
    """

    mode: str
    frames: int
    hop_frames: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in SEGMENT_MODES:
            raise ValueError(f"segmenting mode must be one of {SEGMENT_MODES}, not {self.mode!r}")
        if self.frames <= 0:
            raise ValueError("segment frames must be positive")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def starts(self, total_frames: int) -> list[int]:
        """First frames of the segments of a track of ``total_frames`` frames, ascending.

        ``center``: one, in the middle; ``patches``: every ``hop_frames`` (default: back to
        back) while a whole segment fits; ``uniform``: ``count`` evenly spaced from the first
        frame to the last whole segment, but no more than it takes to cover the track once
        (duplicates dropped). A track shorter than a segment gets one segment at 0: the caller
        repeats it to ``frames`` (``moodlib.audio.tiling``: the app's ``Tagger``, the trainer).

        >>> Segmenting("uniform", frames=200, count=5).starts(500)
        [0, 150, 300]
        """
        total = max(int(total_frames), self.frames)
        last = total - self.frames
        if self.mode == "center":
            return [last // 2]
        if self.mode == "patches":
            return list(range(0, last + 1, self.hop_frames or self.frames))
        count = min(self.count or 1, -(-total // self.frames))
        return sorted(set(np.linspace(0, last, count).round().astype(int).tolist()))


@dataclass(frozen=True)
class Member:
    """One network of the ensemble."""

    name: str
    architecture: str
    weights: str
    config: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    output_tags: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "config": self.config,
            "weights": self.weights,
            "weight": self.weight,
            "output_tags": list(self.output_tags) if self.output_tags is not None else None,
        }


@dataclass(frozen=True)
class TagSource:
    member: str
    tag: str
    weight: float = 1.0


@dataclass(frozen=True)
class Head:
    """A linear correction on the pooled embedding for ``tags`` (weights: ``weight``, ``bias``)."""

    weights: str
    tags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "tags": list(self.tags)}


@dataclass
class Pack:
    """A loaded, verified model pack (weights are read lazily by ``load_models``)."""

    root: Path
    name: str
    version: str
    description: str
    tags: tuple[str, ...]
    covered: tuple[str, ...]
    frontend: dict[str, Any]
    segmenting: Segmenting
    members: tuple[Member, ...]
    thresholds: dict[str, float]
    tag_map: dict[str, tuple[TagSource, ...]] | None = None
    embedding_member: str | None = None
    head: Head | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    builtin: bool = False

    @property
    def personal_base(self) -> str | None:
        """The pack a personal pack (one with a head) was learned on; None for other packs."""
        base = self.provenance.get("base_pack")
        return str(base) if self.head is not None and base else None

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise PackError(self.name, f"no member named {name!r}")

    def load_models(self, device: torch.device | str = "cpu") -> dict[str, torch.nn.Module]:
        """Build every member, load its verified weights, return them in eval mode."""
        models = {}
        for member in self.members:
            model = build_model(member.architecture, **member.config)
            state = load_file(str(self.root / member.weights), device="cpu")
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as error:
                raise PackError(self.name, f"member {member.name}: {error}") from error
            models[member.name] = model.to(device).eval()
        return models

    def manifest(self) -> dict[str, Any]:
        return manifest_dict(
            name=self.name,
            version=self.version,
            description=self.description,
            tags=self.tags,
            covered=self.covered,
            frontend=self.frontend,
            segmenting=self.segmenting,
            members=self.members,
            thresholds=self.thresholds,
            tag_map=self.tag_map,
            embedding_member=self.embedding_member,
            head=self.head,
            provenance=self.provenance,
            files=self.files,
        )

    def load_head(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor] | None:
        """The personal head's ``weight`` (tags x embedding) and ``bias``, or None."""
        if self.head is None:
            return None
        state = load_file(str(self.root / self.head.weights), device="cpu")
        return {k: v.to(device) for k, v in state.items()}


def manifest_dict(
    *,
    name: str,
    version: str,
    description: str,
    tags: Iterable[str],
    covered: Iterable[str],
    frontend: Mapping[str, Any],
    segmenting: Segmenting,
    members: Iterable[Member],
    thresholds: Mapping[str, float],
    tag_map: Mapping[str, Iterable[TagSource]] | None = None,
    embedding_member: str | None = None,
    head: Head | None = None,
    provenance: Mapping[str, Any] | None = None,
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON form of a manifest, in a stable key order."""
    return {
        "format": PACK_FORMAT,
        "name": name,
        "version": version,
        "description": description,
        "tags": list(tags),
        "covered": list(covered),
        "frontend": dict(frontend),
        "segmenting": segmenting.to_dict(),
        "members": [m.to_dict() for m in members],
        "tag_map": (
            {
                tag: [{"member": s.member, "tag": s.tag, "weight": s.weight} for s in sources]
                for tag, sources in tag_map.items()
            }
            if tag_map is not None
            else None
        ),
        "thresholds": {tag: float(value) for tag, value in thresholds.items()},
        "embedding_member": embedding_member,
        "head": head.to_dict() if head is not None else None,
        "provenance": dict(provenance or {}),
        "files": dict(files or {}),
    }


def load_pack(root: str | os.PathLike, *, verify: bool = True, builtin: bool = False) -> Pack:
    """Read ``root/manifest.json``, check it, and verify every listed file's sha256."""
    root = Path(root)
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackError(root, f"no {MANIFEST} (not a model pack)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise PackError(root, f"unreadable {MANIFEST}: {error}") from error
    try:
        pack = _pack_from_manifest(root, data, builtin=builtin)
    except (KeyError, TypeError, ValueError) as error:
        raise PackError(root, f"invalid manifest: {error!r}") from error
    if verify:
        verify_pack(pack)
    return pack


def _pack_from_manifest(root: Path, data: dict[str, Any], *, builtin: bool) -> Pack:
    if data.get("format") != PACK_FORMAT:
        raise ValueError(f"unsupported pack format {data.get('format')!r}")
    members = tuple(
        Member(
            name=m["name"],
            architecture=m["architecture"],
            weights=m["weights"],
            config=dict(m.get("config") or {}),
            weight=float(m.get("weight", 1.0)),
            output_tags=tuple(m["output_tags"]) if m.get("output_tags") else None,
        )
        for m in data["members"]
    )
    if not members:
        raise ValueError("a pack needs at least one member")
    tag_map = None
    if data.get("tag_map"):
        tag_map = {
            tag: tuple(TagSource(s["member"], s["tag"], float(s.get("weight", 1.0))) for s in src)
            for tag, src in data["tag_map"].items()
        }
    pack = Pack(
        root=root,
        name=data["name"],
        version=str(data["version"]),
        description=data.get("description", ""),
        tags=tuple(data["tags"]),
        covered=tuple(data.get("covered") or data["tags"]),
        frontend=dict(data["frontend"]),
        segmenting=Segmenting(**data["segmenting"]),
        members=members,
        thresholds={t: float(v) for t, v in data["thresholds"].items()},
        tag_map=tag_map,
        embedding_member=data.get("embedding_member"),
        head=Head(data["head"]["weights"], tuple(data["head"]["tags"]))
        if data.get("head")
        else None,
        provenance=dict(data.get("provenance") or {}),
        files=dict(data["files"]),
        builtin=builtin,
    )
    _check_consistency(pack)
    return pack


def check_file_name(name: object, what: str = "file name") -> str:
    """``name`` if it is a plain file name, one a pack folder can hold; ``ValueError`` else.

    Not a path: no folder separator of any system, no drive, not ``.`` or ``..``, not the
    manifest itself.
    """
    if (
        not isinstance(name, str)
        or name in ("", ".", "..", MANIFEST)
        or any(character in name for character in "/\\:\0")
        or os.path.basename(name) != name
        or os.path.isabs(name)
    ):
        raise ValueError(f"{what} {name!r} is not a plain file name inside the pack folder")
    return name


def _check_consistency(pack: Pack) -> None:
    for member in pack.members:
        check_file_name(member.weights, f"member {member.name}'s weights")
    if pack.head is not None:
        check_file_name(pack.head.weights, "the head's weights")
    for filename in pack.files:
        check_file_name(filename, "files lists")
    unknown = [t for t in pack.tags if t not in vocabulary.TAG_INDEX]
    if unknown:
        raise ValueError(f"tags outside the 56 mood/theme tags: {unknown}")
    if not set(pack.covered) <= set(pack.tags):
        raise ValueError("covered tags must be a subset of the pack's tags")
    missing = [t for t in pack.covered if t not in pack.thresholds]
    if missing:
        raise ValueError(f"no threshold for covered tags {missing}")
    names = {m.name for m in pack.members}
    for member in pack.members:
        if member.weights not in pack.files:
            raise ValueError(f"member {member.name}'s weights {member.weights} not in files")
        if member.output_tags is None and pack.tag_map is None and pack.tags is None:
            raise ValueError("members without output_tags need the pack's tags")
    if pack.tag_map is not None:
        for tag, sources in pack.tag_map.items():
            if tag not in pack.tags:
                raise ValueError(f"tag_map names {tag!r}, not one of the pack's tags")
            for source in sources:
                if source.member not in names:
                    raise ValueError(f"tag_map for {tag!r} names unknown member {source.member}")
                outputs = pack.member(source.member).output_tags or pack.tags
                if source.tag not in outputs:
                    raise ValueError(f"{source.member} has no output tag {source.tag!r}")
    if pack.embedding_member is not None and pack.embedding_member not in names:
        raise ValueError(f"embedding_member {pack.embedding_member!r} is not a member")
    if pack.head is not None:
        if pack.embedding_member is None:
            raise ValueError("a head needs an embedding_member")
        if pack.head.weights not in pack.files:
            raise ValueError(f"head weights {pack.head.weights} not in files")
        if not set(pack.head.tags) <= set(pack.covered):
            raise ValueError("the head's tags must be covered tags")


def verify_pack(pack: Pack) -> None:
    """Raise ``PackError`` unless every file in the manifest has its recorded sha256."""
    root = pack.root.resolve()
    for filename, expected in pack.files.items():
        path = pack.root / filename
        if not path.is_file():
            raise PackError(pack.name, f"missing file {filename}")
        if path.resolve().parent != root:
            raise PackError(pack.name, f"{filename} is a link to a file outside the pack folder")
        actual = sha256_file(path)
        if actual != expected:
            raise PackError(
                pack.name, f"{filename} is corrupt: sha256 {actual}, manifest says {expected}"
            )


def write_pack(
    dest: str | os.PathLike,
    manifest: dict[str, Any],
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    extra_files: Mapping[str, str | os.PathLike] | None = None,
) -> Pack:
    """Write a pack folder atomically: weights as safetensors, sha256s, then the manifest.

    ``weights`` maps each member's weight file name to its state_dict; ``extra_files`` are
    copied in as they are (licences, mapping tables) and hashed too. The folder is built
    beside ``dest`` and renamed into place, so a failed write leaves no half pack.
    """
    dest = Path(dest)
    for filename in [*weights, *(extra_files or {})]:
        try:
            check_file_name(filename)
        except ValueError as error:
            raise PackError(dest, str(error)) from None
    if dest.exists():
        raise PackError(dest, "already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        files = {}
        for filename, state in weights.items():
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
            save_file(tensors, str(staging / filename))
            files[filename] = sha256_file(staging / filename)
        for filename, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / filename)
            files[filename] = sha256_file(staging / filename)
        manifest = {**manifest, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        pack = load_pack(staging)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pack.root = dest
    return pack


def plain_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Find the state_dict in what ``torch.load(weights_only=True)`` returned."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PackError(source, "not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt`` or ``.safetensors`` checkpoint without ever unpickling code."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PackError(path, f"cannot read checkpoint: {error}") from error
    return plain_state_dict(loaded, str(path))
