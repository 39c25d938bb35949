"""Retrain on my corrections: a personal pack learned from a user's review decisions.

Labels come from the catalog: an accepted (or added) tag is a positive, a rejected tag a
negative, every other tag of that track is unknown and masked out of the loss. Tracks are
split into train and held-out by a fixed rule on their album (or artist, or folder), so no
album contributes to both sides and the held-out score is honest.

The fast path (the default) fits, on the base pack's cached track embeddings, one linear
correction per tag with enough labels: ``logit(personal) = logit(base) + w . embedding + b``
(a tag the base pack does not cover gets ``w . embedding + b`` alone). Tags the user has
not corrected keep the base scores. The result is a new pack that shares the base pack's
networks and adds this head; it records its base, the label counts, and the held-out
PR-AUC and ROC-AUC of base and personal per tag.

Tags beyond the 56 cannot be learned by a pack (its vocabulary is the 56 tags); they are
counted and reported as not learned, never silently dropped.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit
from sklearn.metrics import average_precision_score, roc_auc_score

from moodlib import vocabulary
from moodlib.library.catalog import Catalog
from moodlib.packs import Head, Pack
from moodlib.packstore import PackStore

HELD_OUT_FRACTION = 0.2  # whole groups go to the held-out side until it has this share
MIN_LABELS_PER_CLASS = 3  # a tag gets a head with at least this many positives and negatives
WEIGHT_DECAY = 1e-2

ProgressCallback = Callable[[str, float], None]


class FinetuneError(Exception):
    """Not enough corrections, or no embeddings to learn from."""


class Cancelled(Exception):
    """The user cancelled the fine-tuning."""


@dataclass
class Corrections:
    """The labelled tracks: embeddings, base scores, labels and the known-label mask."""

    track_ids: np.ndarray
    groups: list[str]
    embeddings: np.ndarray  # (n, dim)
    base_scores: np.ndarray  # (n, 56), NaN where the base pack does not predict
    labels: np.ndarray  # (n, 56) 0/1
    known: np.ndarray  # (n, 56) bool
    extra_tags: dict[str, int] = field(default_factory=dict)  # tags beyond the 56: counts
    missing_embeddings: int = 0

    def held_out_mask(self) -> np.ndarray:
        return held_out_mask(self.groups)


@dataclass
class TagReport:
    tag: str
    positives: int
    negatives: int
    trained: bool
    held_out_positives: int = 0
    held_out_negatives: int = 0
    base_pr_auc: float | None = None
    personal_pr_auc: float | None = None
    base_roc_auc: float | None = None
    personal_roc_auc: float | None = None


@dataclass
class FinetuneResult:
    pack: Pack | None
    reports: list[TagReport]
    extra_tags: dict[str, int]
    seconds: float
    train_tracks: int
    held_out_tracks: int

    def macro(self, key: str) -> float | None:
        """Mean of ``key`` (e.g. ``base_pr_auc``) over the tags where base and personal both
        have that metric, so the base and personal means compare the same tags."""
        metric = key.split("_", 1)[1]
        values = [
            getattr(r, key)
            for r in self.reports
            if getattr(r, f"base_{metric}") is not None
            and getattr(r, f"personal_{metric}") is not None
        ]
        return float(np.mean(values)) if values else None

    def table(self) -> str:
        """The before/after table the CLI prints."""
        lines = [
            f"{'tag':<14} {'pos':>4} {'neg':>4}  {'held-out':>8}  {'PR-AUC base':>11} "
            f"{'personal':>8}  {'ROC-AUC base':>12} {'personal':>8}"
        ]

        def fmt(value: float | None) -> str:
            return f"{value:.3f}" if value is not None else "-"

        for r in self.reports:
            held = f"{r.held_out_positives}+{r.held_out_negatives}"
            note = "" if r.trained else "  (too few labels: base scores kept)"
            lines.append(
                f"{r.tag:<14} {r.positives:>4} {r.negatives:>4}  {held:>8}  "
                f"{fmt(r.base_pr_auc):>11} {fmt(r.personal_pr_auc):>8}  "
                f"{fmt(r.base_roc_auc):>12} {fmt(r.personal_roc_auc):>8}{note}"
            )
        lines.append(
            f"{'macro':<14} {'':>4} {'':>4}  {'':>8}  {fmt(self.macro('base_pr_auc')):>11} "
            f"{fmt(self.macro('personal_pr_auc')):>8}  {fmt(self.macro('base_roc_auc')):>12} "
            f"{fmt(self.macro('personal_roc_auc')):>8}"
        )
        for tag, count in sorted(self.extra_tags.items()):
            lines.append(f"{tag!r}: {count} labels not learned (only the 56 tags can be)")
        return "\n".join(lines)


def held_out_mask(groups: list[str], fraction: float = HELD_OUT_FRACTION) -> np.ndarray:
    """The fixed split: groups in the order of their names' sha256 go to the held-out side
    until it holds ``fraction`` of the tracks; a group is never on both sides."""
    sizes: dict[str, int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    order = sorted(sizes, key=lambda g: hashlib.sha256(g.encode("utf-8")).hexdigest())
    wanted = int(np.ceil(fraction * len(groups)))
    held: set[str] = set()
    total = 0
    for group in order:
        if total >= wanted or len(held) == len(sizes) - 1:
            break
        held.add(group)
        total += sizes[group]
    return np.array([g in held for g in groups])


def _group(track) -> str:
    if track.album:
        return f"album:{(track.artist or '').lower()}/{track.album.lower()}"
    if track.artist:
        return f"artist:{track.artist.lower()}"
    return f"folder:{os.path.dirname(track.path)}"


def corrections_from_catalog(catalog: Catalog, base: Pack) -> Corrections:
    """Every track with at least one decision and a cached embedding from ``base``."""
    ids, groups, embeddings, scores, labels, known = [], [], [], [], [], []
    extra: dict[str, int] = {}
    missing = 0
    for track_id in catalog.reviewed_track_ids():
        embedding = catalog.embedding(track_id, base.name)
        base_scores = catalog.prediction(track_id, base.name)
        decisions = catalog.decisions(track_id)
        for tag in decisions:
            if not vocabulary.is_tag(tag):
                extra[tag] = extra.get(tag, 0) + 1
        if embedding is None or base_scores is None:
            missing += 1
            continue
        label_row = np.zeros(56, np.float32)
        known_row = np.zeros(56, bool)
        for tag, decision in decisions.items():
            if vocabulary.is_tag(tag):
                index = vocabulary.TAG_INDEX[vocabulary.short_name(tag)]
                label_row[index] = decision == "accept"
                known_row[index] = True
        if not known_row.any():
            continue
        ids.append(track_id)
        groups.append(_group(catalog.track(track_id)))
        embeddings.append(embedding)
        scores.append(base_scores)
        labels.append(label_row)
        known.append(known_row)
    if not ids:
        raise FinetuneError(
            f"no reviewed tracks with {base.name} embeddings: scan with {base.name} and "
            "accept or reject some tags first"
        )
    return Corrections(
        np.array(ids), groups, np.stack(embeddings), np.stack(scores), np.stack(labels),
        np.stack(known), extra, missing,
    )  # fmt: skip


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_head(
    embeddings: np.ndarray,
    base_scores: np.ndarray,
    labels: np.ndarray,
    known: np.ndarray,
    *,
    weight_decay: float = WEIGHT_DECAY,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    max_iterations: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``weight`` (tags x dim) and ``bias`` of the residual head by masked, L2-regularised
    logistic regression (L-BFGS, deterministic). Columns are the tags to train."""
    torch.manual_seed(0)
    x = torch.from_numpy(embeddings.astype(np.float32))
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / std
    offset = torch.from_numpy(np.where(np.isnan(base_scores), 0.0, _logit(base_scores)))
    offset = offset.float()
    y = torch.from_numpy(labels.astype(np.float32))
    mask = torch.from_numpy(known.astype(np.float32))
    weight = torch.zeros(labels.shape[1], x.shape[1], requires_grad=True)
    bias = torch.zeros(labels.shape[1], requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=20, history_size=20,
                                  line_search_fn="strong_wolfe")  # fmt: skip
    per_tag = mask.sum(0).clamp(min=1)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = offset + x @ weight.T + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss = ((loss * mask).sum(0) / per_tag).sum() + weight_decay * (weight**2).sum()
        loss.backward()
        return loss

    rounds = max(1, max_iterations // 20)
    for i in range(rounds):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        optimiser.step(closure)
        if progress:
            progress("fitting", (i + 1) / rounds)
    # Fold the standardisation into the weights so the head takes raw embeddings.
    w = (weight.detach() / std).numpy()
    b = (bias.detach() - (weight.detach() * mean / std).sum(1)).numpy()
    return w, b


def _scores(offset_scores: np.ndarray, embeddings: np.ndarray, w, b) -> np.ndarray:
    base = np.where(np.isnan(offset_scores), 0.0, _logit(offset_scores))
    return expit(base + embeddings @ w.T + b)


def _auc(labels: np.ndarray, scores: np.ndarray, metric) -> float | None:
    if len(set(labels.tolist())) < 2 or np.isnan(scores).any():
        return None
    return float(metric(labels, scores))


def tag_reports(
    data: Corrections,
    held: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    trainable: list[int],
    base_scores: np.ndarray,
    personal: np.ndarray,
) -> list[TagReport]:
    """Per labelled tag: training label counts and, for trained tags, the held-out PR-AUC and
    ROC-AUC of the base and the personal scores."""
    reports = []
    for i, tag in enumerate(vocabulary.TAGS):
        labelled = data.known[:, i]
        if not labelled.any():
            continue
        test = labelled & held
        truth = data.labels[test, i]
        report = TagReport(
            tag, int(positives[i]), int(negatives[i]), i in trainable,
            int(truth.sum()), int(len(truth) - truth.sum()),
        )  # fmt: skip
        if i in trainable:
            report.base_pr_auc = _auc(truth, base_scores[test, i], average_precision_score)
            report.base_roc_auc = _auc(truth, base_scores[test, i], roc_auc_score)
            report.personal_pr_auc = _auc(truth, personal[test, i], average_precision_score)
            report.personal_roc_auc = _auc(truth, personal[test, i], roc_auc_score)
        reports.append(report)
    return reports


def finetune(
    catalog: Catalog,
    base: Pack,
    store: PackStore,
    *,
    name: str | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    write: bool = True,
) -> FinetuneResult:
    """Learn the personal head from the catalog's decisions and (optionally) save the pack."""
    started = time.perf_counter()
    if base.head is not None:
        # A personal pack's scores already hold its head: learn anew from its base pack, on
        # all the decisions (a head on a head would drop the first one's corrections).
        base = store.get(base.provenance["base_pack"])
    if base.embedding_member is None:
        raise FinetuneError(f"{base.name} stores no embeddings, so it cannot be personalised")
    if progress:
        progress("reading corrections", 0.0)
    data = corrections_from_catalog(catalog, base)
    held = data.held_out_mask()
    if not held.any():
        # A single album: split its tracks instead.
        held = held_out_mask([str(t) for t in data.track_ids])
    train = ~held

    positives = (data.labels * data.known)[train].sum(0).astype(int)
    negatives = ((1 - data.labels) * data.known)[train].sum(0).astype(int)
    trainable = [
        i for i in range(56)
        if positives[i] >= MIN_LABELS_PER_CLASS and negatives[i] >= MIN_LABELS_PER_CLASS
    ]  # fmt: skip
    if not trainable:
        raise FinetuneError(
            f"not enough corrections yet: a tag needs {MIN_LABELS_PER_CLASS} accepted and "
            f"{MIN_LABELS_PER_CLASS} rejected tracks"
        )
    base_scores = base_scores_for(data.base_scores, base)
    w, b = fit_head(
        data.embeddings[train], base_scores[train][:, trainable], data.labels[train][:, trainable],
        data.known[train][:, trainable], cancel=cancel, progress=progress,
    )  # fmt: skip

    personal = base_scores.copy()
    personal[:, trainable] = _scores(base_scores[:, trainable], data.embeddings, w, b)
    reports = tag_reports(data, held, positives, negatives, trainable, base_scores, personal)

    pack = None
    if write:
        pack = _save_pack(store, base, name, trainable, w, b, data, reports, held)
    if progress:
        progress("done", 1.0)
    return FinetuneResult(
        pack, reports, data.extra_tags, time.perf_counter() - started,
        int(train.sum()), int(held.sum()),
    )  # fmt: skip


def base_scores_for(scores: np.ndarray, base: Pack) -> np.ndarray:
    """Base scores with NaN for tags the base pack does not cover."""
    covered = np.array([t in base.covered for t in vocabulary.TAGS])
    return np.where(covered, scores, np.nan)


def _save_pack(store, base, name, trainable, w, b, data, reports, held) -> Pack:
    tags = tuple(vocabulary.TAGS[i] for i in trainable)
    name = name or time.strftime("personal-%Y%m%d-%H%M")
    manifest = base.manifest()
    thresholds = dict(base.thresholds)
    thresholds.update(dict.fromkeys(tags, 0.5))  # the head is calibrated on the user's labels
    covered = [t for t in vocabulary.TAGS if t in base.covered or t in tags]
    manifest.update(
        name=name,
        version=time.strftime("%Y%m%d.%H%M"),
        description=f"{base.name} personalised on {len(data.track_ids)} reviewed tracks",
        covered=covered,
        thresholds=thresholds,
        head=Head("personal_head.safetensors", tags).to_dict(),
        provenance={
            "base_pack": base.name,
            "base_version": base.version,
            "method": "residual logistic head on pooled embeddings (trainer.finetune)",
            "reviewed_tracks": len(data.track_ids),
            "held_out_tracks": int(held.sum()),
            "extra_tags_not_learned": data.extra_tags,
            "per_tag": [r.__dict__ for r in reports],
        },
    )
    weights = {member.weights: _state(base, member.weights) for member in base.members}
    weights["personal_head.safetensors"] = {
        "weight": torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)),
        "bias": torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)),
    }
    extra = {
        f: base.root / f
        for f in base.files
        if f not in weights and f != "personal_head.safetensors"
    }
    return store.add(name, manifest, weights, extra)


def _state(base: Pack, filename: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(base.root) / filename), device="cpu")
