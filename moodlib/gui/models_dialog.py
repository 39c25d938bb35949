"""Model packs: which is active, what each covers, importing more.

The same operations as ``moodlib models list/use/import/remove``; the slow ones
(verification, checkpoint conversion) run as jobs of the main window. The shipped
packs come first (they cannot be removed), then the installed ones; personal packs (made by
*Retrain on my corrections*) name the pack they were learned on and show what they learned.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from moodlib import config, vocabulary
from moodlib.gui import operations
from moodlib.gui.jobs import Job
from moodlib.gui.retrain_dialog import fmt, metric_rows
from moodlib.models import list_models
from moodlib.packs import Pack, PackError
from moodlib.packstore import PackStore

StartJob = Callable[[Job], bool]

PackRole = Qt.ItemDataRole.UserRole + 1


class ModelsDialog(QDialog):
    """Lists the installed packs; the buttons start jobs through ``start_job``."""

    active_pack_changed = Signal(str)
    packs_changed = Signal()

    def __init__(self, start_job: StartJob, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model packs")
        self.resize(880, 560)
        self.start_job = start_job

        self.packs = QListWidget()
        self.packs.setSpacing(2)
        self.packs.currentItemChanged.connect(lambda *_: self._show_current())
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(True)
        self.use_button = QPushButton("Use this pack")
        self.use_button.clicked.connect(self.use_current)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_current)
        list_side = QWidget()
        list_layout = QVBoxLayout(list_side)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addWidget(self.packs, 1)
        row = QHBoxLayout()
        row.addWidget(self.use_button)
        row.addWidget(self.remove_button)
        list_layout.addLayout(row)
        splitter = QSplitter()
        splitter.addWidget(list_side)
        splitter.addWidget(self.details)
        splitter.setSizes([320, 560])

        self.architecture = QComboBox()
        self.architecture.addItems(list_models())
        if (index := self.architecture.findText("vggish_baseline")) >= 0:
            self.architecture.setCurrentIndex(index)
        self.checkpoint_name = QLineEdit()
        self.checkpoint_name.setPlaceholderText("default: the file's name")
        self.import_checkpoint_button = QPushButton("Import checkpoint…")
        self.import_checkpoint_button.clicked.connect(self.choose_checkpoint)
        self.import_folder_button = QPushButton("Import pack folder…")
        self.import_folder_button.clicked.connect(self.choose_pack_folder)
        imports = QGroupBox("Import")
        form = QFormLayout(imports)
        form.addRow("Pack folder (manifest.json)", self.import_folder_button)
        checkpoint_row = QHBoxLayout()
        checkpoint_row.addWidget(self.architecture)
        checkpoint_row.addWidget(QLabel("name"))
        checkpoint_row.addWidget(self.checkpoint_name, 1)
        checkpoint_row.addWidget(self.import_checkpoint_button)
        form.addRow("Checkpoint (.pth, .safetensors) of", checkpoint_row)

        self.message = QLabel()
        self.message.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(imports)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.reload()

    # -- the list -------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        current = select or self._current_name() or config.active_pack_name()
        self.packs.clear()
        active = config.active_pack_name()
        store = PackStore()
        for name, pack in store.list():
            if isinstance(pack, PackError):
                item = QListWidgetItem(f"{name}  (unreadable: {pack.reason})")
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                self.packs.addItem(item)
                continue
            details = f"{len(pack.covered)}/56 tags · {pack_origin(pack)}"
            if pack.name == active:
                item = QListWidgetItem(f"● {pack.name}\n{details} · active")
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            else:
                item = QListWidgetItem(f"{pack.name}\n{details}")
            item.setData(PackRole, pack)
            item.setToolTip(pack.description)
            self.packs.addItem(item)
            if pack.name == current:
                self.packs.setCurrentItem(item)
        if self.packs.currentItem() is None and self.packs.count():
            self.packs.setCurrentRow(0)
        self._show_current()

    def current_pack(self) -> Pack | None:
        item = self.packs.currentItem()
        return item.data(PackRole) if item is not None else None

    def _current_name(self) -> str | None:
        pack = self.current_pack()
        return pack.name if pack else None

    def _show_current(self) -> None:
        pack = self.current_pack()
        self.use_button.setEnabled(pack is not None and pack.name != config.active_pack_name())
        self.remove_button.setEnabled(pack is not None and not pack.builtin)
        self.remove_button.setToolTip(
            "Shipped with moodlib: it cannot be removed" if pack is not None and pack.builtin
            else ""
        )  # fmt: skip
        if pack is None:
            self.details.setHtml("<p>No model pack is installed: import one below.</p>")
            return
        self.details.setHtml(pack_description(pack))

    # -- actions --------------------------------------------------------------------------

    def use_current(self) -> None:
        pack = self.current_pack()
        if pack is None:
            return
        config.save_setting("active_pack", pack.name)
        self.reload(pack.name)
        self.active_pack_changed.emit(pack.name)

    def remove_current(self) -> None:
        pack = self.current_pack()
        if pack is None or pack.builtin:
            return
        try:
            PackStore().remove(pack.name)
        except PackError as error:
            self.message.setText(str(error))
            return
        if config.active_pack_name() == pack.name:
            config.save_setting("active_pack", config.DEFAULT_PACK)
            self.active_pack_changed.emit(config.DEFAULT_PACK)
        self.message.setText(f"Removed {pack.name}.")
        self.reload()
        self.packs_changed.emit()

    def choose_pack_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a model pack folder")
        if folder:
            self.import_pack_folder(folder)

    def import_pack_folder(self, folder: str) -> None:
        self._run(
            Job(
                f"Importing {Path(folder).name}",
                lambda **kw: operations.import_pack_folder(folder, **kw),
                cancellable=False,
            )
        )

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a checkpoint", "", "Checkpoints (*.pth *.pt *.safetensors);;All files (*)"
        )
        if path:
            self.import_checkpoint(path)

    def import_checkpoint(self, path: str) -> None:
        name = self.checkpoint_name.text().strip() or Path(path).stem
        architecture = self.architecture.currentText()
        self._run(
            Job(
                f"Importing {Path(path).name}",
                lambda **kw: operations.import_checkpoint(path, name, architecture, **kw),
                cancellable=False,
            )
        )

    def _run(self, job: Job) -> None:
        job.succeeded.connect(self._installed)
        job.failed.connect(lambda message: self.message.setText(f"Failed: {message}"))
        job.ended.connect(lambda: self._set_busy(False))
        if self.start_job(job):
            self._set_busy(True)
            self.message.setText(f"{job.title}…")
        else:
            self.message.setText("Another task is running; try again when it has finished.")

    def _installed(self, pack: Pack) -> None:
        self.message.setText(
            f"Installed {pack.name}: {len(pack.covered)} of 56 tags. "
            "Choose “Use this pack” to tag with it."
        )
        self.reload(pack.name)
        self.packs_changed.emit()

    def _set_busy(self, busy: bool) -> None:
        for button in (self.import_checkpoint_button, self.import_folder_button):
            button.setEnabled(not busy)


def pack_origin(pack: Pack) -> str:
    """The pack's origin: shipped, installed, or "personal, from <base>"."""
    if pack.builtin:
        return "shipped"
    base = pack.personal_base
    return f"personal, from {base}" if base else "installed"


