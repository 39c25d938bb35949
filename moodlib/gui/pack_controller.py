"""The active model pack: read from the settings (shared with ``moodlib models use``),
switched in the Models dialog or after a retraining, named in the status bar.

Only the manifest is read here; the weights load in workers, when a job needs the model.
``changed`` follows every (re)load of the active pack, ``installed_changed`` every install
or removal.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QWidget

from moodlib import config
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.models_dialog import ModelsDialog, pack_origin
from moodlib.gui.prompts import Prompts
from moodlib.library.catalog import Catalog
from moodlib.packs import Pack, PackError
from moodlib.packstore import PackStore


class PackController(QObject):
    changed = Signal()  # the active pack was (re)loaded: read ``pack``
    installed_changed = Signal()  # a pack was installed or removed

    def __init__(
        self, window: QWidget, label: QLabel, catalog: Catalog, jobs: JobRunner, prompts: Prompts
    ) -> None:
        super().__init__(window)
        self._window = window
        self.label = label
        self.catalog = catalog
        self.jobs = jobs
        self.prompts = prompts
        self.pack: Pack | None = None
        self.dialog: ModelsDialog | None = None

    def load(self) -> None:
        """Read the active pack's manifest and say so (``changed``)."""
        name = config.active_pack_name()
        try:
            pack = PackStore().get(name, verify=False)
        except PackError as error:
            pack = None
            self.label.setText(f"Pack: {name} (not installed)")
            self.label.setToolTip(f"{error.reason}\nInstall or choose one in Models ▸ Model packs…")
        else:
            self.label.setText(f"Pack: {pack.name}")
            self.label.setToolTip(
                f"{pack.name} ({pack_origin(pack)}): {len(pack.covered)} of 56 tags covered"
            )
        self.pack = pack
        self.changed.emit()

    def switch(self, name: str) -> None:
        """Make ``name`` the active pack, as *Use this pack* does."""
        config.save_setting("active_pack", name)
        self.load()
        self.reload_dialog()

    def show_dialog(self) -> None:
        if self.dialog is None:
            self.dialog = ModelsDialog(self.jobs.start, self._window)
            self.dialog.active_pack_changed.connect(self._active_pack_changed)
            self.dialog.packs_changed.connect(self._packs_changed)
        self.dialog.reload()
        self.dialog.show()
        self.dialog.raise_()

    def reload_dialog(self) -> None:
        """List the packs again in the Models dialog, if it was opened."""
        if self.dialog is not None:
            self.dialog.reload()

    def _active_pack_changed(self, name: str) -> None:
        self.load()
        if self.pack is not None and self.catalog.count_tracks():
            self.prompts.say(f"Active pack: {name}. Scan (F5) to score the library with it.", 10000)

    def _packs_changed(self) -> None:
        self.installed_changed.emit()  # a personal pack's base may have come or gone
        chosen = self.dialog.current_pack() if self.dialog else None
        if self.pack is None and chosen is not None:
            # Without a usable active pack, the pack the user just installed becomes it.
            config.save_setting("active_pack", chosen.name)
            self.dialog.reload(chosen.name)
            self._active_pack_changed(chosen.name)
