"""Model architectures, one module per family, built through ``build_model``."""

from moodlib.models.registry import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
