"""Entry point shared by the experiment modules: parse overrides, train, report."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from jaxgan.config import parse_config


def run_experiment(
    name: str,
    get_config: Callable[[], ml_collections.ConfigDict],
    smoke: dict[str, Any] | None = None,
    argv: Sequence[str] | None = None,
    doc: str | None = None,
) -> Any:
    """``python -m experiments.<name> [--smoke] [--field value ...]``: train and evaluate."""
    config = parse_config(
        get_config(), argv, smoke=smoke, prog=f"python -m experiments.{name}", description=doc
    )
    if not config.workdir:
        smoke_run = "--smoke" in (argv if argv is not None else sys.argv)
        config.workdir = os.path.join("runs", name + ("_smoke" if smoke_run else ""))
    from jaxgan.train.loop import train_and_evaluate

    print(f"{name}: workdir {config.workdir}")
    return train_and_evaluate(config, config.workdir)
