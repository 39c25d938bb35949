"""beets plugin: ``beet moodlib [QUERY]`` tags the matched items' moods with moodlib.

Enable it with ``plugins: moodlib`` in beets' config (``beetsplug`` is beets' namespace for
plugins; installing moodlib puts this module there). For every item the query matches, the
active moodlib pack (or ``moodlib: pack: NAME`` in beets' config, or ``--pack``) predicts the
56 mood/theme tags through moodlib's own scan (``pipeline.scan``): files unchanged since
moodlib last scanned them are not decoded again, their scores come from moodlib's catalog.
The tags a write would give each file (``journal.write_plan``: the pack's decisions with your
reviews in moodlib) go into the item's ``mood`` field (``beet ls mood:dark``).

The files are written when beets would write them (``import.write``, or ``-w`` / ``-W``),
through moodlib's journaled writer: each format's mood convention, other tags untouched, and
``moodlib undo`` takes the write back.
"""

from __future__ import annotations

import os

from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin

SCAN_CHUNK = 500
"""Items scanned per ``pipeline.scan`` call: each file is a root of its own there, and a scan
asks the catalog about all of its roots in one query."""


class MoodlibPlugin(BeetsPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.config.add({"pack": None})
        self.item_types = {"mood": types.SEMICOLON_SPACE_DSV}

    def commands(self) -> list[ui.Subcommand]:
        command = ui.Subcommand("moodlib", help="predict mood/theme tags with moodlib")
        command.parser.add_option("--pack", help="moodlib model pack (default: the active one)")
        command.parser.add_option(
            "-w", "--write", action="store_true", default=None,
            help="write the moods into the files (default: beets' import.write)",
        )  # fmt: skip
        command.parser.add_option(
            "-W", "--nowrite", action="store_false", dest="write",
            help="store the moods in the library only",
        )  # fmt: skip
        command.func = self.run
        return [command]

    def run(self, lib, opts, args: list[str]) -> None:
        from moodlib import config
        from moodlib.inference import Tagger
        from moodlib.library.catalog import Catalog
        from moodlib.metadata.journal import write_plan, write_tracks
        from moodlib.packs import PackError
        from moodlib.packstore import PackStore
        from moodlib.pipeline import scan

        name = opts.pack or self.config["pack"].get() or config.active_pack_name()
        try:
            pack = PackStore().get(name)
            tagger = Tagger(pack)
        except (PackError, RuntimeError) as error:
            raise ui.UserError(f"moodlib: {error}") from error
        items = {os.fsdecode(item.path): item for item in lib.items(args)}
        paths = list(items)
        write = ui.should_write(opts.write)
        tagged = skipped = failed = changed = 0
        with Catalog(config.catalog_path()) as catalog:
            for start in range(0, len(paths), SCAN_CHUNK):
                result = scan(
                    paths[start : start + SCAN_CHUNK], catalog, tagger, pack_name=pack.name
                )
                tagged, skipped = tagged + len(result.tagged), skipped + len(result.skipped)
                failed += len(result.failed) + len(result.missing_paths)
                for outcome in result.failed:
                    self._log.warning("{}: {}", outcome.path, outcome.error)
                for missing in result.missing_paths:
                    self._log.warning("{}: no such file", missing)
            tracks = {path: catalog.track_by_path(path) for path in paths}
            for path, track in tracks.items():
                if track is None and os.path.exists(path):
                    self._log.warning("{}: not a format moodlib reads", path)
            plan = write_plan(
                catalog, pack, [t for t in tracks.values() if t is not None], config.max_tags()
            )
            for path, tags in plan:
                self._set_moods(items[path], tags)
            if write:
                for outcome in write_tracks(
                    catalog, plan, description=f"beet moodlib ({pack.name})"
                ):
                    if outcome.error:
                        self._log.warning("{}: {}", outcome.path, outcome.error)
                    elif outcome.changed:
                        changed += 1
                        item = items[outcome.path]
                        item.mtime = item.current_mtime()  # only moodlib's tags changed
                        item.store()
        summary = f"moodlib ({pack.name}): {tagged} tagged, {skipped} unchanged, {failed} failed"
        if write:
            summary += f"; {changed} files written"
        ui.print_(summary)

    @staticmethod
    def _set_moods(item, tags: list[str]) -> None:
        if tags:
            item["mood"] = tags
        elif "mood" in item:
            del item["mood"]
        item.store()
