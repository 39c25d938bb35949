"""The controls above the track table: text, tag, minimum score, unreviewed only."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from moodlib import vocabulary
from moodlib.library.views import TrackFilter

TEXT_DELAY_MS = 250


class FilterBar(QWidget):
    changed = Signal(object)  # TrackFilter

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLineEdit()
        self.text.setPlaceholderText("Filter: title, artist, album, path")
        self.text.setClearButtonEnabled(True)
        self.tag = QComboBox()
        self.tag.addItem("any tag", None)
        for tag in vocabulary.TAGS:
            self.tag.addItem(tag, tag)
        self.tag.setToolTip("Only tracks whose score for this tag reaches the minimum")
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setSingleStep(0.05)
        self.min_score.setDecimals(2)
        self.min_score.setToolTip(
            "Minimum score of the chosen tag (at its lowest: the pack's threshold for it),\n"
            "or of each track's best tag when no tag is chosen"
        )
        self.unreviewed = QCheckBox("Unreviewed")
        self.unreviewed.setToolTip("Only tracks you have not decided anything on")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text, 3)
        layout.addWidget(self.tag, 1)
        layout.addWidget(QLabel("≥"))
        layout.addWidget(self.min_score)
        layout.addWidget(self.unreviewed)
        self._delay = QTimer(self)
        self._delay.setSingleShot(True)
        self._delay.setInterval(TEXT_DELAY_MS)
        self._delay.timeout.connect(self._emit)
        self.text.textChanged.connect(self._delay.start)
        self.tag.currentIndexChanged.connect(self._tag_changed)
        self.min_score.valueChanged.connect(self._emit)
        self.unreviewed.toggled.connect(self._emit)
        self._tag_changed()

    def track_filter(self) -> TrackFilter:
        return TrackFilter(
            text=self.text.text(),
            tag=self.tag.currentData(),
            min_score=round(self.min_score.value(), 4),
            unreviewed_only=self.unreviewed.isChecked(),
        )

    def _tag_changed(self) -> None:
        tagged = self.tag.currentData() is not None
        self.min_score.setSpecialValueText("threshold" if tagged else "any")
        self._emit()

    def _emit(self) -> None:
        self._delay.stop()
        self.changed.emit(self.track_filter())
