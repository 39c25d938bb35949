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

The full path (:mod:`trainer.finetune_full`) shares with this one the labels, the split, the
choice of tags to train (:func:`select_tags`), the report and its table, and the saving of the
pack (:func:`save_pack`). Which base pack, and scoring the reviewed tracks it has not scored,
come first (:mod:`trainer.finetune_prepare`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import expit
from sklearn.metrics import average_precision_score, roc_auc_score

from moodlib import vocabulary
from moodlib.library.catalog import Catalog
from moodlib.packs import Head, Pack
from moodlib.packstore import PackStore
from moodlib.progress import Progress, ProgressCallback, raise_if_cancelled, report
from trainer.finetune_prepare import FinetuneError, check_base, new_pack_name

HELD_OUT_FRACTION = 0.2  # whole groups go to the held-out side until it has this share
MIN_LABELS_PER_CLASS = 3  # a tag gets a head with at least this many positives and negatives
WEIGHT_DECAY = 1e-2

READING = "reading your decisions"  # the stages, as progress texts
FITTING = "fitting the personal pack"
SAVED = "saved"
TOO_FEW = "too few labels: base scores kept"  # why a labelled tag is not trained
NOT_COVERED = "not covered by the base networks: not trained (the fast path can learn it)"


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
    """What a fine-tuning learned and how it measured: per labelled tag a ``TagReport``,
    ``not_trained`` (tag -> why not), the tags beyond the 56 with their label counts."""

    pack: Pack | None
    reports: list[TagReport]
    extra_tags: dict[str, int]
    seconds: float
    train_tracks: int
    held_out_tracks: int
    not_trained: dict[str, str] = field(default_factory=dict)

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
            note = f"  ({self.not_trained[r.tag]})" if r.tag in self.not_trained else ""
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
        return "\n".join(lines + self.notes())

    def notes(self) -> list[str]:
        """The lines under the table: the tags beyond the 56 that were not learned."""
        return [
            f"{tag!r}: {count} labels not learned (only the 56 tags can be)"
            for tag, count in sorted(self.extra_tags.items())
        ]


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
        raise_if_cancelled(cancel)
        optimiser.step(closure)
        report(progress, Progress.fraction((i + 1) / rounds, FITTING))
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
    data: Corrections, chosen: TagSelection, base_scores: np.ndarray, personal: np.ndarray
) -> list[TagReport]:
    """Per labelled tag: training label counts and, for trained tags, the held-out PR-AUC and
    ROC-AUC of the base and the personal scores."""
    reports = []
    for i, tag in enumerate(vocabulary.TAGS):
        labelled = data.known[:, i]
        if not labelled.any():
            continue
        test = labelled & chosen.held
        truth = data.labels[test, i]
        trained = i in chosen.trainable
        row = TagReport(
            tag, int(chosen.positives[i]), int(chosen.negatives[i]), trained,
            int(truth.sum()), int(len(truth) - truth.sum()),
        )  # fmt: skip
        if trained:
            row.base_pr_auc = _auc(truth, base_scores[test, i], average_precision_score)
            row.base_roc_auc = _auc(truth, base_scores[test, i], roc_auc_score)
            row.personal_pr_auc = _auc(truth, personal[test, i], average_precision_score)
            row.personal_roc_auc = _auc(truth, personal[test, i], roc_auc_score)
        reports.append(row)
    return reports


@dataclass
class TagSelection:
    """The split and the tags to train: ``held``/``train`` masks over the labelled tracks,
    training label counts per tag, the tag columns to train, and why the other labelled tags
    are not trained."""

    held: np.ndarray
    train: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    trainable: list[int]
    not_trained: dict[str, str]


