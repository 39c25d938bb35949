"""``moodlib-train``: the trainer's command line.

Each subcommand is a pair of functions, ``_add_NAME(subparsers)`` declaring its arguments and
``_run_NAME(args) -> int`` doing the work; adding one means writing that pair and listing the
first in :data:`_SUBCOMMANDS`. A usage error exits with 2 (argparse's convention), a failure the
user can act on (a missing file, a failed download) with 1 and one line on stderr.
"""

from __future__ import annotations

import argparse
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
    parser.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from trainer.data.synth import generate

    dataset = generate(args.outdir, tracks=args.tracks, frames=args.frames, seed=args.seed)
    print(f"split files: {dataset.split_dir}")
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


def _load_matrix(path: Path) -> np.ndarray:
    matrix = np.load(path, allow_pickle=False)
    if matrix.ndim != 2:
        raise ValueError(f"{path}: expected a (tracks, tags) matrix, found shape {matrix.shape}")
    return matrix


_SUBCOMMANDS = (_add_evaluate, _add_synth, _add_download)
