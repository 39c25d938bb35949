"""Recipes: one TOML file per paper run (``trainer/recipes/NAME.toml``) read into a ``Recipe``.

A recipe says everything a run needs and nothing about where the data is: the paper and the
table row it reproduces (with the paper's numbers, for ``moodlib-train reproduce``), the
network(s), the input crops and evaluation segments, augmentations, loss, optimiser phases and
learning-rate schedule, weight averaging, the training strategy and which trained networks make
the exported pack. ``docs/trainer.md`` lists the keys; the recipes are their examples.

Two tables are merged rather than read as they are:

- ``extends = "OTHER"``: start from recipe OTHER and override it key by key (tables merge,
  everything else, lists included, is replaced), so that sibling runs of one paper share one
  description.
- ``[short]``: a partial recipe merged over the rest when ``short=True``, the CPU-sized version
  the tests run (few epochs, small crops and batches).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moodlib.packs import Segmenting
from trainer import TrainerError
from trainer.losses import DB_VARIANTS

RECIPES_DIR = Path(__file__).parent / "recipes"

LOSSES = ("bce", "focal", "cb_focal", "db_focal")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "warmup_linear", "plateau")
STRATEGIES = ("standard", "coteaching", "noisy_student")
BALANCING = ("none", "single_label")
SAMPLERS = ("shuffle", "class_aware")
SELECTION_METRICS = ("PR-AUC-macro", "ROC-AUC-macro", "PR-AUC-micro", "ROC-AUC-micro")


class RecipeError(TrainerError):
    """A recipe that cannot be found or read, or that breaks a rule; names the recipe."""


@dataclass(frozen=True)
class PaperRow:
    """The paper a recipe reproduces and the numbers it reports for that run (test set)."""

    citation: str
    title: str
    row: str
    metrics: dict[str, float] = field(default_factory=dict)
    """Reported test metrics by :mod:`trainer.metrics` name (``"PR-AUC-macro"``)."""
    members: dict[str, dict[str, float]] = field(default_factory=dict)
    """Reported metrics of single networks of an ensemble row, by network name."""


@dataclass(frozen=True)
class NetworkSpec:
    """One network: a registered architecture and its keyword configuration."""

    name: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    output_bias_prior: float | None = None
    """Initialise the output biases to this prior's log-odds (Lin et al.'s focal-loss init)."""


@dataclass(frozen=True)
class DataSpec:
    crop_frames: int
    """Training crop length in frames of the input spectrogram."""
    batch_size: int
    segmenting: Segmenting
    """How validation, test and the exported pack cut a track into segments."""
    crop_mode: str = "random"
    inputs: tuple[str, ...] = ("melspecs",)
    """Source folders of the dataset whose rows, stacked, are the network's input."""
    balancing: str = "none"
    sampler: str = "shuffle"
    eval_batch_segments: int = 64


@dataclass(frozen=True)
class AugmentSpec:
    mixup: dict[str, Any] | None = None
    """:func:`trainer.data.augment.mixup` keywords (``alpha``, ...), or None."""
    specaugment: dict[str, Any] | None = None
    """:class:`trainer.data.augment.SpecAugment` keywords, or None."""
    gaussian_noise: float | None = None
    """Weight of standard Gaussian noise added to the inputs, or None."""


@dataclass(frozen=True)
class PhaseSpec:
    """A stretch of epochs with one optimiser (Adam then SGD, as in the MTG baseline)."""

    optimizer: str
    lr: float
    epochs: int | None = None
    """Length of the phase; None for the last phase: until the end of training."""
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    reload_best: bool = False
    """Start the phase from the best weights so far (the MTG baseline and USC SAIL do)."""


@dataclass(frozen=True)
class ScheduleSpec:
    """The learning-rate shape inside a phase (:class:`trainer.schedule.LearningRate`)."""

    name: str = "constant"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainSpec:
    epochs: int
    selection_metric: str = "PR-AUC-macro"
    """Validation metric that picks the best epoch and drives early stopping."""
    patience: int | None = None
    """Stop after this many epochs without a better validation score (None: never)."""
    seed: int = 0