def select_tags(
    data: Corrections, *, covered_by: Pack | None = None, too_few: str = TOO_FEW
) -> TagSelection:
    """Split the tracks (whole albums held out; a single album: its tracks) and pick the tags
    with ``MIN_LABELS_PER_CLASS`` positives and negatives on the training side, among those
    ``covered_by`` predicts when given (the full path trains only the base networks' outputs).
    Raises :class:`FinetuneError` when no tag qualifies."""
    held = data.held_out_mask()
    if not held.any():
        held = held_out_mask([str(t) for t in data.track_ids])
    train = ~held
    positives = (data.labels * data.known)[train].sum(0).astype(int)
    negatives = ((1 - data.labels) * data.known)[train].sum(0).astype(int)
    covered = set(covered_by.covered) if covered_by is not None else set(vocabulary.TAGS)
    trainable, not_trained = [], {}
    for i, tag in enumerate(vocabulary.TAGS):
        if not data.known[:, i].any():
            continue
        if tag not in covered:
            not_trained[tag] = NOT_COVERED
        elif positives[i] >= MIN_LABELS_PER_CLASS and negatives[i] >= MIN_LABELS_PER_CLASS:
            trainable.append(i)
        else:
            not_trained[tag] = too_few
    if not trainable:
        which = f"a tag {covered_by.name} covers" if covered_by is not None else "a tag"
        raise FinetuneError(
            f"not enough corrections yet: {which} needs {MIN_LABELS_PER_CLASS} accepted and "
            f"{MIN_LABELS_PER_CLASS} rejected tracks"
        )
    return TagSelection(held, train, positives, negatives, trainable, not_trained)


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
    """Learn the personal head of ``base`` from the catalog's decisions and (``write``) save
    the pack as ``name`` (by default ``new_pack_name``).

    ``base`` is a pack ``trainer.finetune_prepare.choose_base`` gives (no head, embeddings
    stored); the reviewed tracks without its embeddings are left out (``prepare`` scores them
    first). Raises :class:`FinetuneError` when there is nothing to learn, and
    ``moodlib.progress.Cancelled`` when ``cancel`` is set before the pack is saved.
    """
    started = time.perf_counter()
    check_base(base)
    report(progress, Progress.fraction(0.0, READING))
    data = corrections_from_catalog(catalog, base)
    chosen = select_tags(data)
    train, trainable = chosen.train, chosen.trainable
    base_scores = base_scores_for(data.base_scores, base)
    w, b = fit_head(
        data.embeddings[train], base_scores[train][:, trainable], data.labels[train][:, trainable],
        data.known[train][:, trainable], cancel=cancel, progress=progress,
    )  # fmt: skip

    personal = base_scores.copy()
    personal[:, trainable] = _scores(base_scores[:, trainable], data.embeddings, w, b)
    reports = tag_reports(data, chosen, base_scores, personal)
    result = FinetuneResult(
        None, reports, data.extra_tags, 0.0, int(train.sum()), int(chosen.held.sum()),
        chosen.not_trained,
    )  # fmt: skip
    if write:
        tags = tuple(vocabulary.TAGS[i] for i in trainable)
        thresholds = dict(base.thresholds)
        thresholds.update(dict.fromkeys(tags, 0.5))  # the head is calibrated on the user's labels
        head = {
            "weight": torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)),
            "bias": torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)),
        }
        result.pack = save_pack(
            store, base, name, data, result, cancel=cancel,
            weights={"personal_head.safetensors": head},
            description=f"{base.name} personalised on {len(data.track_ids)} reviewed tracks",
            provenance={"method": "residual logistic head on pooled embeddings (trainer.finetune)"},
            covered=[t for t in vocabulary.TAGS if t in base.covered or t in tags],
            thresholds=thresholds,
            head=Head("personal_head.safetensors", tags).to_dict(),
        )  # fmt: skip
    report(progress, Progress.fraction(1.0, SAVED if write else "done"))
    result.seconds = time.perf_counter() - started
    return result


def base_scores_for(scores: np.ndarray, base: Pack) -> np.ndarray:
    """Base scores with NaN for tags the base pack does not cover."""
    covered = np.array([t in base.covered for t in vocabulary.TAGS])
    return np.where(covered, scores, np.nan)


def save_pack(
    store: PackStore,
    base: Pack,
    name: str | None,
    data: Corrections,
    result: FinetuneResult,
    *,
    weights: dict[str, dict[str, torch.Tensor]],
    description: str,
    provenance: dict,
    cancel: threading.Event | None = None,
    **manifest: object,
) -> Pack:
    """Install a personal pack learned on ``base``: its manifest with ``manifest``'s entries
    changed, the new or changed weight files ``weights``, the base pack's other files copied,
    and a provenance record (the base, the label counts, the per-tag report, plus
    ``provenance``). Named ``name``, by default ``new_pack_name``.

    Raises ``moodlib.progress.Cancelled`` when ``cancel`` is set: the last moment a
    cancel is honoured, since afterwards the pack is there.
    """
    raise_if_cancelled(cancel)
    name = name or new_pack_name(store)
    record = {
        "base_pack": base.name,
        "base_version": base.version,
        **provenance,
        "reviewed_tracks": len(data.track_ids),
        "held_out_tracks": result.held_out_tracks,
        "extra_tags_not_learned": data.extra_tags,
        "per_tag": [r.__dict__ for r in result.reports],
    }
    changed = base.manifest()
    changed.update(
        name=name, version=time.strftime("%Y%m%d.%H%M"), description=description,
        provenance=record, **manifest,
    )  # fmt: skip
    extra = {f: base.root / f for f in base.files if f not in weights}
    return store.add(name, changed, weights, extra)
