"""The panel for the selected track: what the model saw and said, listening, and review.

Top: title, artist and album, the file. Then the mel spectrogram the pack computes (filled
in by a worker; see ``operations.load_preview``) with the playback controls under it, then
one score bar per tag with the review buttons. The panel only displays and asks: the main
window saves decisions in the catalog and feeds the panel again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from moodlib import config, vocabulary
from moodlib.gui.operations import Preview
from moodlib.gui.playback import Playback
from moodlib.gui.plots import ScoreChart, SpectrogramView
from moodlib.gui.table_model import format_duration
from moodlib.library.catalog import Track
from moodlib.library.paths import printable
from moodlib.packs import Pack

MAX_TAGS_CHOICE = 10  # the setting's largest number; 0 stands for "all"


@dataclass
class TrackView:
    """Everything the panel shows about one track, read from the catalog."""

    track: Track
    pack: Pack | None
    scores: np.ndarray | None
    decisions: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)


class TrackPanel(QWidget):
    decision_requested = Signal(str, object)  # tag, "accept" / "reject" / None to clear
    add_requested = Signal(str)
    max_tags_changed = Signal(object)  # at most this many tags per file; None: no limit

    def __init__(self, playback: Playback, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.playback = playback
        self.view: TrackView | None = None
        self.preview: Preview | None = None
        self.position_seconds = 0.0

        self.title = QLabel()
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.subtitle = QLabel()
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for label in (self.title, self.subtitle):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.spectrogram = SpectrogramView()
        self.spectrogram.setMinimumHeight(150)
        self.spectrogram.seek_requested.connect(self.seek)
        self.spectrogram_note = QLabel()
        self.spectrogram_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.spectrogram_note.setSizePolicy(
            QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred
        )

        style = self.style()
        self.play_button = QToolButton()
        self.play_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.toggle_playback)
        self.position_label = QLabel("0:00")
        self.playback_note = QLabel()
        self.playback_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        playback_row = QHBoxLayout()
        playback_row.addWidget(self.play_button)
        playback_row.addWidget(self.position_label)
        playback_row.addStretch(1)
        playback_row.addWidget(self.playback_note)
        if playback.available:
            playback.position_changed.connect(self._played_to)
            playback.playing_changed.connect(self._playing_changed)
            playback.failed.connect(self.playback_note.setText)
            self.playback_note.hide()
        else:
            self.play_button.setEnabled(False)
            self.playback_note.setText("Playback disabled: no audio output")
            self.playback_note.setToolTip(
                f"Playback disabled: {playback.unavailable_reason}.\n"
                "moodlib plays tracks through Qt Multimedia, which needs an audio output\n"
                "device (PulseAudio, PipeWire or ALSA). Everything else works without one."
            )

        self.chart = ScoreChart()
        self.chart_note = QLabel("│ threshold · solid: written · ✓ accepted ✗ rejected + added")
        self.chart_note.setToolTip(
            "Each bar is the pack's score for a tag, the mark its threshold. The file gets the "
            "solid ones: the highest-scoring tags that reach their threshold, at most the "
            "number set on the right (the best-scoring tag when none reaches it), with your "
            "accepted tags and without your rejected ones."
        )
        self.chart_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.max_tags_box = QSpinBox()
        self.max_tags_box.setRange(0, MAX_TAGS_CHOICE)
        self.max_tags_box.setSpecialValueText("all")  # 0: every tag above its threshold
        self.max_tags_box.setPrefix("at most ")
        self.max_tags_box.setSuffix(" tags per file")
        self.max_tags_box.setToolTip(
            "How many tags a file gets at most (also for 'moodlib scan --write'); all: every "
            "tag that reaches its threshold"
        )
        self.max_tags_box.setValue(config.max_tags() or 0)
        self.max_tags_box.valueChanged.connect(self._max_tags_chosen)
        chart_row = QHBoxLayout()
        chart_row.addWidget(self.chart_note, 1)
        chart_row.addWidget(self.max_tags_box)
        self.chart.tag_clicked.connect(lambda _tag: self._update_buttons())
        self.accept_button = QPushButton("✓ Accept")
        self.accept_button.setToolTip("Accept the current tag (A)")
        self.reject_button = QPushButton("✗ Reject")
        self.reject_button.setToolTip("Reject the current tag (R)")
        self.clear_button = QPushButton("Undecide")
        self.clear_button.setToolTip("Forget your decision on the current tag (U)")
        self.accept_button.clicked.connect(lambda: self.decide("accept"))
        self.reject_button.clicked.connect(lambda: self.decide("reject"))
        self.clear_button.clicked.connect(lambda: self.decide(None))
        self.add_combo = QComboBox()
        self.add_combo.addItem("Add a tag…", None)
        for tag in vocabulary.TAGS:
            self.add_combo.addItem(tag, tag)
        self.add_combo.setToolTip("Add any of the 56 tags to this track (T)")
        self.add_combo.activated.connect(self._add_chosen)
        review_row = QHBoxLayout()
        for widget in (self.accept_button, self.reject_button, self.clear_button):
            review_row.addWidget(widget)
        review_row.addStretch(1)
        review_row.addWidget(self.add_combo)

        listen = QWidget()
        listen_layout = QVBoxLayout(listen)
        listen_layout.setContentsMargins(0, 0, 0, 0)
        listen_layout.addWidget(self.spectrogram_note)
        listen_layout.addWidget(self.spectrogram, 1)
        listen_layout.addLayout(playback_row)
        scores = QWidget()
        scores_layout = QVBoxLayout(scores)
        scores_layout.setContentsMargins(0, 0, 0, 0)
        scores_layout.addLayout(chart_row)
        scores_layout.addWidget(self.chart, 1)
        scores_layout.addLayout(review_row)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(listen)
        self.splitter.addWidget(scores)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addWidget(self.splitter, 1)
        self.show_track(None)

    # -- what is shown --------------------------------------------------------------------

    def show_track(self, view: TrackView | None) -> None:
        same_track = (
            view is not None and self.view is not None and view.track.id == self.view.track.id
        )
        # The same track newly scored (a scan reached it) starts again at its top tag.
        rescored = same_track and self.view.scores is None and view.scores is not None
        self.view = view
        if view is None:
            self.preview = None
            self.title.setText("No track selected")
            self.subtitle.setText("Add a music folder and scan it; then pick a track.")
            self.chart.clear_scores()
            self.spectrogram.clear_mel()
            self.spectrogram_note.setText("")
            self.playback.set_track(None)
            self._update_buttons()
            return
        track = view.track
        path = printable(track.path)
        self.title.setText(track.title or path.rsplit("/", 1)[-1])
        details = [x for x in (track.artist, track.album, format_duration(track.duration)) if x]
        self.subtitle.setText(" — ".join(details) or path)
        self.subtitle.setToolTip(path)
        self._show_scores()
        if rescored or not same_track:
            self.chart.set_current(self.chart.rows[0])
        if not same_track:
            self.preview = None
            self.spectrogram.clear_mel()
            self.playback.set_track(track.path)
            self.position_seconds = 0.0
            self._played_to(0.0)
            if track.error:
                self.spectrogram_note.setText(f"Cannot be read: {track.error}")
            elif view.pack is None:
                self.spectrogram_note.setText("No model pack: the spectrogram needs one.")
            else:
                self.spectrogram_note.setText("Computing the spectrogram…")
        self._update_buttons()

    @property
    def max_tags(self) -> int | None:
        return self.max_tags_box.value() or None

    def _max_tags_chosen(self) -> None:
        if self.view is not None:
            self._show_scores()
        self.max_tags_changed.emit(self.max_tags)

    def _show_scores(self) -> None:
        view = self.view
        pack = view.pack
        thresholds = pack.thresholds if pack else {}
        written = vocabulary.tagging(
            view.scores, thresholds, view.decisions, self.max_tags,
            decodable=view.track.error is None,
        ).tags  # fmt: skip
        self.chart.show_scores(
            view.scores, thresholds, pack.covered if pack else (), view.decisions, view.added,
            written,
        )  # fmt: skip

    def show_preview(self, preview: Preview) -> None:
        """Show ``preview`` if it is still the current track's, with the current pack."""
        view = self.view
        if view is None or view.pack is None or preview.path != view.track.path:
            return
        if preview.pack_name != view.pack.name:
            return
        self.preview = preview
        self.spectrogram.show_mel(
            preview.mel,
            start_seconds=preview.start_seconds,
            seconds_per_frame=preview.seconds_per_frame,
            band_hz=preview.band_hz,
            level_label=preview.level_label,
            audio_frames=round(preview.audio_seconds / preview.seconds_per_frame),
            segments=preview.segments,
        )
        self.position_seconds = preview.start_seconds
        self._played_to(preview.start_seconds)
        start = preview.start_seconds
        note = (
            f"{preview.pack_name} hears {format_duration(start)}–"
            f"{format_duration(start + preview.audio_seconds)} of "
            f"{format_duration(preview.duration_seconds)}"
        )
        if self.spectrogram.segment_marks.isVisible():
            count, length = len(preview.segments), preview.segments[0][1]
            note = (
                f"{preview.pack_name} averages {count} excerpts of {length:.0f} s (marked above) "
                f"across {format_duration(start)}–"
                f"{format_duration(start + preview.audio_seconds)}"
            )
        mel_seconds = preview.mel.shape[1] * preview.seconds_per_frame
        if mel_seconds > preview.audio_seconds + 1:
            note += f", repeated to {mel_seconds:.1f} s"
        self.spectrogram_note.setText(note + " · click to seek")

    def show_preview_error(self, path: str, message: str) -> None:
        if self.view is not None and path == self.view.track.path:
            self.spectrogram_note.setText(f"No spectrogram: {message}")

    # -- review ---------------------------------------------------------------------------

    def current_tag(self) -> str | None:
        return self.chart.current_tag() if self.view is not None else None

    def decide(self, decision: str | None) -> None:
        tag = self.current_tag()
        if tag is not None:
            self.decision_requested.emit(tag, decision)
            if decision is not None:
                self.chart.move_current(1)
                self._update_buttons()

    def move_tag(self, step: int) -> None:
        if self.view is not None:
            self.chart.move_current(step)
            self._update_buttons()

    def focus_add_tag(self) -> None:
        self.add_combo.setFocus()
        self.add_combo.showPopup()

    def _add_chosen(self, index: int) -> None:
        tag = self.add_combo.itemData(index)
        self.add_combo.setCurrentIndex(0)
        if tag is not None and self.view is not None:
            self.add_requested.emit(tag)
            self.chart.set_current(tag)

    def _update_buttons(self) -> None:
        enabled = self.current_tag() is not None
        for button in (self.accept_button, self.reject_button, self.clear_button, self.add_combo):
            button.setEnabled(enabled)

    # -- playback -------------------------------------------------------------------------

    def toggle_playback(self) -> None:
        if not self.playback.available or self.view is None:
            return
        if self.playback.playing:
            self.playback.pause()
        else:
            self.playback.play(from_seconds=self.position_seconds)

    def seek(self, seconds: float) -> None:
        self.position_seconds = seconds
        self._played_to(seconds)
        self.playback.seek(seconds)

    def _played_to(self, seconds: float) -> None:
        self.position_seconds = seconds
        self.spectrogram.set_cursor(seconds)
        self.position_label.setText(format_duration(seconds))

    def _playing_changed(self, playing: bool) -> None:
        pixmap = QStyle.StandardPixmap
        icon = pixmap.SP_MediaPause if playing else pixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

    # -- the palette ----------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.spectrogram.apply_palette(self.palette())
            self.chart.apply_palette(self.palette())
        super().changeEvent(event)
