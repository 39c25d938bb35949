"""A recipe's inputs computed from audio through the app's frontend, cached on disk.

``moodlib-train run RECIPE --data DATA --audio AUDIO`` trains on the audio files instead of the
dataset's own mel-spectrograms: a track's audio is ``AUDIO / PATH`` of its split line (the
layout of ``moodlib-train download --type audio``). Each input source the recipe reads is
computed by the part of the recipe's ``[frontend]`` that makes it, the very module the exported
pack runs in the app, so training and tagging see the same input:

- ``melspecs``: :class:`moodlib.audio.frontend.MelFrontend` (by default MTG-Jamendo's mel
  bands, from audio decoded and resampled by :func:`moodlib.audio.decode.decode`);
- ``hpcp``: :class:`moodlib.audio.hpcp.HPCP` at the mel frames' rate.

The results are cached as ``.npy`` files in the dataset layout under ``DATA/audio-cache/``, one
folder per source and configuration (``melspecs-<digest of the configuration>``, with its
``config.json``), so a second run, or another recipe with the same frontend, decodes nothing.
A cached file is reused while it is newer than its audio file; files are written atomically,
so an interrupted caching pass continues where it stopped. A track whose audio cannot be
decoded is reported and left out; the others go on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from moodlib.audio.decode import AUDIO_EXTENSIONS, DecodeError, decode
from moodlib.audio.frontend import MelFrontend
from moodlib.audio.hpcp import HPCP
from moodlib.prefetch import read_ahead
from trainer.data.jamendo import mel_path

CACHE_DIR = "audio-cache"
SOURCES = ("melspecs", "hpcp")


class AudioCacheError(Exception):
    """A recipe input that cannot be computed from audio."""


def source_modules(frontend: dict[str, Any], sources: Sequence[str]) -> dict[str, nn.Module]:
    """The module computing each of ``sources`` from a waveform, split out of a pack frontend
    configuration as :func:`moodlib.audio.frontend.build_frontend` builds it."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise AudioCacheError(f"cannot compute {unknown} from audio; known sources: {SOURCES}")
    mel = MelFrontend(**{key: value for key, value in frontend.items() if key != "hpcp"})
    modules: dict[str, nn.Module] = {"melspecs": mel}
    if "hpcp" in sources:
        hpcp = {"sample_rate": mel.sample_rate, "hop_length": mel.hop_length, "center": mel.center}
        modules["hpcp"] = HPCP(**{**hpcp, **(frontend.get("hpcp") or {})})
    return {source: modules[source].eval() for source in sources}


def cache_folder(source: str, module: nn.Module) -> str:
    """``SOURCE-DIGEST``: the folder of one source computed with one configuration."""
    text = json.dumps(module.config(), sort_keys=True)
    return f"{source}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass
class CacheReport:
    computed: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    """One line per track whose audio could not be read: the file and the reason."""


def cache_inputs(
    cache_root: str | Path,
    audio_root: str | Path,
    paths: Sequence[str],
    modules: dict[str, nn.Module],
    *,
    device: torch.device | str = "cpu",
    workers: int = 2,
    show_progress: bool = True,
    folders: Mapping[str, str] | None = None,
) -> tuple[tuple[str, ...], CacheReport]:
    """Compute what is missing of every source for the audio files ``audio_root / path``.

    Returns the source folders under ``cache_root`` (in the order of ``modules``) and a report.
    ``workers`` threads decode ahead while the modules run on ``device``. ``folders``: the
    folder of each source (default :func:`cache_folder`, named by its configuration).
    """
    cache_root, audio_root = Path(cache_root), Path(audio_root)
    device = torch.device(device)
    if folders is None:
        folders = {source: cache_folder(source, module) for source, module in modules.items()}
    folders = {source: folders[source] for source in modules}
    for source, folder in folders.items():
        (cache_root / folder).mkdir(parents=True, exist_ok=True)
        config = cache_root / folder / "config.json"
        if not config.exists():
            config.write_text(json.dumps(modules[source].config(), indent=2, sort_keys=True))
    modules = {source: module.to(device) for source, module in modules.items()}
    sample_rate = int(next(iter(modules.values())).sample_rate)
    report = CacheReport()
    pending = []
    for path in paths:
        targets = [mel_path(cache_root / folder, path) for folder in folders.values()]
        if _fresh(targets, audio_root / path):
            report.reused += 1
        else:
            pending.append((path, targets))
    bar = tqdm(
        total=len(pending), desc=", ".join(modules), disable=not show_progress, dynamic_ncols=True
    )
    with ThreadPoolExecutor(max(1, workers)) as pool:
        decoded_files = read_ahead(
            pool, _decoder(audio_root, sample_rate), [path for path, _ in pending], workers + 1
        )
        for (_, targets), decoded in zip(pending, decoded_files, strict=True):
            bar.update()
            if isinstance(decoded, DecodeError):
                report.failed.append(str(decoded))
                continue
            waveform = torch.from_numpy(decoded).to(device)[None]
            with torch.inference_mode():
                for module, target in zip(modules.values(), targets, strict=True):
                    _save(target, module(waveform)[0].float().cpu().numpy())
            report.computed += 1
    bar.close()
    return tuple(folders.values()), report


def audio_files(root: str | Path) -> list[str]:
    """Paths, relative to ``root`` and sorted, of the audio files under it."""
    root = Path(root)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )


def _fresh(targets: list[Path], audio: Path) -> bool:
    try:
        audio_time = audio.stat().st_mtime
        return all(t.stat().st_mtime >= audio_time for t in targets)
    except FileNotFoundError:
        return False


def _decoder(audio_root: Path, sample_rate: int):
    def read(path: str) -> np.ndarray | DecodeError:
        try:
            return decode(audio_root / path, sample_rate=sample_rate)
        except DecodeError as error:
            return error

    return read


def _save(destination: Path, array: np.ndarray) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.stem}.{os.getpid()}.tmp.npy")
    np.save(temporary, array.astype(np.float32), allow_pickle=False)
    temporary.replace(destination)
