"""What a retraining learned: base vs personal per tag on held-out albums, and the choice to
switch to the personal pack.

The numbers come from ``trainer.finetune``: each tag's labels (accepted / rejected tracks of
the training albums, and of the held-out albums the training never saw) and the held-out
PR-AUC and ROC-AUC of the base pack and of the personal pack. A personal pack keeps them in
its provenance, so the models dialog shows the same table (``metric_rows``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from moodlib.gui.operations import Retrained

NONE = "–"


@dataclass(frozen=True)
class MetricRow:
    """One tag's line of the before/after table."""

    tag: str
    accepted: int
    rejected: int
    held_out_accepted: int
    held_out_rejected: int
    base_pr_auc: float | None
    personal_pr_auc: float | None
    base_roc_auc: float | None
    personal_roc_auc: float | None
    trained: bool

    @classmethod
    def of(cls, report: Any) -> MetricRow:
        """From a ``TagReport`` or its dict (as a personal pack's provenance keeps it)."""
        get = report.get if isinstance(report, Mapping) else lambda k: getattr(report, k, None)
        return cls(
            tag=str(get("tag")),
            accepted=int(get("positives") or 0),
            rejected=int(get("negatives") or 0),
            held_out_accepted=int(get("held_out_positives") or 0),
            held_out_rejected=int(get("held_out_negatives") or 0),
            base_pr_auc=get("base_pr_auc"),
            personal_pr_auc=get("personal_pr_auc"),
            base_roc_auc=get("base_roc_auc"),
            personal_roc_auc=get("personal_roc_auc"),
            trained=bool(get("trained")),
        )


def metric_rows(reports: Iterable[Any]) -> list[MetricRow]:
    return [MetricRow.of(report) for report in reports]


def fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else NONE


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def compared_means(rows: list[MetricRow]) -> dict[str, float | None]:
    """Mean base and personal PR-AUC and ROC-AUC, like for like: over the tags where both
    packs have a held-out score (a tag the base pack does not predict has none). Without
    such tags, the personal means over the tags it has a score for, and no base means."""
    means: dict[str, float | None] = {}
    for metric in ("pr_auc", "roc_auc"):
        base, personal = f"base_{metric}", f"personal_{metric}"
        both = [
            r for r in rows if getattr(r, base) is not None and getattr(r, personal) is not None
        ]
        if both:
            means[base] = mean(getattr(r, base) for r in both)
            means[personal] = mean(getattr(r, personal) for r in both)
        else:
            means[base] = None
            means[personal] = mean(
                getattr(r, personal) for r in rows if getattr(r, personal) is not None
            )
    return means


