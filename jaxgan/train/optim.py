"""Optimizers from config: the settings of the papers are configs, not code."""

from __future__ import annotations

import optax


def make_optimizer(
    name: str, learning_rate: float, b1: float = 0.5, b2: float = 0.999
) -> optax.GradientTransformation:
    """``adam`` (Adam(lr, b1, b2)) or ``rmsprop`` (RMSProp(lr), as WGAN uses)."""
    if name == "adam":
        return optax.adam(learning_rate, b1=b1, b2=b2)
    if name == "rmsprop":
        # PyTorch's RMSprop defaults (alpha=0.99, eps=1e-8), as in the WGAN reference code.
        return optax.rmsprop(learning_rate, decay=0.99, eps=1e-8)
    raise ValueError(f"unknown optimizer {name!r}; use 'adam' or 'rmsprop'")
