"""``moodlib``: the headless face of the app (scan, show, review, write, undo, models).

Exit status: 0 when every file went through, 1 when some failed (each reported on stderr),
2 on usage errors. Progress bars go to stderr; a summary line ends each command.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from moodlib import __version__, config, vocabulary
from moodlib.reports import scan_report, tagging_summary, track_report

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in what the user asked for (exit status 2)."""


def _progress_bar(total: int | None, desc: str, unit: str = "file"):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None,
        leave=False,
    )


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _open_catalog():
    """The catalog, after settling what an interrupted write or undo left (``recover``)."""
    from moodlib.library.catalog import Catalog
    from moodlib.metadata.journal import recover

    catalog = Catalog(config.catalog_path())
    recovery = recover(catalog)
    if recovery.summary():
        _err(f"moodlib: {recovery.summary()}")
    for path, reason in recovery.unchecked:
        _err(f"error: {path}: {reason}")
    return catalog


def _store():
    from moodlib.packstore import PackStore

    return PackStore()


def _pack(name: str | None):
    from moodlib.packs import PackError

    name = name or config.active_pack_name()
    try:
        return _store().get(name)
    except PackError as error:
        raise UsageError(str(error)) from error


# -- scan ---------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    from moodlib.inference import Tagger
    from moodlib.pipeline import scan
    from moodlib.progress import tqdm_callback

    paths = args.paths or config.library_folders()
    if not paths:
        raise UsageError("the library has no folders yet: name the folders or files to scan")
    pack = _pack(args.pack)
    config.add_library_folders(path for path in args.paths if Path(path).is_dir())
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    bar = _progress_bar(None, f"scanning for {pack.name}")

    def make_tagger() -> Tagger:
        """Called by the scan only when a file needs tagging: a rescan loads no model."""
        try:
            tagger = Tagger(pack, device=args.device)
        except RuntimeError as error:
            raise UsageError(str(error)) from error
        bar.set_description(f"tagging with {pack.name} on {tagger.device.type}", refresh=False)
        return tagger

    try:
        with _open_catalog() as catalog:
            result = scan(
                paths,
                catalog,
                make_tagger,
                pack_name=pack.name,
                workers=args.workers,
                progress=tqdm_callback(bar),
                cancel=cancel,
            )
            bar.close()
            for missing in result.missing_paths:
                _err(f"error: {missing}: no such file or folder")
            for failed in result.failed:
                _err(f"error: {failed.path}: {failed.error}")
            max_tags = _max_tags(args)
            written = []
            if args.write and not result.cancelled:
                written = _write(
                    catalog,
                    pack,
                    paths,
                    max_tags,
                    dry_run=args.dry_run,
                    replace=args.replace_existing,
                )
            # Unchanged files are only counted (a rescan of a large library stays quick),
            # unless the JSON report lists every file.
            tracks = [
                catalog.track(item.track_id)
                for item in result.results
                if args.json or not item.skipped
            ]
            taggings = {
                track.path: catalog.tagging(track, pack.name, pack.thresholds, max_tags)
                for track in tracks
            }
            if args.json:
                Path(args.json).write_text(
                    json.dumps(scan_report(catalog, pack, tracks, taggings, max_tags), indent=2)
                    + "\n"
                )
    finally:
        signal.signal(signal.SIGINT, previous)
    changed = sum(r.changed for r in written)
    write_errors = sum(bool(r.error) for r in written)
    summary = (
        f"{len(result.tagged)} tagged, {len(result.skipped)} unchanged, {len(result.failed)} failed"
    )
    read = [taggings[r.path] for r in result.results if not r.skipped]
    if read:
        summary += "; " + tagging_summary(read, max_tags)
    if args.write:
        verb = "would change" if args.dry_run else "written"
        summary += f"; {changed} files {verb}, {write_errors} write errors"
    if result.cancelled:
        summary += " (cancelled: run the same command again to resume)"
    print(summary, file=sys.stderr)
    failures = result.failed or result.missing_paths or write_errors
    return EXIT_FAILURES if failures or result.cancelled else EXIT_OK


# -- write / undo -------------------------------------------------------------------------


def _write(
    catalog, pack, paths: Sequence[str], max_tags: int | None, *, dry_run: bool, replace: bool
):
    from moodlib.library.scanner import reached_paths
    from moodlib.metadata.journal import write_plan, write_tracks
    from moodlib.progress import tqdm_callback

    # Tracks at or below the real paths and the targets of the links below them, as a scan of
    # them reaches them ("../lib", a symlinked folder); every track without paths.
    tracks = catalog.tracks(reached_paths(paths) if paths else ())
    plan = write_plan(catalog, pack, tracks, max_tags)
    bar = _progress_bar(len(plan), "writing tags")
    results = write_tracks(
        catalog,
        plan,
        description=f"moodlib write ({pack.name})",
        dry_run=dry_run,
        replace_existing=replace,
        progress=tqdm_callback(bar, show_text=False),
    )
    bar.close()
    for r in results:
        if r.error:
            _err(f"error: {r.path}: {r.error}")
        elif r.changed:
            prefix = "would write" if dry_run else "wrote"
            print(f"{prefix} {r.path}: {', '.join(r.after) or '(no moods)'}")
    return results


