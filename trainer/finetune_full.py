"""Retrain on my corrections, the full path: fine-tune the base pack's networks end to end.

For users with many corrections and a GPU. The labels, the known-label mask and the album
split are the fast path's (:func:`trainer.finetune.corrections_from_catalog`,
:func:`trainer.finetune.select_tags`): an accepted or added tag is a positive, a rejected
one a negative, everything else is masked out; no album is on both sides. So are the report,
its table and the saving of the pack (:func:`trainer.finetune.save_pack`); the base pack and
the scoring of reviewed tracks it has not scored come first (:mod:`trainer.finetune_prepare`).

What happens:

1. Every reviewed track is decoded once as a scan decodes it (:func:`moodlib.pipeline.
   read_track`) and turned into the pack's mel spectrogram by the base Tagger's frontend; the
   mels wait in a temporary on-disk cache (memory-mapped, deleted at the end).
2. Each epoch takes one random crop of the pack's segment length from every training track
   (:func:`trainer.data.augment.crop_start`, as the trainer's ``CropDataset``). Batches get
   SpecAugment (two time and two frequency masks, half of the examples) and then mixup
   (CP-JKU's per-example ``lambda``, alpha 0.3) from :class:`trainer.data.augment.
   Augmentation`.
3. All members of the base pack train jointly through the Tagger's own ensemble
   (:meth:`moodlib.inference.Tagger.ensemble`): each member's sigmoid outputs vote through its
   projection (ensemble weights or the pack's ``tag_map``), and a tag's probability is the
   weighted mean of the votes. The loss is the masked focal loss
   (:class:`trainer.losses.FocalLoss`, gamma 2, alpha 0.5 rather than the papers' 0.25: a
   user's accepts and rejects are not the long-tailed positives of MTG-Jamendo) on the logit
   of that mean, over the trained tags' known labels only.
4. AdamW (lr 1e-4, weight decay 1e-2), 10 epochs by default: a fine-tune, not a retrain.
   Batch-norm layers keep the base pack's statistics (they are put in eval mode: a few small
   batches of one user's music would otherwise overwrite them); dropout stays on. On CUDA the
   networks run channels-last under bf16 autocast, as in :mod:`trainer.loop`. Random draws
   (crops, order, augmentation, dropout) come from torch's generator seeded with ``seed``
   inside a forked RNG state, so a CPU run is reproducible and the caller's RNG is untouched.
   On the CPU, oneDNN is off while training (its convolution backward is the slower one here).
5. The held-out tracks are scored by the fine-tuned networks through the base pack's own
   Tagger (segments and segment averaging as in a scan) and compared, per tag, with the base
   pack's scores from the catalog (what the scan with the base pack stored, also what the
   fast path compares with): PR-AUC and ROC-AUC in a :class:`trainer.finetune.TagReport`.

The new pack is the base manifest with the fine-tuned member weights (the base pack's other
files copied, its thresholds kept) and a provenance record. A tag trains when the base pack
covers it and the training side holds :data:`trainer.finetune.MIN_LABELS_PER_CLASS` positives
and negatives; a tag the base pack does not cover has no output in its networks to train, so it
is reported as not trained (the fast path's residual head can learn it). A base pack that is
itself a fast-path personal pack (it has a head) is refused: its head reads the embedding that
this path changes (``prepare`` fine-tunes its base instead).

Every tag's score moves, trained or not: the members' layers are shared by all their outputs.

Small data: with a few dozen tracks on the CPU this path mostly shows that it runs; it is not
expected to beat the base pack (or the fast path) there, and the tests assert only that it
lowers the training loss. It pays off with hundreds of corrections and a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from moodlib.audio.decode import DecodeError
from moodlib.inference import Tagger
from moodlib.library.catalog import Catalog
from moodlib.packs import Pack
from moodlib.packstore import PackStore
from moodlib.pipeline import read_track
from moodlib.prefetch import read_ahead
from moodlib.progress import Progress, ProgressCallback, raise_if_cancelled, report
from trainer.data.augment import Augmentation, SpecAugment, crop, crop_start
from trainer.finetune import (
    READING,
    SAVED,
    Corrections,
    FinetuneResult,
    base_scores_for,
    corrections_from_catalog,
    save_pack,
    select_tags,
    tag_reports,
)
from trainer.finetune_prepare import FinetuneError, check_base
from trainer.losses import FocalLoss
from trainer.processes import autocast_for
from trainer.strategies.base import TrainingLoss

EPOCHS = 10
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 1e-2
BATCH_SIZE = 16
FOCAL_ALPHA = 0.5
FOCAL_GAMMA = 2.0
MIXUP = {"alpha": 0.3, "per_example": True, "own_share_at_least_half": True}
SPECAUGMENT_PROBABILITY = 0.5
EVAL_TRACKS = 8  # tracks per Tagger call when scoring
EPSILON = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit

METHOD = "full fine-tune of the base networks (trainer.finetune_full)"
TOO_FEW = "too few labels: not trained"


@dataclass
class FullFinetuneResult(FinetuneResult):
    """:class:`FinetuneResult` plus what the full path measures on the way.

    ``epoch_losses``: mean (augmented) batch loss of each epoch. ``train_loss_before`` and
    ``train_loss_after``: the masked focal loss of the track scores (segment-averaged, no
    augmentation) on the training tracks, with the base pack's and the fine-tuned networks.
    """

    epochs: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_loss_before: float | None = None
    train_loss_after: float | None = None
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> decode error

    def notes(self) -> list[str]:
        lines = super().notes()
        if self.train_loss_before is not None and self.train_loss_after is not None:
            lines.append(
                f"training loss {self.train_loss_before:.4f} (base) -> "
                f"{self.train_loss_after:.4f} after {self.epochs} epochs"
            )
        for path, error in sorted(self.unreadable.items()):
            lines.append(f"{path}: not decoded ({error}), left out")
        return lines


def finetune_full(
    catalog: Catalog,
    base: Pack,
    store: PackStore,
    *,
    name: str | None = None,
    device: str | torch.device = "auto",
    epochs: int | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    write: bool = True,
    seed: int = 0,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = BATCH_SIZE,
    workers: int = 2,
) -> FullFinetuneResult:
    """Fine-tune every member of ``base`` on the catalog's decisions; optionally save the pack.

    ``base`` is a pack ``trainer.finetune_prepare.choose_base`` gives. Raises
    :class:`FinetuneError` when there is nothing to learn (no reviewed tracks scanned with
    ``base``, no covered tag with enough labels, ``base`` has a personal head) and
    ``moodlib.progress.Cancelled`` when ``cancel`` is set (checked between tracks and between
    steps, and last before the pack is saved); nothing is written then.
    """
    started = time.perf_counter()
    epochs = EPOCHS if epochs is None else int(epochs)
    if epochs < 1:
        raise FinetuneError(f"epochs must be at least 1, not {epochs}")
    check_base(base)
    report(progress, Progress.fraction(0.0, READING))
    data = corrections_from_catalog(catalog, base)
    chosen = select_tags(data, covered_by=base, too_few=TOO_FEW)

    tagger = Tagger(base, device=device)
    with tempfile.TemporaryDirectory(prefix="moodlib-finetune-") as cache:
        mels, unreadable = _decode_all(
            catalog, data, tagger, Path(cache), workers, cancel, progress
        )
        readable = np.array([m is not None for m in mels])
        chosen = dataclasses.replace(
            chosen, train=chosen.train & readable, held=chosen.held & readable
        )
        if not chosen.train.any():
            raise FinetuneError("none of the reviewed training tracks could be decoded")
        loss = TrainingLoss(FocalLoss(alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA))
        epoch_losses, epoch_seconds = _train(
            tagger, mels, data, np.flatnonzero(chosen.train), chosen.trainable, loss,
            epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed,
            cancel=cancel, progress=progress,
        )  # fmt: skip
        scored = np.flatnonzero(readable)
        personal = np.full_like(data.base_scores, np.nan)
        personal[scored] = _score(tagger, [mels[i] for i in scored], cancel, progress)

    base_scores = base_scores_for(data.base_scores, base)
    columns = np.array(chosen.trainable)
    rows = np.flatnonzero(chosen.train)
    result = FullFinetuneResult(
        None, tag_reports(data, chosen, base_scores, personal), data.extra_tags, 0.0,
        int(chosen.train.sum()), int(chosen.held.sum()), chosen.not_trained,
        epochs=epochs, epoch_losses=epoch_losses, epoch_seconds=epoch_seconds,
        train_loss_before=_track_loss(loss, base_scores, data, rows, columns),
        train_loss_after=_track_loss(loss, personal, data, rows, columns),
        unreadable=unreadable,
    )  # fmt: skip
    if write:
        settings = {
            "device": str(tagger.device), "seed": seed, "learning_rate": learning_rate,
            "batch_size": batch_size,
        }  # fmt: skip
        result.pack = _save(store, base, name, tagger.models, data, result, settings, cancel)
    report(progress, Progress.fraction(1.0, SAVED if write else "done"))
    result.seconds = time.perf_counter() - started
    return result


# -- decoding ---------------------------------------------------------------------------------


def _decode_all(
    catalog: Catalog,
    data: Corrections,
    tagger: Tagger,
    cache: Path,
    workers: int,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """Each track's mel ``(rows, frames)``, memory-mapped from ``cache`` (None: not decoded)."""
    paths = [catalog.track(int(t)).path for t in data.track_ids]
    mels: list[np.ndarray | None] = []
    unreadable: dict[str, str] = {}

    def decode(path: str) -> np.ndarray | str:
        try:
            return read_track(path, tagger).waveform
        except DecodeError as error:
            return error.reason
        except Exception as error:  # one unreadable file is that file's problem only
            return f"{type(error).__name__}: {error}"

    raise_if_cancelled(cancel)
    report(progress, Progress.fraction(0.0, "decoding"))
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    try:
        # A few files ahead, not the whole library: decoded audio is large.
        for index, decoded in enumerate(read_ahead(pool, decode, paths, 2 * max(1, workers))):
            raise_if_cancelled(cancel)
            if isinstance(decoded, str):
                unreadable[paths[index]] = decoded
                mels.append(None)
            else:
                with torch.inference_mode():
                    mel = tagger.mel(decoded).float().cpu().numpy()
                file = cache / f"{index}.npy"
                np.save(file, mel)
                mels.append(np.load(file, mmap_mode="r"))
            report(progress, Progress.fraction((index + 1) / len(paths), "decoding"))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return mels, unreadable


