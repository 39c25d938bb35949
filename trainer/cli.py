"""``moodlib-train``: the trainer's command line.

Each subcommand is a pair of functions, ``_add_NAME(subparsers)`` declaring its arguments and
``_run_NAME(args) -> int`` doing the work; adding one means writing that pair and listing the
first in :data:`_SUBCOMMANDS`. A usage error exits with 2 (argparse's convention), a failure the
user can act on (a missing file, a failed download) with 1 and one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import moodlib
from trainer import TrainerError

PROG = "moodlib-train"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``moodlib-train`` with ``argv`` (``sys.argv[1:]`` by default); return the exit status."""
    parser = build_parser()
    _log_to_stderr()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return 0 if exit_.code is None else int(exit_.code)
    try:
        return args.run(args)
    except (TrainerError, OSError, ValueError) as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train and evaluate moodlib's mood/theme taggers (MediaEval 2019-2021).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {moodlib.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="the official MediaEval metrics of a prediction matrix",
        description="Print one METRIC<TAB>VALUE line per official MediaEval metric: ROC-AUC and "
        "PR-AUC (macro, micro) from the scores, and precision, recall and F-score (macro, "
        "micro) when binary decisions are given.",
    )
    parser.add_argument(
        "groundtruth", type=Path, metavar="GROUNDTRUTH", help=".npy binary matrix (tracks x tags)"
    )
    parser.add_argument(
        "predictions", type=Path, metavar="PREDICTIONS", help=".npy scores of the same shape"
    )
    parser.add_argument("-d", "--decisions", type=Path, help=".npy binary decisions, same shape")
    parser.add_argument("-o", "--output", type=Path, help="also write the lines to this TSV file")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from trainer.metrics import evaluate, format_results

    decisions = _load_matrix(args.decisions) if args.decisions else None
    results = evaluate(_load_matrix(args.groundtruth), _load_matrix(args.predictions), decisions)
    lines = format_results(results)
    print(lines, end="")
    if args.output:
        args.output.write_text(lines, encoding="utf-8")
    return 0


