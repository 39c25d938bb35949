"""``Tagger``: from decoded waveforms to per-tag scores and decisions with a model pack.

One waveform gives one mel spectrogram (``MelFrontend`` on the pack's device); the mel is cut
into segments as the pack says; every member sees the same segments; member probabilities
are averaged over segments, mapped onto our 56 tags (ensemble weights, or the pack's
``tag_map``), and compared with the per-tag thresholds. The models are loaded once, when the
Tagger is made.

A scan does not decode whole tracks: ``Tagger.spans`` names the parts of a track that the
pack's segments read (each segment's frames and the samples their analysis windows reach),
and ``predict_excerpts`` cuts from the mels of those parts the same segments as from the mel of
the whole track. The segments of several tracks go through the members together, about
``BATCH_FRAMES`` mel frames per forward pass.

On the CPU, PyTorch takes every activation from ``malloc``; glibc serves blocks above its
mmap threshold (32 MiB at most by default) with fresh ``mmap`` calls and unmaps them when they
are freed, so each forward pass had the kernel map and zero-fill its large activations anew
(the first convolution of musicnn gives 9 MB per 3-s patch, the baseline's 34 MB per segment):
a third of a scan's CPU time was system time. A Tagger on the CPU therefore has glibc keep up
to ``RETAINED_BYTES`` of freed memory for the next batch (``_retain_freed_memory``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from moodlib import vocabulary
from moodlib.audio.frontend import build_frontend
from moodlib.audio.tiling import tile_to_length
from moodlib.packs import Pack

BATCH_FRAMES = 3072
"""Mel frames per forward pass of a member: 16 of musicnn's 3-s patches, 2 of the baseline's
29-s segments. Larger batches run no faster on a CPU and hold more memory."""

RETAINED_BYTES = 512 * 2**20
"""Freed memory glibc keeps in the process for reuse, and the size below which it serves
allocations from that memory rather than from new mappings (see the module docstring)."""


@dataclass(frozen=True)
class TrackExcerpts:
    """The decoded parts of one track that a pack reads: one waveform per span of
    ``Tagger.spans(total_samples)``, in order, at the tagger's sample rate.

    A single waveform of ``total_samples`` samples is the whole track (``whole``).
    """

    total_samples: int
    waveforms: tuple[np.ndarray, ...]

    @classmethod
    def whole(cls, waveform: np.ndarray) -> TrackExcerpts:
        return cls(len(waveform), (waveform,))


@dataclass
class TrackPrediction:
    """What a pack says about one track, over all 56 tags in the official order.

    ``scores`` is NaN for tags the pack does not predict; ``decisions`` is True where the
    score reaches the tag's threshold.
    """

    scores: np.ndarray
    decisions: np.ndarray
    embedding: np.ndarray | None = None

    @property
    def tags(self) -> list[str]:
        """The decided tags, highest score first."""
        chosen = np.flatnonzero(self.decisions)
        return [vocabulary.TAGS[i] for i in chosen[np.argsort(-self.scores[chosen])]]

    def score_dict(self) -> dict[str, float]:
        """Scores of the covered tags only."""
        return {
            tag: round(float(score), 6)
            for tag, score in zip(vocabulary.TAGS, self.scores, strict=True)
            if not np.isnan(score)
        }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was asked for but no CUDA device is available")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def tag_projections(pack: Pack) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """How a pack's members vote on the 56 tags: per member, a ``(member outputs, 56)`` matrix
    taking its probabilities to weighted votes (ensemble weights, or the pack's ``tag_map``),
    and the total weight per tag (0 where the pack does not predict the tag). A track's score
    is the sum of its members' votes over that total."""
    matrices = {}
    for member in pack.members:
        outputs = member.output_tags or pack.tags
        matrices[member.name] = np.zeros((len(outputs), len(vocabulary.TAGS)), np.float32)
    covered = set(pack.covered)
    if pack.tag_map is None:
        for member in pack.members:
            for i, tag in enumerate(member.output_tags or pack.tags):
                if tag in covered:
                    matrices[member.name][i, vocabulary.TAG_INDEX[tag]] = member.weight
    else:
        for tag, sources in pack.tag_map.items():
            if tag not in covered:
                continue
            for source in sources:
                member = pack.member(source.member)
                row = (member.output_tags or pack.tags).index(source.tag)
                matrices[member.name][row, vocabulary.TAG_INDEX[tag]] += source.weight
    return matrices, sum(m.sum(axis=0) for m in matrices.values())


class Tagger:
    """Runs a pack's ensemble on batches of tracks."""

    def __init__(
        self, pack: Pack, device: str | torch.device = "auto", batch_segments: int | None = None
    ) -> None:
        self.pack = pack
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            _retain_freed_memory()
        self.batch_segments = batch_segments or max(1, BATCH_FRAMES // pack.segmenting.frames)
        self.frontend = build_frontend(pack.frontend).to(self.device).eval()
        self.models = pack.load_models(self.device)
        for model in self.models.values():
            # Channels-last speeds convolutions on CUDA (as in training) and, for the models
            # that say so, on the CPU; the scores stay within float rounding.
            if self.device.type == "cuda" or getattr(model, "cpu_channels_last", False):
                model.to(memory_format=torch.channels_last)
        self.sample_rate = int(self.frontend.sample_rate)
        self.hop_length = int(self.frontend.hop_length)
        # Samples the widest analysis window (mel or HPCP) reaches around a frame's position.
        reach = max(int(m.n_fft) for m in self.frontend.modules() if hasattr(m, "n_fft"))
        if self.frontend.center:
            self._context_frames = -(-(reach - reach // 2) // self.hop_length)
            self._tail_samples = self._context_frames * self.hop_length
        else:
            self._context_frames, self._tail_samples = 0, reach
        matrices, norm = tag_projections(pack)
        self._projections = {
            name: torch.from_numpy(m).to(self.device) for name, m in matrices.items()
        }
        self._norm = torch.from_numpy(norm).to(self.device)
        self._head = pack.load_head(self.device)
        self._head_index = (
            [vocabulary.TAG_INDEX[t] for t in pack.head.tags] if pack.head is not None else []
        )
        self._thresholds = np.array(
            [pack.thresholds.get(tag, np.inf) for tag in vocabulary.TAGS], dtype=np.float32
        )

    # -- reading a track ------------------------------------------------------------------

    @property
    def min_samples(self) -> int:
        """Shorter waveforms are repeated up to one segment (``tile_to_length``)."""
        return self.pack.segmenting.frames * self.hop_length

    def spans(self, total_samples: int) -> list[tuple[int, int | None]]:
        """``(start, stop)`` in samples of the parts of a track of ``total_samples`` samples
        that the pack's segments read, in order; ``stop=None`` runs to the end of the track.

        A part holds a segment's frames and every sample their analysis windows reach; parts
        that overlap or touch are merged. A track shorter than one segment is read whole. For
        the starter pack and a 5-minute track: ten parts of 3.0 s, ``(0, 47872)`` to
        ``(4752128, None)``; for the MTG-Jamendo baseline, one part of 29.2 s in the middle.
        """
        plan = self.pack.segmenting
        total_frames = self.frontend.num_frames(total_samples)
        if total_frames < plan.frames:
            return [(0, None)]
        merged: list[list[int]] = []
        for start in plan.starts(total_frames):
            first = max(0, start - self._context_frames) * self.hop_length
            stop = (start + plan.frames - 1) * self.hop_length + self._tail_samples
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([first, stop])
        return [(first, None if stop >= total_samples else stop) for first, stop in merged]

    def read_window(self, duration_seconds: float | None) -> tuple[float, float | None]:
        """``(offset, duration)`` in seconds of the part of a track holding every span the pack
        reads (``spans``): the middle of a long track for a centred pack, the whole track for
        packs whose segments spread over it. ``predict_waveforms`` of that part gives the
        track's scores.
        """
        if not duration_seconds:
            return 0.0, None
        spans = self.spans(round(duration_seconds * self.sample_rate))
        first, stop = spans[0][0], spans[-1][1]
        offset = first / self.sample_rate
        return offset, None if stop is None else (stop - first) / self.sample_rate

    def mel(self, waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The pack's mel spectrogram ``(n_mels, frames)`` of one mono waveform."""
        samples = tile_to_length(self._samples(waveform), self.min_samples)
        return self.frontend(samples.unsqueeze(0))[0]

    def segments(self, mel: torch.Tensor) -> torch.Tensor:
        """Cut a mel ``(n_mels, frames)`` into ``(segments, n_mels, segment_frames)``; a mel
        shorter than one segment is repeated to its length."""
        plan = self.pack.segmenting
        total = mel.shape[-1]
        mel = tile_to_length(mel, plan.frames)
        return torch.stack([mel[:, s : s + plan.frames] for s in plan.starts(total)])

    # -- prediction -----------------------------------------------------------------------

    def predict_waveforms(self, waveforms: Sequence[np.ndarray]) -> list[TrackPrediction]:
        """Scores and decisions for each waveform (mono, at ``self.sample_rate``)."""
        with torch.inference_mode():
            return self.predict_mels([self.mel(w) for w in waveforms])

    def predict_excerpts(self, tracks: Sequence[TrackExcerpts]) -> list[TrackPrediction]:
        """Scores and decisions for each track from the parts of it that ``spans`` names: the
        same, to float rounding, as ``predict_waveforms`` of the whole tracks.

        Raises ``ValueError`` when a track's waveforms are not as long as its spans.
        """
        with torch.inference_mode():
            return self._predict_segments([self._excerpt_segments(t) for t in tracks])

    @torch.inference_mode()
    def predict_mels(self, mels: Sequence[torch.Tensor]) -> list[TrackPrediction]:
        """Scores and decisions for each track's full mel ``(n_mels, frames)``."""
        return self._predict_segments([self.segments(m.to(self.device)) for m in mels])

    def fits(self, track: TrackExcerpts) -> bool:
        """Whether ``track``'s waveforms are the spans of a track of ``track.total_samples``
        samples: false when the file ended before the length its container states."""
        waveforms = track.waveforms
        if len(waveforms) == 1 and len(waveforms[0]) == track.total_samples:
            return True
        spans = self.spans(track.total_samples)
        if len(spans) != len(waveforms):
            return False
        for (start, stop), waveform in zip(spans, waveforms, strict=True):
            end = start + len(waveform)
            if stop is not None and end != stop:
                return False
            frames = self.frontend.num_frames
            if stop is None and frames(end) < frames(track.total_samples):
                return False
        return True

    def _excerpt_segments(self, track: TrackExcerpts) -> torch.Tensor:
        """The segments ``segments`` cuts from the whole track's mel, from the parts' mels."""
        if not self.fits(track):
            raise ValueError(
                f"the excerpts are not the spans of a track of {track.total_samples} samples"
            )
        if len(track.waveforms) == 1 and len(track.waveforms[0]) == track.total_samples:
            return self.segments(self.mel(track.waveforms[0]))
        # Each part starts on a frame: its first sample is a multiple of the hop.
        parts = [
            (start // self.hop_length, self.frontend(self._samples(waveform).unsqueeze(0))[0])
            for (start, _), waveform in zip(
                self.spans(track.total_samples), track.waveforms, strict=True
            )
        ]
        frames = self.pack.segmenting.frames
        segments = []
        for start in self.pack.segmenting.starts(self.frontend.num_frames(track.total_samples)):
            first, mel = next(part for part in reversed(parts) if part[0] <= start)
            segments.append(mel[:, start - first : start - first + frames])
        return torch.stack(segments)

    def ensemble(
        self,
        segments: torch.Tensor,
        *,
        tags: Sequence[int] | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ensemble's probability of each tag for each of ``segments`` ``(segments, n_mels,
        frames)``, ``(segments, tags)``, and the embedding member's embedding of each (None:
        the pack names no embedding member).

        Every member's sigmoid outputs vote through its projection (``tag_projections``: the
        ensemble weights or the pack's ``tag_map``); a tag's probability is the sum of the votes
        over its total weight, NaN for a tag the pack does not predict. ``tags``: indexes into
        the 56 tags, all of them by default. The members run under ``autocast`` (by default
        float16 on CUDA, none elsewhere), the votes in float32. Gradients flow through it (the
        full fine-tuner trains the members through it); the ``predict_`` methods call it in
        inference mode.
        """
        columns = slice(None) if tags is None else torch.as_tensor(list(tags), device=self.device)
        logits, embedding = {}, None
        with (autocast or self._autocast)():
            for name, model in self.models.items():
                if name == self.pack.embedding_member and hasattr(model, "forward_with_embedding"):
                    logits[name], embedding = model.forward_with_embedding(segments)
                else:
                    logits[name] = model(segments)
        votes = sum(
            torch.sigmoid(logits[name].float()) @ self._projections[name][:, columns]
            for name in self.models
        )
        norm = self._norm[columns]
        probabilities = torch.where(norm > 0, votes / norm, torch.nan)
        return probabilities, None if embedding is None else embedding.float()

    def _predict_segments(self, per_track: Sequence[torch.Tensor]) -> list[TrackPrediction]:
        """Scores and decisions for each track from its segments ``(segments, n_mels, frames)``:
        every track's segments go through the members together, ``batch_segments`` at a time."""
        counts = [len(s) for s in per_track]
        batch = torch.cat(per_track)
        probabilities, embeddings = [], []
        for start in range(0, len(batch), self.batch_segments):
            chunk, embedding = self.ensemble(batch[start : start + self.batch_segments])
            probabilities.append(chunk)
            if embedding is not None:
                embeddings.append(embedding)
        segment_scores = torch.cat(probabilities).cpu().numpy()
        embedding_rows = torch.cat(embeddings).cpu().numpy() if embeddings else None

        results, offset = [], 0
        for count in counts:
            scores = segment_scores[offset : offset + count].mean(axis=0).astype(np.float32)
            embedding = None
            if embedding_rows is not None:
                embedding = embedding_rows[offset : offset + count].mean(axis=0)
            if self._head is not None:
                scores = self._apply_head(scores, embedding)
            with np.errstate(invalid="ignore"):
                decisions = scores >= self._thresholds
            results.append(TrackPrediction(scores, decisions & ~np.isnan(scores), embedding))
            offset += count
        return results

    def _samples(self, waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A waveform as float32 on the tagger's device; to CUDA through pinned memory,
        without waiting for the copy."""
        samples = torch.as_tensor(waveform, dtype=torch.float32)
        if self.device.type != "cuda" or samples.device.type != "cpu":
            return samples.to(self.device)
        return samples.pin_memory().to(self.device, non_blocking=True)

    def _apply_head(self, scores: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Add the personal head's correction to the logits of its tags."""
        weight = self._head["weight"].float().cpu().numpy()
        bias = self._head["bias"].float().cpu().numpy()
        correction = weight @ embedding.astype(np.float32) + bias
        base = scores[self._head_index].astype(np.float64)
        with np.errstate(divide="ignore"):
            clipped = np.clip(base, 1e-7, 1 - 1e-7)
            base_logit = np.where(np.isnan(base), 0.0, np.log(clipped / (1 - clipped)))
        scores = scores.copy()
        # The logistic function, written so that no exponent overflows.
        scores[self._head_index] = np.exp(-np.logaddexp(0.0, -(base_logit + correction)))
        return scores

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


@functools.cache
def _retain_freed_memory() -> bool:
    """Have glibc keep freed memory below ``RETAINED_BYTES`` for reuse instead of returning it
    to the kernel (see the module docstring); True when it agreed. Once per process; a no-op
    on other platforms and C libraries. Old glibc versions cap the mmap threshold at 32 MiB.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    if not mallopt(m_trim_threshold, RETAINED_BYTES):
        return False
    return any(mallopt(m_mmap_threshold, size) for size in (RETAINED_BYTES, 32 * 2**20))