# -- training ---------------------------------------------------------------------------------


def _tag_logits(tagger: Tagger, inputs: torch.Tensor, columns: list[int], autocast) -> torch.Tensor:
    """Logits of the Tagger's ensemble probability of the tags ``columns``, differentiably."""
    probability = tagger.ensemble(inputs, tags=columns, autocast=autocast)[0]
    probability = probability.clamp(EPSILON, 1 - EPSILON)
    return torch.log(probability) - torch.log1p(-probability)


@contextlib.contextmanager
def _native_cpu_convolutions(device: torch.device) -> Iterator[None]:
    """oneDNN off while training on the CPU: with it, an epoch of the starter pack's two
    musicnn members took 150 s per 100 tracks instead of 113 s on a two-core CPU (its
    convolution backward is the slow part; its forward is faster, so scans and the evaluation
    keep it). The switch is process-wide: a scan running meanwhile gets slower, not different."""
    if device.type != "cpu":
        yield
        return
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def _train_mode(models: dict[str, nn.Module]) -> None:
    """Train mode with every batch-norm layer kept in eval mode (the base pack's statistics)."""
    for model in models.values():
        model.train()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _train(
    tagger: Tagger,
    mels: list[np.ndarray | None],
    data: Corrections,
    rows: np.ndarray,
    columns: list[int],
    loss: TrainingLoss,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
) -> tuple[list[float], list[float]]:
    """Fine-tune the Tagger's members in place; the mean batch loss and the seconds of each
    epoch."""
    device, models = tagger.device, tagger.models
    frames = tagger.pack.segmenting.frames
    n_mels = int(tagger.pack.frontend.get("n_mels", mels[rows[0]].shape[0]))
    rows_in = mels[rows[0]].shape[0]
    augmentation = Augmentation(
        specaugment=SpecAugment(
            time_masks=2, time_width=max(1, frames // 8), freq_masks=2,
            freq_width=max(1, n_mels // 8), probability=SPECAUGMENT_PROBABILITY,
        ),
        mixup=dict(MIXUP) if len(rows) > 1 else None,
        spec_rows=n_mels if rows_in > n_mels else None,
    )  # fmt: skip
    autocast = autocast_for(device) or contextlib.nullcontext
    if device.type == "cuda":
        for model in models.values():
            model.to(memory_format=torch.channels_last)
    parameters = [p for model in models.values() for p in model.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    targets = torch.from_numpy(data.labels[:, columns].astype(np.float32))
    masks = torch.from_numpy(data.known[:, columns].astype(np.float32))
    steps_per_epoch = -(-len(rows) // batch_size)
    total_steps = epochs * steps_per_epoch
    epoch_losses, epoch_seconds = [], []
    fork = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork), _native_cpu_convolutions(device):
        torch.manual_seed(seed)
        _train_mode(models)
        try:
            for epoch in range(epochs):
                stage = f"training, epoch {epoch + 1}/{epochs}"
                report(progress, Progress.fraction(epoch / epochs, stage))
                epoch_start = time.perf_counter()
                order = rows[torch.randperm(len(rows)).numpy()]
                values = []
                for step in range(steps_per_epoch):
                    raise_if_cancelled(cancel)
                    picked = order[step * batch_size : (step + 1) * batch_size]
                    pieces = []
                    for i in picked:
                        start = crop_start(mels[i].shape[1], frames, mode="random")
                        pieces.append(crop(mels[i], start, frames))
                    batch = (
                        torch.from_numpy(np.stack(pieces)).to(device),
                        targets[picked].to(device),
                        masks[picked].to(device),
                    )
                    inputs, batch_targets, batch_mask = augmentation(*batch)
                    logits = _tag_logits(tagger, inputs, columns, autocast)
                    value = loss(logits, batch_targets, batch_mask)
                    optimizer.zero_grad(set_to_none=True)
                    value.backward()
                    optimizer.step()
                    values.append(float(value.detach()))
                    done = epoch * steps_per_epoch + step + 1
                    report(progress, Progress.fraction(done / total_steps, stage))
                epoch_losses.append(float(np.mean(values)))
                epoch_seconds.append(time.perf_counter() - epoch_start)
        finally:
            for model in models.values():
                model.eval()
    return epoch_losses, epoch_seconds


# -- evaluation -------------------------------------------------------------------------------


def _score(
    tagger: Tagger,
    mels: list[np.ndarray],
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
) -> np.ndarray:
    """Track scores ``(tracks, 56)`` from the Tagger (its segments, members and averaging)."""
    scores = []
    for start in range(0, len(mels), EVAL_TRACKS):
        raise_if_cancelled(cancel)
        chunk = [torch.from_numpy(np.array(m)) for m in mels[start : start + EVAL_TRACKS]]
        scores += [p.scores for p in tagger.predict_mels(chunk)]
        done = min(1.0, (start + EVAL_TRACKS) / len(mels))
        report(progress, Progress.fraction(done, "evaluating"))
    return np.stack(scores)


def _track_loss(
    loss: TrainingLoss, scores: np.ndarray, data: Corrections, rows: np.ndarray, columns
) -> float:
    """The training loss of track scores (no augmentation) on ``rows``' known labels."""
    probability = np.clip(scores[np.ix_(rows, columns)], EPSILON, 1 - EPSILON)
    logits = torch.from_numpy(np.log(probability) - np.log1p(-probability)).float()
    targets = torch.from_numpy(data.labels[np.ix_(rows, columns)].astype(np.float32))
    mask = torch.from_numpy(data.known[np.ix_(rows, columns)].astype(np.float32))
    return float(loss(logits, targets, mask))


# -- the pack ---------------------------------------------------------------------------------


def _save(
    store: PackStore,
    base: Pack,
    name: str | None,
    models: dict[str, nn.Module],
    data: Corrections,
    result: FullFinetuneResult,
    settings: dict,
    cancel: threading.Event | None,
) -> Pack:
    """The pack: the base with the fine-tuned member weights, and how they were trained."""
    weights = {}
    for member in base.members:
        state = models[member.name].state_dict()
        weights[member.weights] = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    counts = {r.tag: {"positives": r.positives, "negatives": r.negatives} for r in result.reports}
    provenance = {
        "method": METHOD,
        "epochs": result.epochs,
        **settings,
        "optimizer": f"AdamW (weight decay {WEIGHT_DECAY})",
        "loss": f"masked focal loss (alpha {FOCAL_ALPHA}, gamma {FOCAL_GAMMA})",
        "augmentation": {
            "mixup": MIXUP,
            "specaugment": {
                "time_masks": 2, "freq_masks": 2, "probability": SPECAUGMENT_PROBABILITY,
            },
        },
        "batch_norm": "frozen (the base pack's statistics)",
        "train_tracks": result.train_tracks,
        "unreadable_tracks": len(result.unreadable),
        "label_counts": counts,
        "trained_tags": [r.tag for r in result.reports if r.trained],
        "not_trained": result.not_trained,
        "train_loss": {
            "base": result.train_loss_before,
            "fine_tuned": result.train_loss_after,
            "per_epoch": result.epoch_losses,
        },
    }  # fmt: skip
    description = (
        f"{base.name} fine-tuned end to end on {result.train_tracks} of "
        f"{len(data.track_ids)} reviewed tracks"
    )
    return save_pack(
        store, base, name, data, result, weights=weights, description=description,
        provenance=provenance, cancel=cancel,
    )  # fmt: skip


__all__ = ["FullFinetuneResult", "finetune_full"]