def cmd_write(args: argparse.Namespace) -> int:
    pack = _pack(args.pack)
    with _open_catalog() as catalog:
        results = _write(
            catalog,
            pack,
            args.paths,
            _max_tags(args),
            dry_run=args.dry_run,
            replace=args.replace_existing,
        )
    errors = sum(bool(r.error) for r in results)
    verb = "would change" if args.dry_run else "written"
    print(f"{sum(r.changed for r in results)} files {verb}, {errors} write errors", file=sys.stderr)
    return EXIT_FAILURES if errors else EXIT_OK


def cmd_undo(args: argparse.Namespace) -> int:
    from moodlib.metadata.journal import undo_last

    with _open_catalog() as catalog:
        results = undo_last(catalog, all_batches=args.all)
    for r in results:
        if r.error:
            _err(f"error: {r.path}: {r.error}")
        elif r.changed:
            print(f"restored {r.path}: {', '.join(r.after) or '(no moods)'}")
    errors = sum(bool(r.error) for r in results)
    print(f"{sum(r.changed for r in results)} files restored, {errors} errors", file=sys.stderr)
    return EXIT_FAILURES if errors else EXIT_OK


# -- show / review ------------------------------------------------------------------------


def _track_or_usage(catalog, path: str):
    from moodlib.library.paths import resolve_path

    track = catalog.track_by_path(resolve_path(path))
    if track is None:
        raise UsageError(f"{path}: not in the catalog; run 'moodlib scan' on it first")
    return track


def cmd_show(args: argparse.Namespace) -> int:
    from moodlib.metadata import TagWriteError, read_moods

    pack = _pack(args.pack)
    with _open_catalog() as catalog:
        track = _track_or_usage(catalog, args.file)
        scores = catalog.prediction(track.id, pack.name)
        decisions = catalog.decisions(track.id)
        max_tags = _max_tags(args)
        tagging = catalog.tagging(track, pack.name, pack.thresholds, max_tags)
    try:
        in_file, file_error = read_moods(track.path), None
    except TagWriteError as error:
        in_file, file_error = [], error.reason
    error = track.error or file_error
    info = track_report(track, pack, scores, decisions, tagging, max_tags, in_file, error)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(track.path)
    for key in ("title", "artist", "album", "format"):
        if info[key]:
            print(f"  {key}: {info[key]}")
    if track.duration:
        print(f"  duration: {track.duration:.1f} s")
    if info["error"]:
        print(f"  error: {info['error']}")
    print(f"  moods in file: {', '.join(in_file) or '(none)'}")
    limit = "all" if max_tags is None else f"at most {max_tags}"
    written = ", ".join(tagging.tags) or "none"
    why = f" ({tagging.reason})" if tagging.reason else ""
    print(f"  tags to write ({pack.name}, {limit}): {written}{why}")
    if scores is None:
        print(f"  no prediction from {pack.name} yet")
    else:
        print("  scores (threshold; * written, [your decision]):")
        for tag, score in sorted(info["scores"].items(), key=lambda kv: -kv[1]):
            mark = "*" if tag in tagging.tags else " "
            user = f"  [{decisions[tag]}]" if tag in decisions else ""
            print(f"   {mark} {tag:<14} {score:.3f}  ({pack.thresholds[tag]:.3f}){user}")
        if info["not_predicted"]:
            print(f"  not predicted by this pack: {', '.join(info['not_predicted'])}")
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    changes = [("accept", t) for t in args.accept] + [("reject", t) for t in args.reject]
    changes += [("add", t) for t in args.add] + [(None, t) for t in args.clear]
    if not changes:
        raise UsageError("review needs at least one of --accept, --reject, --add, --clear")
    with _open_catalog() as catalog:
        track = _track_or_usage(catalog, args.file)
        for decision, tag in changes:
            name = vocabulary.short_name(tag) if vocabulary.is_tag(tag) else tag.strip()
            if decision in ("accept", "reject", None) and not vocabulary.is_tag(tag):
                raise UsageError(f"{tag!r} is not one of the 56 tags (use --add for your own)")
            if decision == "add":
                catalog.add_tag(track.id, name)
            else:
                catalog.set_decision(track.id, name, decision)
        print(f"{track.path}: {json.dumps(catalog.decisions(track.id))}")
    return EXIT_OK