def pack_description(pack: Pack) -> str:
    """The pack's card: what it is, where it came from, what it covers."""
    escape = html.escape
    members = ", ".join(f"{m.architecture} (weight {m.weight:g})" for m in pack.members)
    uncovered = [t for t in vocabulary.TAGS if t not in pack.covered]
    provenance = pack.provenance
    base = pack.personal_base
    learned_on = ""
    if base:
        learned_on = (
            f"{base} {provenance.get('base_version', '')}, from your decisions on "
            f"{provenance.get('reviewed_tracks', '?')} tracks "
            f"({provenance.get('held_out_tracks', '?')} of them held out to measure it)"
        )
    rows = [
        ("Origin", pack_origin(pack)),
        ("Learned on", learned_on),
        ("Version", pack.version),
        ("Members", members),
        ("Reads", f"{pack.segmenting.mode} segments of {pack.segmenting.frames} frames"),
        ("Source", provenance.get("source", "")),
        ("Paper", provenance.get("paper", "")),
        ("Licence", provenance.get("licence", "")),
        ("Thresholds", provenance.get("thresholds", "")),
    ]
    table = "".join(
        f"<tr><td><b>{escape(k)}</b></td><td>{escape(str(v))}</td></tr>" for k, v in rows if v
    )
    text = (
        f"<h3>{escape(pack.name)}</h3><p>{escape(pack.description)}</p>"
        f"<table cellspacing='4'>{table}</table>"
    )
    if base:
        text += personal_metrics(pack, base)
    text += (
        f"<p><b>Predicts {len(pack.covered)} of 56 tags:</b> {escape(', '.join(pack.covered))}</p>"
    )
    if uncovered:
        text += (
            f"<p><b>Not predicted by this pack ({len(uncovered)}):</b> "
            f"{escape(', '.join(uncovered))}</p>"
        )
    return text


def personal_metrics(pack: Pack, base: str) -> str:
    """A personal pack's per-tag held-out scores against its base, as the fine-tuner saved
    them."""
    escape = html.escape
    rows = [r for r in metric_rows(pack.provenance.get("per_tag", [])) if r.trained]
    head = ("tag", "✓", "✗", "held out ✓ / ✗", "PR-AUC", "ROC-AUC")
    cells = "".join(f"<th align='left'>{escape(h)}</th>" for h in head)
    lines = [f"<tr>{cells}</tr>"]
    for r in rows:
        values = (r.tag, r.accepted, r.rejected, f"{r.held_out_accepted} / {r.held_out_rejected}",
                  f"{fmt(r.base_pr_auc)} → {fmt(r.personal_pr_auc)}",
                  f"{fmt(r.base_roc_auc)} → {fmt(r.personal_roc_auc)}")  # fmt: skip
        cells = "".join(f"<td>{escape(str(v))}</td>" for v in values)
        lines.append(f"<tr>{cells}</tr>")
    text = (
        f"<p><b>Learned {len(rows)} tags</b> (on the held-out albums: {escape(base)} → this "
        f"pack):</p><table cellspacing='4'>{''.join(lines)}</table>"
    )
    extra = pack.provenance.get("extra_tags_not_learned") or {}
    if extra:
        text += (
            "<p><b>Not learned</b> (only the 56 tags can be): "
            f"{escape(', '.join(sorted(extra)))}</p>"
        )
    return text
