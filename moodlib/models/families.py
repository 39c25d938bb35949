"""Imports every architecture family so their constructors register themselves."""

from moodlib.models import crnn, faresnet, musicnn, shortchunk, timm_backbones, vggish  # noqa: F401
