"""``Tagger``: from decoded waveforms to per-tag scores and decisions with a model pack.

One waveform gives one mel spectrogram (``MelFrontend`` on the pack's device); the mel is cut
into segments as the pack says; every member sees the same segments; member probabilities
are averaged over segments, mapped onto our 56 tags (ensemble weights, or the pack's
``tag_map``), and compared with the per-tag thresholds. The models are loaded once, when the
Tagger is made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit

from moodlib import tags as vocabulary
from moodlib.audio.features import build_frontend
from moodlib.audio.tiling import tile_to_length
from moodlib.packs import Pack


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


class Tagger:
    """Runs a pack's ensemble on batches of tracks."""

    def __init__(
        self, pack: Pack, device: str | torch.device = "auto", batch_segments: int = 16
    ) -> None:
        self.pack = pack
        self.device = resolve_device(device)
        self.batch_segments = batch_segments
        self.frontend = build_frontend(pack.frontend).to(self.device).eval()
        self.models = pack.load_models(self.device)
        self.sample_rate = int(self.frontend.sample_rate)
        self.hop_length = int(self.frontend.hop_length)
        self._projections, self._norm = self._tag_projections()
        self._head = pack.load_head(self.device)
        self._head_index = (
            [vocabulary.TAG_INDEX[t] for t in pack.head.tags] if pack.head is not None else []
        )
        self._thresholds = np.array(
            [pack.thresholds.get(tag, np.inf) for tag in vocabulary.TAGS], dtype=np.float32
        )

    def _tag_projections(self) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """Per member, a (member outputs x 56) matrix taking its probabilities to our tags."""
        pack = self.pack
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
        norm = sum(m.sum(axis=0) for m in matrices.values())
        projections = {name: torch.from_numpy(m).to(self.device) for name, m in matrices.items()}
        return projections, norm

    # -- reading a track ------------------------------------------------------------------

    @property
    def min_samples(self) -> int:
        """Shorter waveforms are repeated up to one segment (``tile_to_length``)."""
        return self.pack.segmenting.frames * self.hop_length

    def read_window(self, duration_seconds: float | None) -> tuple[float, float | None]:
        """``(offset, duration)`` in seconds of the part of a track the pack looks at.

        A centred-segment pack needs only the middle of the track (plus one FFT frame of
        context each side), so long files are not decoded whole.
        """
        if self.pack.segmenting.mode != "center" or not duration_seconds:
            return 0.0, None
        margin = 2 * self.frontend.n_fft
        needed = (self.min_samples + 2 * margin) / self.sample_rate
        if duration_seconds <= needed:
            return 0.0, None
        return (duration_seconds - needed) / 2.0, needed

    def mel(self, waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The pack's mel spectrogram ``(n_mels, frames)`` of one mono waveform."""
        samples = torch.as_tensor(waveform, dtype=torch.float32, device=self.device)
        samples = tile_to_length(samples, self.min_samples)
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

    @torch.inference_mode()
    def predict_mels(self, mels: Sequence[torch.Tensor]) -> list[TrackPrediction]:
        """Scores and decisions for each track's full mel ``(n_mels, frames)``."""
        per_track = [self.segments(m.to(self.device)) for m in mels]
        counts = [len(s) for s in per_track]
        batch = torch.cat(per_track)
        tag_sums = torch.zeros(len(batch), len(vocabulary.TAGS), device=self.device)
        embeddings = []
        for start in range(0, len(batch), self.batch_segments):
            chunk = batch[start : start + self.batch_segments]
            with self._autocast():
                for name, model in self.models.items():
                    if name == self.pack.embedding_member and hasattr(
                        model, "forward_with_embedding"
                    ):
                        logits, embedding = model.forward_with_embedding(chunk)
                        embeddings.append(embedding.float())
                    else:
                        logits = model(chunk)
                    probabilities = torch.sigmoid(logits.float())
                    tag_sums[start : start + len(chunk)] += probabilities @ self._projections[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            segment_scores = tag_sums.cpu().numpy() / self._norm
        segment_scores[:, self._norm == 0] = np.nan
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
        scores[self._head_index] = expit(base_logit + correction)
        return scores

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()
