"""The current track's spectrogram: the mel the active pack computes, in a worker.

Previews run on a pool of their own (one thread), so that browsing never waits for a scan;
only the newest request is computed when the user moves through tracks quickly, and the
last few are kept for going back.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QThreadPool

from moodlib.gui import operations
from moodlib.gui.job_runner import JobRunner
from moodlib.gui.jobs import Job
from moodlib.gui.pack_controller import PackController
from moodlib.gui.track_panel import TrackPanel

PREVIEW_CACHE = 8


class PreviewController(QObject):
    def __init__(
        self,
        panel: TrackPanel,
        *,
        packs: PackController,
        taggers: operations.TaggerCache,
        jobs: JobRunner,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.panel = panel
        self.packs = packs
        self.taggers = taggers
        self.jobs = jobs
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._previews: OrderedDict[tuple, operations.Preview] = OrderedDict()
        self._serial = 0

    def request(self, path: str, mtime_ns: int) -> None:
        """Compute the track's mel in a worker; only the newest request is shown."""
        pack = self.packs.pack
        key = (path, mtime_ns, pack.name, pack.version)
        if key in self._previews:
            self._previews.move_to_end(key)
            self.panel.show_preview(self._previews[key])
            return
        self._serial += 1
        serial = self._serial

        def work(**kwargs):
            if serial != self._serial:  # the user moved on before this started
                return None
            return operations.load_preview(path, pack, self.taggers, **kwargs)

        job = Job("Spectrogram", work)

        def done(preview: operations.Preview | None) -> None:
            if preview is None:
                return
            self._previews[key] = preview
            while len(self._previews) > PREVIEW_CACHE:
                self._previews.popitem(last=False)
            self.panel.show_preview(preview)

        job.succeeded.connect(done)
        job.failed.connect(lambda message: self.panel.show_preview_error(path, message))
        self.jobs.start_background(job, self.pool)

    def clear(self) -> None:
        """Forget the kept previews (another pack computes other mels)."""
        self._previews.clear()
