"""``python -m moodlib`` is the ``moodlib`` command."""

import sys

from moodlib.cli import main

sys.exit(main())
