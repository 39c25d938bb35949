"""Model architectures, one module per family, built through ``build_model``.

Importing this package imports every family module, whose ``@register_model`` constructors
fill the registry (``registry.py``, which imports no family), as ``timm.models`` does.
"""

from moodlib.models import crnn, faresnet, musicnn, shortchunk, timm_backbones, vggish
from moodlib.models.registry import build_model, list_models, register_model

__all__ = [
    "build_model",
    "crnn",
    "faresnet",
    "list_models",
    "musicnn",
    "register_model",
    "shortchunk",
    "timm_backbones",
    "vggish",
]