@dataclass(frozen=True)
class SwaSpec:
    """Stochastic weight averaging (Izmailov et al. 2018) as CP-JKU use it."""

    every: int = 3
    """Add the weights to the average every this many epochs."""
    start_epoch: int = 0
    """Epochs completed before the first addition."""
    snapshots: int = 4
    """Keep the averaged network (with re-estimated batch norm) of the last this many additions."""


@dataclass(frozen=True)
class StrategySpec:
    name: str = "standard"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportSpec:
    members: tuple[str, ...] = ("model",)
    """Trained networks that make the pack (``fnmatch`` patterns over the run's members)."""
    weights: str | tuple[float, ...] = "equal"
    """``equal``, ``fit`` (:func:`trainer.ensemble.fit_weights` on validation) or numbers."""


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    paper: PaperRow
    model: NetworkSpec
    data: DataSpec
    augment: AugmentSpec
    loss: dict[str, Any]
    optim: tuple[PhaseSpec, ...]
    schedule: ScheduleSpec
    train: TrainSpec
    strategy: StrategySpec
    export: ExportSpec
    frontend: dict[str, Any] = field(default_factory=dict)
    """``MelFrontend`` keywords of the exported pack: the input the networks were trained on."""
    swa: SwaSpec | None = None
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    """The merged TOML tables, as read (written into the run folder and the pack)."""


def recipe_names() -> list[str]:
    """Names of the recipes shipped in ``trainer/recipes``, sorted."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.toml"))


def load_recipe(
    name_or_path: str | Path, *, short: bool = False, overrides: Mapping[str, Any] | None = None
) -> Recipe:
    """Read a shipped recipe by name, or a TOML file by path.

    Parameters
    ----------
    name_or_path
        ``"usc2020_shortchunk_focal"`` or a path to a ``.toml`` file.
    short
        Merge the recipe's ``[short]`` table over it (the CPU-sized configuration).
    overrides
        Tables merged last, e.g. ``{"train": {"epochs": 3}}``.
    """
    raw = resolve_recipe(name_or_path)
    if short:
        raw = merge(raw, raw.get("short", {}))
    if overrides:
        raw = merge(raw, overrides)
    raw.pop("short", None)
    source = str(name_or_path)
    try:
        return recipe_from_dict(raw, source=source)
    except (KeyError, TypeError, ValueError) as error:
        raise RecipeError(f"recipe {source}: {_describe(error)}") from error


def resolve_recipe(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The recipe's tables with its ``extends`` chain merged in (``[short]`` left as is)."""
    path = _recipe_path(name_or_path)
    if str(path) in _seen:
        raise RecipeError(f"recipe {path}: 'extends' loops back to itself")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RecipeError(f"recipe {path}: cannot read it ({error.strerror})") from error
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"recipe {path}: not valid TOML ({error})") from error
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base = resolve_recipe(parent, (*_seen, str(path)))
    base.pop("name", None)
    return merge(base, raw)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``: tables merge key by key, other values are replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def recipe_from_dict(raw: Mapping[str, Any], *, source: str = "") -> Recipe:
    """Build and check a :class:`Recipe` from merged tables (``KeyError``/``ValueError``)."""
    paper = raw["paper"]
    data = raw["data"]
    train = raw["train"]
    loss = dict(raw.get("loss", {"name": "bce"}))
    strategy = dict(raw.get("strategy", {"name": "standard"}))
    schedule = dict(raw.get("schedule", {"name": "constant"}))
    export = raw.get("export", {})
    recipe = Recipe(
        name=raw["name"],
        description=raw.get("description", ""),
        paper=PaperRow(
            citation=paper["citation"],
            title=paper["title"],
            row=paper["row"],
            metrics={k: float(v) for k, v in paper.get("metrics", {}).items()},
            members={
                name: {k: float(v) for k, v in metrics.items()}
                for name, metrics in paper.get("members", {}).items()
            },
        ),
        model=network_spec(raw["model"], default_name="model"),
        data=DataSpec(
            crop_frames=int(data["crop_frames"]),
            batch_size=int(data["batch_size"]),
            segmenting=Segmenting(**data["segmenting"]),
            crop_mode=data.get("crop_mode", "random"),
            inputs=tuple(data.get("inputs", ("melspecs",))),
            balancing=data.get("balancing", "none"),
            sampler=data.get("sampler", "shuffle"),
            eval_batch_segments=int(data.get("eval_batch_segments", 64)),
        ),
        augment=AugmentSpec(**raw.get("augment", {})),
        loss=loss,
        optim=tuple(PhaseSpec(**phase) for phase in raw["optim"]["phases"]),
        schedule=ScheduleSpec(
            name=schedule.pop("name"), params={k: v for k, v in schedule.items()}
        ),
        train=TrainSpec(**train),
        strategy=StrategySpec(name=strategy.pop("name"), params=strategy),
        export=ExportSpec(
            members=tuple(export.get("members", ("model",))),
            weights=_export_weights(export.get("weights", "equal")),
        ),
        frontend=dict(raw.get("frontend", {})),
        swa=SwaSpec(**raw["swa"]) if "swa" in raw else None,
        source=source,
        raw=dict(raw),
    )
    _check(recipe)
    return recipe


