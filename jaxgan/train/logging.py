"""Metric logs: JSON lines (``metrics.jsonl``) and TensorBoard event files, side by side."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np


class MetricWriter:
    """Append scalars to ``workdir/metrics.jsonl`` and TensorBoard events in ``workdir/tb``."""

    def __init__(self, workdir: str, tensorboard: bool = True):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, scalars: dict[str, Any]) -> None:
        row = {"step": int(step)}
        for k, v in scalars.items():
            f = float(np.asarray(v))
            row[k] = f if math.isfinite(f) else str(f)
            if self._tb is not None:
                self._tb.add_scalar(k, f, int(step))
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """All rows of ``workdir/metrics.jsonl``."""
    with open(os.path.join(workdir, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]