def _add_synth(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a small synthetic dataset in the official layout",
        description="Write OUTDIR/split-0/*.tsv and OUTDIR/melspecs/NN/ID.npy: synthetic "
        "mel-spectrograms whose tags are a learnable function of the signal, for tests.",
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR", help="folder to write into")
    parser.add_argument("--tracks", type=int, default=300, help="number of tracks (default 300)")
    parser.add_argument("--frames", type=int, default=1000, help="frames per track (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--difficulty",
        choices=("realistic", "easy"),
        default="realistic",
        help="realistic: a narrow band per tag and MTG-Jamendo's imbalance (default); easy: a "
        "broad band region per group of 7 tags, which a few CPU epochs learn",
    )
    parser.add_argument(
        "--audio",
        action="store_true",
        help="write audio files (OUTDIR/audio/NN/ID.wav, easy kind) instead of "
        "mel-spectrograms, for 'moodlib-train run --audio'",
    )
    parser.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from trainer.data.synth import generate

    dataset = generate(
        args.outdir,
        tracks=args.tracks,
        frames=args.frames,
        seed=args.seed,
        difficulty="easy" if args.audio else args.difficulty,
        audio=args.audio,
    )
    print(f"split files: {dataset.split_dir}")
    if dataset.audio_root is not None:
        print(f"audio: {dataset.audio_root}")
    else:
        print(f"mel-spectrograms: {dataset.mel_root}")
    return 0


def _add_download(subparsers: argparse._SubParsersAction) -> None:
    from trainer.data.download import BASE_URL, DATA_TYPES

    parser = subparsers.add_parser(
        "download",
        help="download, verify and unpack the MTG-Jamendo mood/theme archives",
        description="Fetch every archive of the sha256 list, verify its sha256, unpack it into "
        "OUTDIR; partial downloads resume, verified archives are skipped on later runs.",
    )
    parser.add_argument(
        "--type", dest="data_type", required=True, choices=DATA_TYPES, help="what to download"
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR", help="folder to unpack into")
    parser.add_argument(
        "--base-url",
        default=BASE_URL,
        help="archives are at BASE_URL/TYPE/FILE (default: %(default)s)",
    )
    parser.add_argument(
        "--sha256-list",
        help="local file or URL of the 'SHA256 FILENAME' list (default: the official list in the "
        "MTG-Jamendo repository)",
    )
    parser.add_argument(
        "--remove-archives", action="store_true", help="delete each archive once it is unpacked"
    )
    parser.set_defaults(run=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from trainer.data.download import download_dataset

    download_dataset(
        args.data_type,
        args.outdir,
        base_url=args.base_url,
        sha256_list=args.sha256_list,
        keep_archives=not args.remove_archives,
    )
    return 0


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    from trainer.recipe import recipe_names

    parser = subparsers.add_parser(
        "run",
        help="train a recipe (one paper run) on a dataset",
        description="Train RECIPE on DATA (DATA/split-N/*.tsv and DATA/melspecs/NN/ID.npy, the "
        "layout of the official download and of 'moodlib-train synth'), score it on the "
        "validation and test sets, and write everything 'export' needs into the run folder. "
        f"Shipped recipes: {', '.join(recipe_names())}. Launched by torchrun, every process "
        "trains on its share of the data (DDP).",
    )
    parser.add_argument("recipe", metavar="RECIPE", help="a shipped recipe name or a .toml file")
    _add_training_options(parser)
    parser.add_argument("--out", type=Path, help="run folder (default: runs/RECIPE)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
    parser.add_argument(
        "--unlabeled",
        type=Path,
        help="noisy student only: a folder of tracks without labels in the dataset layout "
        "(default: the tracks of DATA that no split file lists)",
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="end this session after N epochs; --resume continues (for time-sliced machines)",
    )
    parser.set_defaults(run=_run_run)


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder (split-N/, melspecs/)"
    )
    parser.add_argument("--split", type=int, default=0, help="which split-N (default 0)")
    parser.add_argument(
        "--audio",
        type=Path,
        metavar="AUDIO",
        help="train on the audio files (AUDIO/PATH of each split line) through the recipe's "
        "frontend instead of DATA's mel-spectrograms; computed once into DATA/audio-cache "
        "(with --unlabeled, that folder holds audio files too)",
    )
    parser.add_argument(
        "--short", action="store_true", help="the recipe's CPU-sized [short] configuration"
    )
    parser.add_argument("--epochs", type=int, help="train this many epochs (cuts the schedule)")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="data loading processes (default: up to 4)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_run(args: argparse.Namespace) -> int:
    from trainer.loop import run

    recipe = _load_recipe(args.recipe, args, seed=args.seed)
    result = run(recipe, _run_options(args, args.out or Path("runs") / recipe.name, args.resume))
    if not result.finished:
        print(
            f"stopped after {args.stop_after} epochs; continue with --resume --out {result.run_dir}"
        )
        return 0
    if result.result is not None:
        _print_metrics(result.result)
        print(f"run folder: {result.run_dir}")
    return 0


def _load_recipe(name: str, args: argparse.Namespace, *, seed: int | None = None):
    from trainer.recipe import load_recipe

    overrides: dict = {}
    if args.epochs is not None:
        overrides.setdefault("train", {})["epochs"] = args.epochs
    if seed is not None:
        overrides.setdefault("train", {})["seed"] = seed
    return load_recipe(name, short=args.short, overrides=overrides)


def _run_options(args: argparse.Namespace, out: Path, resume: bool):
    from trainer.context import RunOptions

    return RunOptions(
        data_dir=args.data,
        out_dir=out,
        device=args.device,
        resume=resume,
        workers=args.workers,
        show_progress=not args.no_progress,
        split=args.split,
        unlabeled_dir=getattr(args, "unlabeled", None),
        stop_after=getattr(args, "stop_after", None),
        audio_dir=args.audio,
    )


def _print_metrics(result: dict) -> None:
    for subset in ("validation", "test"):
        for name, value in result["metrics"][subset].items():
            shown = "n/a" if value is None else f"{value:.6f}"
            print(f"{subset}\t{name}\t{shown}")


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="turn finished runs into a model pack the app loads",
        description="Write a model pack from RUN (its exported networks, ensemble weights and "
        "F-optimal thresholds fitted on validation, frontend, evaluation segments, provenance). "
        "With several runs, the ensemble weights and thresholds are fitted anew on validation.",
    )
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="finished run folders")
    parser.add_argument("--name", required=True, help="name of the pack (a folder name)")
    parser.add_argument(
        "--store", type=Path, help="pack store folder (default: moodlib's user packs folder)"
    )
    parser.add_argument("--version", dest="pack_version", default="1.0", help="pack version")
    parser.add_argument("--description", help="one line shown in the app")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from moodlib.packs import PackError
    from trainer.export import export_runs

    try:
        pack = export_runs(
            args.runs,
            name=args.name,
            store_dir=args.store,
            version=args.pack_version,
            description=args.description,
        )
    except PackError as error:
        raise TrainerError(str(error)) from error
    print(f"pack {pack.name}: {pack.root} ({len(pack.members)} member(s))")
    return 0


def _add_reproduce(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="run recipes and print our numbers beside the papers'",
        description="Run each recipe into OUT/RECIPE (a finished run is reused, an unfinished "
        "one resumed) and print a table of the papers' test PR-AUC and ROC-AUC (macro) beside "
        "ours.",
    )
    _add_training_options(parser)
    parser.add_argument(
        "--recipes", help="comma-separated recipe names or files (default: every shipped recipe)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / "reproduce", help="folder of the runs"
    )
    parser.set_defaults(run=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from trainer.export import read_result
    from trainer.loop import run
    from trainer.recipe import recipe_names
    from trainer.rundir import RESULT

    names = args.recipes.split(",") if args.recipes else recipe_names()
    rows = []
    for name in names:
        recipe = _load_recipe(name.strip(), args)
        out = args.out / recipe.name
        if (out / RESULT).exists():
            result = read_result(out)
        else:
            outcome = run(recipe, _run_options(args, out, resume=out.exists()))
            result = outcome.result
        if result is not None:
            rows.append((recipe, result))
    print(format_comparison(rows), end="")
    return 0


def format_comparison(rows: Sequence[tuple]) -> str:
    """The papers' test PR-AUC / ROC-AUC (macro) beside ours, one line per recipe."""
    header = ("recipe", "paper row", "PR-AUC paper", "PR-AUC ours", "ROC-AUC paper", "ROC-AUC ours")
    lines = ["\t".join(header)]
    for recipe, result in rows:
        ours = result["metrics"]["test"]
        reported = recipe.paper.metrics
        cells = [recipe.name, recipe.paper.row]
        for metric in ("PR-AUC-macro", "ROC-AUC-macro"):
            cells.append(f"{reported[metric]:.4f}" if metric in reported else "-")
            cells.append(f"{ours[metric]:.4f}")
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _add_hpcp(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hpcp",
        help="compute the pitch-class profiles Mirable's recipes read",
        description="Decode every track of DATA/split-N from AUDIO and write its 12-bin HPCP, "
        "frame-aligned with the dataset's mel-spectrograms, to DATA/hpcp/NN/ID.npy.",
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (split-N/)")
    parser.add_argument("--audio", type=Path, required=True, help="root of the audio files")
    parser.add_argument("--split", type=int, default=0, help="which split-N (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_hpcp)


def _run_hpcp(args: argparse.Namespace) -> int:
    from trainer.data.hpcp import write_hpcp

    report = write_hpcp(args.data, args.audio, split=args.split, show_progress=not args.no_progress)
    for line in report.failed:
        print(f"{PROG} hpcp: skipped {line}", file=sys.stderr)
    print(
        f"HPCP written: {report.computed}, already there: {report.reused}, failed: "
        f"{len(report.failed)}"
    )
    return 1 if report.failed else 0


def _log_to_stderr() -> None:
    logger = logging.getLogger("trainer")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _load_matrix(path: Path) -> np.ndarray:
    matrix = np.load(path, allow_pickle=False)
    if matrix.ndim != 2:
        raise ValueError(f"{path}: expected a (tracks, tags) matrix, found shape {matrix.shape}")
    return matrix


def _add_finetune(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="a personal pack learned from your review decisions in the catalog",
        description="Learn from the tags you accepted, rejected and added (moodlib review or "
        "the app) a personal pack on top of a base pack, and print the held-out PR-AUC and "
        "ROC-AUC of the base and the personal pack per tag. Reviewed tracks the base pack has "
        "not scored are scanned with it first, as the app's retrain button does. The new pack "
        "is installed but not made active: `moodlib models use NAME` switches to it.",
    )
    parser.add_argument(
        "--from-catalog", action="store_true", required=True,
        help="learn from the catalog's decisions (MOODLIB_HOME/catalog.sqlite)",
    )  # fmt: skip
    parser.add_argument(
        "--base",
        help="base pack (default: the active pack; a personal pack stands for its own base)",
    )
    parser.add_argument(
        "--name", help="name of the new pack (default: personal-YYYYMMDD-HHMM, then -2, -3...)"
    )
    parser.add_argument(
        "--full", action="store_true",
        help="fine-tune the base networks end to end (slow without a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda: for scoring, and training with --full"
    )
    parser.add_argument("--epochs", type=int, default=None, help="with --full: epochs")
    parser.set_defaults(run=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> int:
    import functools
    import signal
    import threading

    from tqdm import tqdm

    from moodlib import config
    from moodlib.inference import Tagger
    from moodlib.library.catalog import Catalog
    from moodlib.packs import PackError
    from moodlib.packstore import PackStore
    from moodlib.progress import Cancelled, tqdm_callback
    from trainer.finetune import finetune
    from trainer.finetune_prepare import FinetuneError, prepare

    store = PackStore()
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    bar = tqdm(desc="retraining", file=sys.stderr, dynamic_ncols=True, disable=None, leave=False)
    progress = tqdm_callback(bar)
    try:
        with Catalog(config.catalog_path()) as catalog:
            prepared = prepare(
                catalog, store, args.base, lambda pack: Tagger(pack, device=args.device),
                name=args.name, progress=progress, cancel=cancel,
            )  # fmt: skip
            gone = [(path, "no such file") for path in prepared.scan.missing_paths]
            for path, reason in [(r.path, r.error) for r in prepared.scan.failed] + gone:
                print(f"{PROG}: {path}: {reason}, left out", file=sys.stderr)
            learn = finetune
            if args.full:
                from trainer.finetune_full import finetune_full

                learn = functools.partial(finetune_full, device=args.device, epochs=args.epochs)
            result = learn(
                catalog, prepared.base, store, name=prepared.name, cancel=cancel, progress=progress
            )
    except PackError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except FinetuneError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except Cancelled:
        print("cancelled: no pack written", file=sys.stderr)
        return 130
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    print(result.table())
    scored = f", {len(prepared.scored)} of them scored with it first" if prepared.scored else ""
    print(
        f"personal pack {result.pack.name} (base {prepared.base.name}{scored}): "
        f"{result.train_tracks} training and {result.held_out_tracks} held-out tracks, "
        f"{result.seconds:.1f} s; switch to it with: moodlib models use {result.pack.name}",
        file=sys.stderr,
    )
    return 0


_SUBCOMMANDS = (
    _add_evaluate,
    _add_synth,
    _add_download,
    _add_hpcp,
    _add_run,
    _add_export,
    _add_reproduce,
    _add_finetune,
)


if __name__ == "__main__":
    sys.exit(main())