def network_spec(table: Mapping[str, Any], *, default_name: str) -> NetworkSpec:
    """A :class:`NetworkSpec` from a ``[model]``-like table."""
    prior = table.get("output_bias_prior")
    return NetworkSpec(
        name=table.get("name", default_name),
        architecture=table["architecture"],
        config=dict(table.get("config", {})),
        output_bias_prior=None if prior is None else float(prior),
    )


def _export_weights(weights: Any) -> str | tuple[float, ...]:
    if isinstance(weights, str):
        if weights not in ("equal", "fit"):
            raise ValueError(f"export weights must be 'equal', 'fit' or numbers, not {weights!r}")
        return weights
    return tuple(float(w) for w in weights)


def _check(recipe: Recipe) -> None:
    rules = (
        (recipe.loss.get("name") in LOSSES, f"loss name must be one of {LOSSES}"),
        (
            recipe.loss.get("variant", "paper") in DB_VARIANTS,
            f"loss variant (db_focal) must be one of {DB_VARIANTS}",
        ),
        (recipe.schedule.name in SCHEDULES, f"schedule name must be one of {SCHEDULES}"),
        (recipe.strategy.name in STRATEGIES, f"strategy name must be one of {STRATEGIES}"),
        (recipe.data.balancing in BALANCING, f"data balancing must be one of {BALANCING}"),
        (recipe.data.sampler in SAMPLERS, f"data sampler must be one of {SAMPLERS}"),
        (
            recipe.train.selection_metric in SELECTION_METRICS,
            f"selection_metric must be one of {SELECTION_METRICS}",
        ),
        (all(p.optimizer in OPTIMIZERS for p in recipe.optim), f"optimizers: {OPTIMIZERS}"),
        (bool(recipe.optim), "optim.phases needs at least one phase"),
        (recipe.train.epochs >= 1, "train.epochs must be at least 1"),
        (recipe.data.crop_frames >= 1, "data.crop_frames must be positive"),
        (recipe.data.batch_size >= 1, "data.batch_size must be positive"),
    )
    for holds, rule in rules:
        if not holds:
            raise ValueError(rule)


def _recipe_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe {path}: no such file")
        return path
    shipped = RECIPES_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        known = ", ".join(recipe_names())
        raise RecipeError(f"no recipe named {name_or_path!r} (shipped recipes: {known})")
    return shipped


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing key {error.args[0]!r}"
    return str(error)
