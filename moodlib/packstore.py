"""Installed model packs: list, import a checkpoint, install from the internet, remove.

Packs live in two places: the ones shipped inside moodlib (read-only, ``resources/packs``)
and the user's own under ``MOODLIB_HOME/packs``. A user pack cannot shadow a shipped one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from moodlib import __version__, config, vocabulary
from moodlib.audio.frontend import MelFrontend
from moodlib.download import DownloadError, fetch
from moodlib.models import build_model
from moodlib.packs import (
    MANIFEST,
    Member,
    Pack,
    PackError,
    Segmenting,
    load_pack,
    manifest_dict,
    read_checkpoint,
    sha256_file,
    write_pack,
)
from moodlib.progress import ProgressCallback

BUILTIN_PACKS = Path(__file__).parent / "resources" / "packs"

MTG_BASELINE = "mtg-baseline"
MTG_BASELINE_URL = (
    "https://github.com/MTG/mtg-jamendo-dataset/raw/master/scripts/baseline/models/best_model.pth"
)
MTG_BASELINE_SHA256 = "c1d6bee6bc25d78b28cea52bde68a353b3e674687171a78af020fa039d3cbdbe"
MTG_BASELINE_BYTES = 1_803_131

# Downloads in progress, resumed by the next install when one is interrupted.
DOWNLOADS = ".downloads"
MTG_BASELINE_DESCRIPTION = (
    "The official MTG-Jamendo mood/theme baseline (VGG-ish CNN, Bogdanov et al. 2019): all 56 "
    "tags, decided at the official F-optimal thresholds"
)
# The embedding personal packs learn from: the 64 pooled features plus the mean and maximum
# of the first two blocks' channels (448 values), which learnt a simulated listener's taste
# as well as the starter pack's musicnn embedding on its test and better on average
# (docs/default-pack.md).
MTG_BASELINE_CONFIG = {"embedding_blocks": 2}
MTG_BASELINE_PROVENANCE = {
    "paper": "Bogdanov et al. 2019, The MTG-Jamendo Dataset for Automatic Music Tagging "
    "(mood/theme baseline)",
    "authors": "Dmitry Bogdanov, Minz Won, Philip Tovstogan, Alastair Porter, Xavier Serra; "
    "Music Technology Group, Universitat Pompeu Fabra",
    "licence": "Apache-2.0 (see LICENSE), MTG/mtg-jamendo-dataset",
    "thresholds": "official F-optimal per-tag thresholds of the baseline on the split-0 "
    "test set (MTG/mtg-jamendo-dataset results/mediaeval/baseline_vggish_thresholds.txt)",
    "reported_test": {"ROC-AUC-macro": 0.7258, "PR-AUC-macro": 0.1077},
}

# A BCE-trained tagger's scores approximate each tag's posterior, whose mean is the tag's
# prior. Without validation predictions to fit F-optimal thresholds on, a tag is decided
# when the model finds it this many times likelier than for a random MTG-Jamendo track.
PRIOR_THRESHOLD_FACTOR = 2.0

# How each architecture reads a track when a checkpoint does not say: the baseline was
# trained and evaluated on one centred 29.1 s segment; the seed CNNs average segments.
_SEGMENTING_BY_ARCHITECTURE = {"vggish_baseline": Segmenting("center", frames=1366)}
_DEFAULT_SEGMENTING = Segmenting("uniform", frames=1366, count=8)

# Beside the shipped baseline's weights (packaging/convert_mtg_baseline.py writes them).
MTG_BASELINE_NOTES = ("LICENSE", "README.md")


def prior_thresholds(factor: float = PRIOR_THRESHOLD_FACTOR) -> dict[str, float]:
    """Per-tag thresholds ``factor`` x the tag's training-set prior, capped at 0.5."""
    return {
        tag: round(min(0.5, factor * prior), 4)
        for tag, prior in zip(vocabulary.TAGS, vocabulary.TRAIN_PRIORS, strict=True)
    }