# -- playlists ----------------------------------------------------------------------------


def cmd_playlists(args: argparse.Namespace) -> int:
    from moodlib.playlists import write_playlists

    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise UsageError(f"--min-score must lie between 0 and 1, not {args.min_score}")
    pack = _pack(args.pack)
    try:
        with _open_catalog() as catalog:
            playlists = write_playlists(catalog, pack, args.folder, min_score=args.min_score)
    except OSError as error:
        _err(f"error: {error.filename or args.folder}: {error.strerror or error}")
        return EXIT_FAILURES
    for playlist in playlists:
        if playlist.tracks:
            print(f"wrote {playlist.path} ({playlist.tracks} tracks)")
        else:
            print(f"removed {playlist.path} (no track has {playlist.tag} now)")
    written = sum(bool(playlist.tracks) for playlist in playlists)
    noun = "playlist" if written == 1 else "playlists"
    print(f"{written} {noun} ({pack.name}) in {Path(args.folder).absolute()}", file=sys.stderr)
    return EXIT_OK


# -- models -------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from moodlib.packs import PackError

    store = _store()
    try:
        if args.models_command == "list":
            active = config.active_pack_name()
            for name, pack in store.list():
                if isinstance(pack, PackError):
                    print(f"! {name:<20} unreadable: {pack.reason}")
                    continue
                mark = "*" if pack.name == active else " "
                origin = "shipped" if pack.builtin else "installed"
                members = "+".join(m.architecture for m in pack.members)
                print(
                    f"{mark} {pack.name:<20} {pack.version:<8} {origin:<9} "
                    f"{len(pack.covered):>2}/56 tags  {members}"
                )
            return EXIT_OK
        if args.models_command == "import":
            source = Path(args.file)
            if (source / "manifest.json").is_file():
                pack = store.install_folder(source, name=args.name)
            else:
                if not args.arch:
                    raise UsageError("importing a checkpoint needs --arch")
                pack = store.import_checkpoint(
                    source, name=args.name or source.stem, architecture=args.arch
                )
        elif args.models_command == "install":
            if args.name != "mtg-baseline":
                raise UsageError(f"unknown pack {args.name!r}: installable packs: mtg-baseline")
            pack = store.install_mtg_baseline()  # shipped: nothing is downloaded
            if pack.builtin:
                print(f"{pack.name} ships with moodlib ({len(pack.covered)} tags): nothing to do")
                return EXIT_OK
        elif args.models_command == "remove":
            store.remove(args.name)
            if config.active_pack_name() == args.name:
                config.save_setting("active_pack", config.DEFAULT_PACK)
            print(f"removed {args.name}")
            return EXIT_OK
        else:  # use
            pack = store.get(args.name)
            config.save_setting("active_pack", pack.name)
            print(f"active pack: {pack.name}")
            return EXIT_OK
    except PackError as error:
        _err(f"error: {error}")
        return EXIT_FAILURES
    print(f"installed {pack.name} ({len(pack.covered)} tags) in {pack.root}")
    return EXIT_OK


# -- the desktop app ----------------------------------------------------------------------


def cmd_desktop_install(args: argparse.Namespace) -> int:
    from moodlib import desktop

    command = desktop.launcher_command()
    try:
        installed = desktop.install(command=command, data_dir=args.data_home, bin_dir=args.bin_home)
    except OSError as error:
        _err(f"error: {error.filename or ''}: {error.strerror or error}")
        return EXIT_FAILURES
    for path in installed.files:
        print(f"installed {path}")
    if installed.command_link is not None:
        print(f"linked {installed.command_link} -> {command[0]}")
        folder = installed.command_link.parent
        if str(folder) not in os.environ.get("PATH", "").split(os.pathsep):
            _err(f"note: {folder} is not on your PATH; add it to run 'moodlib' by name")
    else:
        _err(f"note: no 'moodlib' link made: {installed.link_problem}")
    print(f"the menu entry runs: {' '.join(command)} gui", file=sys.stderr)
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from moodlib.gui import run
    except ImportError as error:
        _err(
            f"moodlib: the desktop app needs PySide6 and pyqtgraph (pip install 'moodlib[gui]'): "
            f"{error}"
        )
        return EXIT_USAGE
    return run(args.qt_args, screenshot=args.screenshot)


# -- the parser ---------------------------------------------------------------------------


_REPLACE_HELP = (
    "also replace mood values in the files that are among the 56 tags but were not written by "
    "moodlib (kept otherwise)"
)


_FROM_SETTINGS = object()


