"""The track panel's two plots, drawn with pyqtgraph in the colours of the Qt palette.

``SpectrogramView``: a mel spectrogram as an image, time in seconds across, frequency up
(rows are mel bands; the ticks name frequencies in Hz where they fall on the mel scale), a
colour bar, a playback cursor, and above the image a mark for each segment the model reads
when it reads less than the whole picture; a click asks to seek there.

``ScoreChart``: one horizontal bar per tag with the pack's threshold marked, covered tags
by score (those of a track the pack has not scored yet without bars, "not scored yet"), the
tags the pack does not predict below them on a hatched band, never with a bar; the user's
decisions beside the names; a click makes a tag the current one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

from moodlib import vocabulary

COLOR_MAP = "viridis"
FREQUENCY_TICKS_HZ = (100, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 11000, 16000, 22000)
MIN_TICK_SPACING_BANDS = 8
DB_RANGE = 100.0  # a dB spectrogram shows at most the loudest 100 dB
SEGMENT_MARK_BANDS = 4.0  # the height of the segment marks above the image, in mel bands
DECISION_MARKS = {"accept": "✓", "reject": "✗", "added": "+"}


@dataclass(frozen=True)
class PlotColors:
    """The palette roles the plots draw with."""

    background: QColor
    foreground: QColor
    muted: QColor
    accent: QColor
    accent_text: QColor
    mid: QColor

    @classmethod
    def from_palette(cls, palette: QPalette) -> PlotColors:
        role = QPalette.ColorRole
        return cls(
            background=palette.color(role.Base),
            foreground=palette.color(role.Text),
            muted=palette.color(role.PlaceholderText),
            accent=palette.color(role.Highlight),
            accent_text=palette.color(role.HighlightedText),
            mid=palette.color(role.Mid),
        )


def with_alpha(color: QColor, alpha: int) -> QColor:
    faded = QColor(color)
    faded.setAlpha(alpha)
    return faded


def style_plot(plot: pg.PlotItem, colors: PlotColors) -> None:
    for name in ("left", "bottom", "top", "right"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(colors.muted))
        axis.setTextPen(pg.mkPen(colors.foreground))


def frequency_ticks(band_hz: np.ndarray) -> list[tuple[float, str]]:
    """Ticks at round frequencies, placed on the band axis where they fall (mel-spaced)."""
    ticks: list[tuple[float, str]] = []
    for hz in FREQUENCY_TICKS_HZ:
        if not band_hz[0] <= hz <= band_hz[-1]:
            continue
        # Band i covers rows [i, i + 1): its centre frequency sits at i + 0.5.
        position = float(np.interp(hz, band_hz, np.arange(len(band_hz)))) + 0.5
        if ticks and position - ticks[-1][0] < MIN_TICK_SPACING_BANDS:
            continue
        ticks.append((position, f"{hz // 1000}k" if hz >= 1000 else str(hz)))
    return ticks


def score_axis_limit(values: np.ndarray) -> float:
    """The score axis ends at the first of 0.1, 0.2, 0.3, 0.5, 0.75, 1 past every value, so
    that the small scores of rare tags are not drawn as slivers."""
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    return next((limit for limit in (0.1, 0.2, 0.3, 0.5, 0.75) if top * 1.08 <= limit), 1.0)


class SpectrogramView(pg.GraphicsLayoutWidget):
    """A mel spectrogram with a colour bar and a playback cursor."""

    seek_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "Time (s)")
        self.plot.setLabel("left", "Frequency (Hz)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.color_bar = pg.ColorBarItem(
            colorMap=pg.colormap.get(COLOR_MAP), interactive=False, width=12
        )
        self.color_bar.setImageItem(self.image, insert_in=self.plot)
        self.cursor = pg.InfiniteLine(angle=90, movable=False)
        self.cursor.setZValue(10)
        self.cursor.hide()
        self.plot.addItem(self.cursor)
        self.segment_marks = pg.BarGraphItem(x0=[], y=[], height=SEGMENT_MARK_BANDS, width=[])
        self.segment_marks.hide()
        self.plot.addItem(self.segment_marks)
        self.start_seconds = 0.0
        self.end_seconds = 0.0
        self.scene().sigMouseClicked.connect(self._clicked)
        self.apply_palette(self.palette())
        self.plot.setOpacity(0.0)  # no axes, colour bar or cursor around an empty image

    def apply_palette(self, palette: QPalette) -> None:
        colors = PlotColors.from_palette(palette)
        self.setBackground(colors.background)
        style_plot(self.plot, colors)
        style_plot(self.color_bar, colors)
        self.cursor.setPen(pg.mkPen(colors.foreground, width=2))
        self.segment_marks.setOpts(brush=pg.mkBrush(colors.accent), pen=pg.mkPen(None))

    def show_mel(
        self,
        mel: np.ndarray,
        *,
        start_seconds: float,
        seconds_per_frame: float,
        band_hz: np.ndarray,
        level_label: str = "dB",
        audio_frames: int | None = None,
        segments: Sequence[tuple[float, float]] = (),
    ) -> None:
        """Draw ``mel`` (bands x frames); frame ``t`` is centred on ``start + t * step`` s.

        The colour levels come from the first ``audio_frames`` frames (the rest repeats
        them: a short track is repeated to one segment). ``segments``: (start, length) in seconds of
        the parts the model reads, marked above the image unless one covers it all.
        """
        n_bands, n_frames = mel.shape
        audio = mel[:, : max(1, audio_frames or n_frames)]
        high = float(audio.max())
        low = float(np.percentile(audio, 1))
        if level_label == "dB":
            low = max(low, high - DB_RANGE)
        self.image.setImage(mel, autoLevels=False)
        self.color_bar.setLevels((low, high if high > low else low + 1))
        self.color_bar.getAxis("left").setLabel(level_label)
        self.start_seconds = start_seconds - seconds_per_frame / 2
        self.end_seconds = self.start_seconds + n_frames * seconds_per_frame
        width = self.end_seconds - self.start_seconds
        self.image.setRect(QRectF(self.start_seconds, 0.0, width, float(n_bands)))
        self.plot.getAxis("left").setTicks([frequency_ticks(band_hz)])
        self.plot.setXRange(self.start_seconds, self.end_seconds, padding=0)
        marked = len(segments) > 1 or any(length < 0.95 * width for _, length in segments)
        if marked:
            self.segment_marks.setOpts(
                x0=[start for start, _ in segments],
                width=[length for _, length in segments],
                y=np.full(len(segments), n_bands + SEGMENT_MARK_BANDS / 2 + 1),
            )
        self.segment_marks.setVisible(marked)
        top = n_bands + SEGMENT_MARK_BANDS + 2 if marked else n_bands
        self.plot.setYRange(0, top, padding=0)
        self.set_cursor(start_seconds)
        self.plot.setOpacity(1.0)

    def clear_mel(self) -> None:
        self.plot.setOpacity(0.0)  # drawn, so the layout stays, but not seen
        self.image.clear()
        self.cursor.hide()
        self.segment_marks.hide()
        self.start_seconds = self.end_seconds = 0.0

    def set_cursor(self, seconds: float) -> None:
        self.cursor.setValue(seconds)
        self.cursor.setVisible(self.start_seconds <= seconds <= self.end_seconds)

    def view_to_widget(self, seconds: float, band: float) -> QPoint:
        """Where a (time, band) point of the plot is on this view's viewport."""
        return self.mapFromScene(self.plot.vb.mapViewToScene(QPointF(seconds, band)))

    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.image.image is None:
            return
        if not self.plot.vb.sceneBoundingRect().contains(event.scenePos()):
            return
        seconds = self.plot.vb.mapSceneToView(event.scenePos()).x()
        if self.start_seconds <= seconds <= self.end_seconds:
            self.seek_requested.emit(float(seconds))