class PackStore:
    """The shipped packs plus the user's packs folder."""

    def __init__(self, user_dir: str | os.PathLike | None = None, builtin_dir: Path | None = None):
        self.user_dir = Path(user_dir) if user_dir is not None else config.packs_dir()
        self.builtin_dir = builtin_dir if builtin_dir is not None else BUILTIN_PACKS

    def _folders(self) -> list[tuple[Path, bool]]:
        found = []
        for base, builtin in ((self.builtin_dir, True), (self.user_dir, False)):
            if base.is_dir():
                found += [(p, builtin) for p in sorted(base.iterdir()) if (p / MANIFEST).is_file()]
        return found

    def names(self) -> list[str]:
        return [folder.name for folder, _ in self._folders()]

    def list(self, *, verify: bool = False) -> list[tuple[str, Pack | PackError]]:
        """Every installed pack by folder name (shipped first): the pack, or why it cannot be
        read, so that one broken pack does not hide the others."""
        entries: list[tuple[str, Pack | PackError]] = []
        shipped = {folder.name for folder, builtin in self._folders() if builtin}
        for folder, builtin in self._folders():
            if not builtin and folder.name in shipped:
                # Say so (an earlier import of mtg-baseline, say) rather than list it twice.
                reason = f"hidden by the shipped pack of that name; delete {folder} to tidy up"
                entries.append((folder.name, PackError(folder.name, reason)))
                continue
            try:
                entries.append((folder.name, load_pack(folder, verify=verify, builtin=builtin)))
            except PackError as error:
                entries.append((folder.name, error))
        return entries

    def get(self, name: str, *, verify: bool = True) -> Pack:
        for folder, builtin in self._folders():
            if folder.name == name:
                return load_pack(folder, verify=verify, builtin=builtin)
        known = ", ".join(self.names()) or "none"
        raise PackError(name, f"no such pack installed (installed: {known})")

    def _new_folder(self, name: str) -> Path:
        if not name or name.startswith(".") or "/" in name or os.sep in name:
            raise PackError(name, "a pack name must be a plain folder name")
        if name in self.names():
            raise PackError(name, "a pack of that name is already installed")
        return self.user_dir / name

    def add(self, name: str, manifest: dict[str, Any], weights, extra_files=None) -> Pack:
        """Write a new user pack ``name`` (see ``packs.write_pack``)."""
        manifest = {**manifest, "name": name}
        return write_pack(self._new_folder(name), manifest, weights, extra_files)

    def install_folder(self, source: str | os.PathLike, name: str | None = None) -> Pack:
        """Copy a verified pack folder into the store (under ``name`` if given)."""
        pack = load_pack(source)
        dest = self._new_folder(name or pack.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=self._ensure_user_dir()))
        try:
            shutil.copytree(pack.root, staging, dirs_exist_ok=True)
            if name and name != pack.name:
                manifest = {**pack.manifest(), "name": name}
                (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            load_pack(staging)
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return load_pack(dest)

    def _ensure_user_dir(self) -> Path:
        self.user_dir.mkdir(parents=True, exist_ok=True)
        return self.user_dir

    def remove(self, name: str) -> None:
        pack = self.get(name, verify=False)
        if pack.builtin:
            raise PackError(name, "shipped packs cannot be removed")
        shutil.rmtree(pack.root)

    def import_checkpoint(
        self,
        checkpoint: str | os.PathLike,
        *,
        name: str,
        architecture: str,
        config: dict[str, Any] | None = None,
        thresholds: dict[str, float] | None = None,
        segmenting: Segmenting | None = None,
        provenance: dict[str, Any] | None = None,
        description: str | None = None,
        extra_files: dict[str, str | os.PathLike] | None = None,
    ) -> Pack:
        """Turn a state_dict checkpoint of a registered architecture into a one-member pack.

        ``.pth`` files are read with ``torch.load(weights_only=True)``; the weights must load
        strictly into ``build_model(architecture, **config)`` with the 56 outputs.
        ``extra_files`` (licence, notes) are copied into the pack beside the weights.
        """
        config = dict(config or {})
        state = read_checkpoint(checkpoint)
        model = build_model(architecture, **config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise PackError(checkpoint, f"does not fit {architecture}: {error}") from error
        member = Member(
            name=architecture,
            architecture=architecture,
            weights="weights.safetensors",
            config=config,
        )
        manifest = manifest_dict(
            name=name,
            version="1",
            description=description or f"{architecture} imported from {Path(checkpoint).name}",
            tags=vocabulary.TAGS,
            covered=vocabulary.TAGS,
            frontend=MelFrontend().config(),
            segmenting=segmenting
            or _SEGMENTING_BY_ARCHITECTURE.get(architecture, _DEFAULT_SEGMENTING),
            members=[member],
            thresholds=thresholds or prior_thresholds(),
            embedding_member=member.name,
            provenance={
                "source": str(checkpoint),
                "source_sha256": sha256_file(checkpoint),
                "imported_by": f"moodlib {__version__}",
                "thresholds": f"{PRIOR_THRESHOLD_FACTOR} x split-0 training prior, max 0.5",
                **(provenance or {}),
            },
        )
        return self.add(name, manifest, {member.weights: model.state_dict()}, extra_files)

    def import_mtg_baseline(
        self,
        checkpoint: str | os.PathLike,
        *,
        thresholds: dict[str, float],
        name: str = MTG_BASELINE,
        source: str = MTG_BASELINE_URL,
        extra_files: dict[str, str | os.PathLike] | None = None,
    ) -> Pack:
        """The official baseline checkpoint (its pinned sha256 checked) as a pack decided at
        ``thresholds``, with the baseline's provenance; ``extra_files``: licence and notes."""
        actual = sha256_file(checkpoint)
        if actual != MTG_BASELINE_SHA256:
            raise PackError(
                checkpoint, f"not the official baseline: sha256 {actual}, expected "
                f"{MTG_BASELINE_SHA256}"
            )  # fmt: skip
        return self.import_checkpoint(
            checkpoint,
            name=name,
            architecture="vggish_baseline",
            config=MTG_BASELINE_CONFIG,
            thresholds=thresholds,
            description=MTG_BASELINE_DESCRIPTION,
            extra_files=extra_files,
            provenance={**MTG_BASELINE_PROVENANCE, "source": source},
        )

    def install_mtg_baseline(
        self,
        *,
        name: str = MTG_BASELINE,
        url: str = MTG_BASELINE_URL,
        progress: ProgressCallback | None = None,
    ) -> Pack:
        """The official baseline. It ships with moodlib, so where this store has the shipped
        pack it is returned and nothing is downloaded. A store without it (another
        ``builtin_dir``) downloads the checkpoint from ``url`` (no more than its pinned size,
        resuming an interrupted download), verifies its pinned sha256 and converts it as the
        shipped pack was made: same thresholds, licence and notes."""
        for folder, builtin in self._folders():
            if builtin and folder.name == name:
                return load_pack(folder, builtin=True)
        self._new_folder(name)
        shipped = load_pack(BUILTIN_PACKS / MTG_BASELINE, builtin=True)
        downloads = self._ensure_user_dir() / DOWNLOADS
        downloads.mkdir(exist_ok=True)
        checkpoint = downloads / f"mtg-baseline-{MTG_BASELINE_SHA256[:16]}.pth"
        try:
            try:
                fetch(
                    url,
                    checkpoint,
                    sha256=MTG_BASELINE_SHA256,
                    size=MTG_BASELINE_BYTES,
                    progress=progress,
                )
            except DownloadError as error:
                raise PackError(url, f"download failed: {error.reason}") from error
            try:
                return self.import_mtg_baseline(
                    checkpoint,
                    thresholds=shipped.thresholds,
                    name=name,
                    source=url,
                    extra_files={f: shipped.root / f for f in MTG_BASELINE_NOTES},
                )
            finally:
                checkpoint.unlink()
        finally:
            with contextlib.suppress(OSError):  # not while it holds a download to resume
                downloads.rmdir()
