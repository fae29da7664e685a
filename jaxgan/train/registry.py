"""Which task builds a config's family."""

from __future__ import annotations

import importlib

import ml_collections

from jaxgan.train.loop import Task

# family -> (module, builder function); modules are imported only when used.
FAMILIES: dict[str, tuple[str, str]] = {
    "gan": ("jaxgan.train.unconditional", "build_gan_task"),
    "cgan": ("jaxgan.train.conditional", "build_cgan_task"),
    "infogan": ("jaxgan.train.conditional", "build_infogan_task"),
    "cyclegan": ("jaxgan.train.cyclegan", "build_cyclegan_task"),
    "srgan": ("jaxgan.train.superres", "build_sr_task"),
    "esrgan": ("jaxgan.train.superres", "build_sr_task"),
}


def build_task(config: ml_collections.ConfigDict) -> Task:
    """Build the :class:`Task` of ``config.family``."""
    if config.family not in FAMILIES:
        raise ValueError(f"unknown family {config.family!r}; known: {sorted(FAMILIES)}")
    module, name = FAMILIES[config.family]
    return getattr(importlib.import_module(module), name)(config)
