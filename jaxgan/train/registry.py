"""Which task builds a config's family."""

from __future__ import annotations

import ml_collections

from jaxgan.train.loop import Task


def build_task(config: ml_collections.ConfigDict) -> Task:
    """Build the :class:`Task` of ``config.family``."""
    family = config.family
    if family == "gan":
        from jaxgan.train.unconditional import build_gan_task

        return build_gan_task(config)
    raise ValueError(f"unknown family {family!r}")
