"""The model registry: one way to build any architecture, ``build_model(name, **cfg)``.

Each architecture family lives in its own module and registers thin constructors with
``@register_model``; the package (``moodlib.models``) imports every family, so the registry
is full once any of it is imported, and this module imports none of them. Every registered
model maps a batch of mel spectrograms shaped ``(batch, n_mels, frames)`` to logits
``(batch, num_classes)``; models that can also return a pooled embedding implement
``forward_with_embedding(x) -> (logits, embedding)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name; ``build_model(fn.__name__, **cfg)`` calls it."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def build_model(name: str, **cfg) -> nn.Module:
    """Build the registered architecture ``name`` with its keyword configuration."""
    try:
        constructor = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown model architecture {name!r}; known: {known}") from None
    return constructor(**cfg)


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_REGISTRY)