class ScoreChart(QScrollArea):
    """Per-tag score bars with thresholds; scrolls when the 56 rows do not fit."""

    tag_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(self.plot_widget)
        plot = self.plot = self.plot_widget.getPlotItem()
        plot.setMouseEnabled(x=False, y=False)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.invertY(True)
        plot.showAxis("top")
        plot.hideAxis("bottom")
        plot.getAxis("left").setStyle(tickLength=0)
        plot.setXRange(0, 1, padding=0)

        self.rows: list[str] = []
        self.current_row: int | None = None
        self.x_max = 1.0
        self.current_marker = pg.BarGraphItem(x0=[0], y=[0], height=1.0, width=[1.0])
        self.uncovered_band = pg.BarGraphItem(x0=[0], y=[0], height=1.0, width=[1.0])
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], pen=pg.mkPen(None))
        self.thresholds = pg.PlotDataItem([], [], connect="pairs")
        self.uncovered_label = pg.TextItem("not predicted by this pack", anchor=(0, 0.5))
        self.unscored_label = pg.TextItem("not scored by this pack yet: scan (F5)", anchor=(0, 0.5))
        for item in (
            self.current_marker,
            self.uncovered_band,
            self.bars,
            self.thresholds,
            self.uncovered_label,
            self.unscored_label,
        ):
            plot.addItem(item)
        for item in (self.current_marker, self.uncovered_band, self.uncovered_label,
                     self.unscored_label):  # fmt: skip
            item.hide()
        self.plot_widget.scene().sigMouseClicked.connect(self._clicked)
        self._shown: tuple | None = None
        self.apply_palette(self.palette())

    # -- drawing --------------------------------------------------------------------------

    def apply_palette(self, palette: QPalette) -> None:
        self.colors = PlotColors.from_palette(palette)
        self.plot_widget.setBackground(self.colors.background)
        style_plot(self.plot, self.colors)
        for label in (self.uncovered_label, self.unscored_label):
            label.setColor(self.colors.muted)
            label.fill = pg.mkBrush(self.colors.background)  # legible over the hatching
            label.update()
        self.current_marker.setOpts(brush=with_alpha(self.colors.mid, 70), pen=pg.mkPen(None))
        self.uncovered_band.setOpts(
            brush=QBrush(with_alpha(self.colors.muted, 70), Qt.BrushStyle.BDiagPattern),
            pen=pg.mkPen(None),
        )
        self.thresholds.setPen(pg.mkPen(self.colors.foreground, width=2))
        if self._shown is not None:
            self.show_scores(*self._shown)

    def row_height(self) -> int:
        return max(16, self.fontMetrics().height() + 3)

    def show_scores(
        self,
        scores: np.ndarray | None,
        thresholds: Mapping[str, float],
        covered: Sequence[str],
        decisions: Mapping[str, str],
        added: Sequence[str] = (),
        written: Collection[str] = (),
    ) -> None:
        """Bars for ``scores`` (56, NaN where uncovered; None: not scored yet); the bars of
        the ``written`` tags (what the file gets, ``vocabulary.tagging``) are solid.

        Rows: the covered tags with a score, highest first; covered tags without one (the
        pack has not scored the track); then the tags the pack does not predict. Only the
        first have bars."""
        self._shown = (scores, thresholds, covered, decisions, added, written)
        current = self.current_tag()
        covered_set = set(covered)
        if scores is None:
            scores = np.full(len(vocabulary.TAGS), np.nan, dtype=np.float32)
        scored = [
            t
            for t in vocabulary.TAGS
            if t in covered_set and not np.isnan(scores[vocabulary.TAG_INDEX[t]])
        ]
        scored.sort(key=lambda t: -scores[vocabulary.TAG_INDEX[t]])
        unscored = [t for t in vocabulary.TAGS if t in covered_set and t not in scored]
        uncovered = [t for t in vocabulary.TAGS if t not in covered_set]
        self.rows = scored + unscored + uncovered
        values = np.array([scores[vocabulary.TAG_INDEX[t]] for t in scored], dtype=float)
        limits = np.array([thresholds.get(t, np.nan) for t in scored], dtype=float)
        positions = np.arange(len(scored), dtype=float)
        self.bars.setOpts(
            x0=np.zeros(len(scored)),
            y=positions,
            width=values,
            height=0.7,
            brushes=[
                pg.mkBrush(
                    self.colors.accent if tag in written else with_alpha(self.colors.accent, 110)
                )
                for tag in scored
            ],
        )
        self.thresholds.setData(
            np.repeat(limits, 2), np.stack([positions - 0.45, positions + 0.45], 1).ravel()
        )
        self.x_max = score_axis_limit(np.concatenate([values, limits]))
        self.plot.setXRange(0, self.x_max, padding=0)
        self.unscored_label.setVisible(bool(unscored))
        self.unscored_label.setPos(0.0, len(scored))
        self._show_uncovered(len(scored) + len(unscored), len(self.rows))
        tag_axis = self.plot.getAxis("left")
        tag_axis.setTicks([[
            (i, f"{self._mark(tag, decisions, added)} {tag}") for i, tag in enumerate(self.rows)
        ]])  # fmt: skip
        # Wide enough for every label from the first frame on (pyqtgraph would widen the axis
        # only after drawing it once without them), and steady from track to track.
        metrics = QFontMetrics(tag_axis.style["tickFont"] or self.plot_widget.font())
        longest = max(metrics.horizontalAdvance(f"{mark} {tag}") for mark in
                      DECISION_MARKS.values() for tag in vocabulary.TAGS)  # fmt: skip
        tag_axis.setWidth(longest + tag_axis.style["tickTextOffset"][0] + 4)
        self.plot.setYRange(-0.5, len(self.rows) - 0.5, padding=0)
        self.plot_widget.setFixedHeight(len(self.rows) * self.row_height() + 36)
        self.set_current(current if current in self.rows else self.rows[0])

    def _show_uncovered(self, first: int, stop: int) -> None:
        if stop <= first:
            self.uncovered_band.hide()
            self.uncovered_label.hide()
            return
        rows = np.arange(first, stop, dtype=float)
        self.uncovered_band.setOpts(
            x0=np.zeros(len(rows)), y=rows, width=np.full(len(rows), self.x_max)
        )
        self.uncovered_band.show()
        self.uncovered_label.setPos(0.0, first)
        self.uncovered_label.show()

    @staticmethod
    def _mark(tag: str, decisions: Mapping[str, str], added: Sequence[str]) -> str:
        if tag in added:
            return DECISION_MARKS["added"]
        return DECISION_MARKS.get(decisions.get(tag, ""), "  ")

    def clear_scores(self) -> None:
        """No track: the 56 tags, nothing else."""
        self.show_scores(None, {}, vocabulary.TAGS, {})
        self.unscored_label.hide()

    # -- the current tag ------------------------------------------------------------------

    def current_tag(self) -> str | None:
        if self.current_row is None or self.current_row >= len(self.rows):
            return None
        return self.rows[self.current_row]

    def set_current(self, tag: str) -> None:
        self.current_row = self.rows.index(tag)
        self.current_marker.setOpts(y=[self.current_row], width=[self.x_max])
        self.current_marker.show()
        top = self.plot_widget.mapFromScene(
            self.plot.vb.mapViewToScene(QPointF(0, self.current_row))
        )
        self.ensureVisible(0, top.y(), 0, 2 * self.row_height())

    def move_current(self, step: int) -> str | None:
        if not self.rows:
            return None
        row = 0 if self.current_row is None else self.current_row + step
        self.set_current(self.rows[max(0, min(len(self.rows) - 1, row))])
        return self.current_tag()

    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self.rows:
            return
        if not self.plot.sceneBoundingRect().contains(event.scenePos()):
            return
        row = round(self.plot.vb.mapSceneToView(event.scenePos()).y())
        if 0 <= row < len(self.rows):
            self.set_current(self.rows[row])
            self.tag_clicked.emit(self.rows[row])