class MetricsTable(QTableWidget):
    """The per-tag table: label counts, then base and personal held-out scores."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)

    def show_rows(
        self, rows: list[MetricRow], base: str, extra_tags: Mapping[str, int] | None = None
    ) -> None:
        headers = [
            "Tag", "Accepted", "Rejected", "Held out\n✓ / ✗", f"PR-AUC\n{base}", "PR-AUC\npersonal",
            f"ROC-AUC\n{base}", "ROC-AUC\npersonal", "",
        ]  # fmt: skip
        tips = [
            None,
            "Tracks of the training albums where you accepted (or added) the tag",
            "Tracks of the training albums where you rejected the tag",
            "Accepted / rejected tracks of the held-out albums, which the training never saw",
            f"Precision-recall AUC of {base} on the held-out albums (1 is perfect)",
            "Precision-recall AUC of the personal pack on the held-out albums",
            f"ROC AUC of {base} on the held-out albums (0.5 is chance, 1 is perfect)",
            "ROC AUC of the personal pack on the held-out albums",
            None,
        ]
        extra = dict(sorted((extra_tags or {}).items()))
        self.clear()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        for column, tip in enumerate(tips):
            if tip:
                self.horizontalHeaderItem(column).setToolTip(tip)
        self.setRowCount(len(rows) + 1 + len(extra))
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText)
        for r, row in enumerate(rows):
            cells = [
                row.tag,
                str(row.accepted),
                str(row.rejected),
                f"{row.held_out_accepted} / {row.held_out_rejected}",
                fmt(row.base_pr_auc),
                fmt(row.personal_pr_auc),
                fmt(row.base_roc_auc),
                fmt(row.personal_roc_auc),
                "learned" if row.trained else f"too few labels: {base}'s scores kept",
            ]
            self._set_row(r, cells)
            if not row.trained:
                for column in range(len(cells)):
                    self.item(r, column).setForeground(muted)
                self.item(r, 8).setToolTip(
                    "A tag is learned with at least 3 accepted and 3 rejected tracks "
                    "on the training albums"
                )
            for base_value, personal_value, column in (
                (row.base_pr_auc, row.personal_pr_auc, 5),
                (row.base_roc_auc, row.personal_roc_auc, 7),
            ):
                if personal_value is not None and (
                    base_value is None or personal_value > base_value
                ):
                    self._bold(r, column)
            if row.trained and row.base_roc_auc is None and row.base_pr_auc is None:
                why = (
                    f"{base} does not predict this tag"
                    if row.personal_roc_auc is not None
                    else "the held-out albums lack accepted or rejected tracks for this tag"
                )
                for column in (4, 6):
                    self.item(r, column).setToolTip(why)
        r = len(rows)
        means = compared_means(rows)
        self._set_row(
            r,
            ["mean", "", "", "", *(fmt(means[k]) for k in (
                "base_pr_auc", "personal_pr_auc", "base_roc_auc", "personal_roc_auc")), ""],
        )  # fmt: skip
        for column in range(self.columnCount()):
            self._bold(r, column)
        self.item(r, 0).setToolTip(
            f"Over the tags that both {base} and the personal pack score on the held-out albums"
        )
        for i, (tag, count) in enumerate(extra.items(), start=r + 1):
            self._set_row(
                i,
                [tag, "", "", "", "", "", "", "",
                 f"{count} decision{'s' if count != 1 else ''}, not learned: "
                 "only the 56 tags can be"],
            )  # fmt: skip
            for column in range(self.columnCount()):
                self.item(i, column).setForeground(muted)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def _set_row(self, row: int, cells: list[str]) -> None:
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if 0 < column < 8:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.setItem(row, column, item)

    def _bold(self, row: int, column: int) -> None:
        item = self.item(row, column)
        font = QFont(item.font())
        font.setBold(True)
        item.setFont(font)

    def cell_text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


def is_better(rows: list[MetricRow]) -> bool | None:
    """Whether the personal pack beats the base on the held-out albums: on the mean of the
    tags both score, or (none such) on the tags it newly predicts, which the base pack
    cannot rank at all (better when they rank above chance). None: no held-out score."""
    means = compared_means(rows)
    pairs = [(means[f"base_{m}"], means[f"personal_{m}"]) for m in ("pr_auc", "roc_auc")]
    if all(base is not None for base, _ in pairs):
        return sum(p - b for b, p in pairs) >= 0
    roc = means["personal_roc_auc"]
    return None if roc is None else roc > 0.5


class RetrainDialog(QDialog):
    """The result of a retraining; accepting it means "switch to the personal pack"."""

    def __init__(self, outcome: Retrained, active: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        result = outcome.result
        assert result is not None and result.pack is not None
        self.outcome = outcome
        self.pack_name = result.pack.name
        self.setWindowTitle("Retrained on your corrections")
        self.resize(900, 520)
        base = outcome.base
        rows = metric_rows(result.reports)
        learned = [r.tag for r in rows if r.trained]

        heading = QLabel(
            f"<b>{self.pack_name}</b>: {base} personalised on "
            f"{result.train_tracks + result.held_out_tracks} reviewed tracks in "
            f"{result.seconds:.1f} s. It learned {len(learned)} "
            f"tag{'s' if len(learned) != 1 else ''}: {', '.join(learned)}."
        )
        heading.setWordWrap(True)
        explain = QLabel(
            f"The training used {result.train_tracks} tracks; the other "
            f"{result.held_out_tracks}, whole albums it never saw, measure it. Higher is "
            f"better (1 is perfect, ROC-AUC 0.5 is chance); {NONE} where the held-out albums "
            "have no accepted or no rejected track for the tag, or the pack does not predict it."
        )
        explain.setWordWrap(True)
        explain.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.table = MetricsTable()
        self.table.show_rows(rows, base, result.extra_tags)
        self.better = is_better(rows)
        verdict = QLabel(
            {
                True: f"On the held-out albums the personal pack does better than {base}.",
                False: f"On the held-out albums the personal pack does worse than {base}: "
                "keep the pack you use, or review more tracks and retrain.",
                None: "The held-out albums are too few to compare the packs: review more "
                "tracks (on more albums) for a fair measure.",
            }[self.better]
        )
        verdict.setWordWrap(True)

        if self.pack_name == active:  # cannot happen: a new pack has a new name
            question = f"{self.pack_name} is already active."
        else:
            question = (
                f"Switch to {self.pack_name}? The library is then rescanned with it (only the "
                f"tracks it has not scored), so that the table shows its scores. {active} "
                "stays installed, and so does every earlier personal pack: choose any of them "
                "again in Models ▸ Model packs…"
            )
        self.question = QLabel(question)
        self.question.setWordWrap(True)

        self.copy_button = QPushButton("Copy as text")
        self.copy_button.setToolTip("Copy the table as the command line prints it")
        self.copy_button.setAutoDefault(False)
        self.copy_button.clicked.connect(self.copy_table)
        buttons = QDialogButtonBox()
        self.switch_button = buttons.addButton(
            "Switch and rescan", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.keep_button = buttons.addButton(
            f"Keep {active}", QDialogButtonBox.ButtonRole.RejectRole
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        # The recommendation is the default button: switch unless the personal pack did worse.
        self.default_button = self.keep_button if self.better is False else self.switch_button
        for button in (self.switch_button, self.keep_button):
            button.setAutoDefault(False)
        self.default_button.setDefault(True)
        row = QHBoxLayout()
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(explain)
        layout.addWidget(self.table, 1)
        layout.addWidget(verdict)
        layout.addWidget(self.question)
        layout.addLayout(row)
        self.default_button.setFocus()

    def copy_table(self) -> None:
        result = self.outcome.result
        QGuiApplication.clipboard().setText(result.table() if result is not None else "")