def _max_tags_value(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        message = f"expected a number of tags (1 or more) or 'all', not {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def _add_max_tags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-tags",
        type=_max_tags_value,
        default=_FROM_SETTINGS,
        metavar="N",
        help="at most N tags per file, those above their threshold with the highest scores "
        f"('all': every one; default: the app's setting, else {vocabulary.DEFAULT_MAX_TAGS})",
    )


def _max_tags(args: argparse.Namespace) -> int | None:
    return config.max_tags() if args.max_tags is _FROM_SETTINGS else args.max_tags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moodlib",
        description="Predict mood/theme tags for your music and write them into the files.",
    )
    parser.add_argument("--version", action="version", version=f"moodlib {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("gui", help="open the desktop app (also: no command at all)")
    p.add_argument(
        "--screenshot", metavar="PNG", help="save a picture of the window once shown, then quit"
    )
    p.add_argument("qt_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_gui)

    p = commands.add_parser(
        "desktop-install", help="add moodlib to the desktop's menu and 'moodlib' to ~/.local/bin"
    )
    p.add_argument(
        "--data-home", type=Path, metavar="DIR", help="default: $XDG_DATA_HOME or ~/.local/share"
    )
    p.add_argument("--bin-home", type=Path, metavar="DIR", help="default: ~/.local/bin")
    p.set_defaults(handler=cmd_desktop_install)

    p = commands.add_parser("scan", help="scan folders or files and predict their tags")
    p.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="folders (added to the library's) or files; default: the library's folders",
    )  # fmt: skip
    p.add_argument("--pack", help="model pack to use (default: the active pack)")
    p.add_argument("--write", action="store_true", help="write the tags into the files")
    p.add_argument("--dry-run", action="store_true", help="with --write: only show changes")
    p.add_argument("--replace-existing", action="store_true", help=_REPLACE_HELP)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--json", metavar="FILE", help="write tags and scores as JSON")
    p.add_argument(
        "--workers", type=int, help="decoding threads (default: a quarter of the cores, at least 1)"
    )
    _add_max_tags(p)
    p.set_defaults(handler=cmd_scan)

    p = commands.add_parser("show", help="a track's scores, decisions and moods")
    p.add_argument("file")
    p.add_argument("--pack")
    p.add_argument("--json", action="store_true")
    _add_max_tags(p)
    p.set_defaults(handler=cmd_show)

    p = commands.add_parser("review", help="accept, reject or add tags for a track")
    p.add_argument("file")
    for flag in ("accept", "reject", "add", "clear"):
        p.add_argument(f"--{flag}", action="append", default=[], metavar="TAG")
    p.set_defaults(handler=cmd_review)

    p = commands.add_parser("write", help="write reviewed tags of scanned tracks")
    p.add_argument("paths", nargs="*", metavar="PATH", help="default: every track")
    p.add_argument("--pack")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--replace-existing", action="store_true", help=_REPLACE_HELP)
    _add_max_tags(p)
    p.set_defaults(handler=cmd_write)

    p = commands.add_parser("undo", help="restore the moods the last write replaced")
    p.add_argument("--all", action="store_true", help="undo every write batch")
    p.set_defaults(handler=cmd_undo)

    p = commands.add_parser("playlists", help="write one M3U8 playlist per tag into a folder")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--pack")
    p.add_argument(
        "--min-score", type=float, metavar="S",
        help="only the model's tags scoring at least S (0..1); your own tags always count",
    )  # fmt: skip
    p.set_defaults(handler=cmd_playlists)

    p = commands.add_parser("models", help="list, install, import, remove or choose packs")
    models = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    models.add_parser("list", help="installed packs (* = active)")
    m = models.add_parser("import", help="import a pack folder or a checkpoint")
    m.add_argument("file")
    m.add_argument("--name")
    m.add_argument("--arch", help="architecture of a checkpoint (e.g. vggish_baseline)")
    m = models.add_parser("install", help="install a published pack (mtg-baseline ships)")
    m.add_argument("name")
    m = models.add_parser("remove", help="remove an installed pack")
    m.add_argument("name")
    m = models.add_parser("use", help="make a pack the active one")
    m.add_argument("name")
    p.set_defaults(handler=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not UTF-8 is printed as its own bytes, as ``ls`` does.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    # Inference threads that wait for each other sleep instead of spinning: a spinning team of
    # two ran a scan at half the speed of one thread whenever another process held a core
    # (docs/benchmarks.md). PyTorch's OpenMP runtime reads this once, when torch is imported,
    # and pipeline.thread_counts reads it to size the team.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    if getattr(args, "dry_run", False) and args.command == "scan" and not args.write:
        parser.error("--dry-run only makes sense with --write")
    try:
        return args.handler(args)
    except UsageError as error:
        _err(f"moodlib: error: {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
