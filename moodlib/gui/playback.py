"""Listening to the selected track with Qt Multimedia, or saying why that is not possible.

Playback needs Qt Multimedia and an audio output device. Without either (no PulseAudio
client library, no sound card, a headless session) ``Playback.available`` is False and
``unavailable_reason`` says why; the rest of the app is unaffected.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal

log = logging.getLogger(__name__)


class Playback(QObject):
    """One ``QMediaPlayer`` for the app; positions are in seconds of the file."""

    position_changed = Signal(float)
    playing_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.player = None
        self.unavailable_reason: str | None = None
        self._path: str | None = None
        self._loaded_path: str | None = None
        self._pending_seconds: float | None = None
        try:
            from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
        except ImportError as error:
            self.unavailable_reason = f"Qt Multimedia is not installed ({error})"
            return
        try:
            if not QMediaDevices.audioOutputs():
                self.unavailable_reason = "no audio output device was found"
                return
            self._media_status = QMediaPlayer.MediaStatus
            self._playing_state = QMediaPlayer.PlaybackState.PlayingState
            self.audio_output = QAudioOutput(self)
            self.player = QMediaPlayer(self)
            self.player.setAudioOutput(self.audio_output)
        except Exception as error:  # a broken multimedia backend must not stop the app
            log.warning("audio playback disabled: %s", error)
            self.player = None
            self.unavailable_reason = f"audio output could not be opened ({error})"
            return
        self.player.positionChanged.connect(lambda ms: self.position_changed.emit(ms / 1000.0))
        self.player.playbackStateChanged.connect(
            lambda state: self.playing_changed.emit(state == self._playing_state)
        )
        self.player.mediaStatusChanged.connect(self._media_status_changed)
        self.player.errorOccurred.connect(lambda _error, text: self.failed.emit(text))

    @property
    def available(self) -> bool:
        return self.player is not None

    @property
    def playing(self) -> bool:
        return self.available and self.player.playbackState() == self._playing_state

    def set_track(self, path: str | None) -> None:
        """The file that play() plays; it is opened only when first played."""
        if path == self._path:
            return
        self.stop()
        self._path = path

    def play(self, from_seconds: float | None = None) -> None:
        if not self.available or self._path is None:
            return
        if self._loaded_path != self._path:
            self._loaded_path = self._path
            self._pending_seconds = from_seconds
            self.player.setSource(QUrl.fromLocalFile(str(Path(self._path))))
            self.player.play()
            return
        if from_seconds is not None:
            self.player.setPosition(round(from_seconds * 1000))
        self.player.play()

    def pause(self) -> None:
        if self.available:
            self.player.pause()

    def stop(self) -> None:
        if self.available:
            self.player.stop()

    def seek(self, seconds: float) -> None:
        if not self.available or self._loaded_path != self._path:
            self._pending_seconds = seconds
            return
        self.player.setPosition(round(seconds * 1000))

    def _media_status_changed(self, status) -> None:
        loaded = (self._media_status.LoadedMedia, self._media_status.BufferedMedia)
        if status in loaded and self._pending_seconds is not None:
            self.player.setPosition(round(self._pending_seconds * 1000))
            self._pending_seconds = None
