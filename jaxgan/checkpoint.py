"""Orbax checkpoints of the whole state pytree, with a model fingerprint.

* ``Checkpointer(workdir, ...)`` keeps the last ``max_to_keep`` checkpoints under
  ``workdir/checkpoints/<step>``; each holds the state (``StandardSave``) and a JSON
  ``meta`` item describing the model (family, network config, sample shape).
* A save is atomic: orbax writes into a temporary directory and renames it when complete,
  so a process killed mid-save leaves the previous checkpoint as the latest one.
* ``restore`` refuses, with a clear error, a checkpoint whose ``meta`` describes another
  model, before touching any array.

The data position and RNG are part of the state (``step``, ``key``) and the input
pipeline is step-indexed, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
    """The checkpoint in a workdir belongs to another model or configuration."""


class Checkpointer:
    """Save / restore a state pytree in ``workdir/checkpoints`` (see module docstring)."""

    def __init__(self, workdir: str, meta: dict[str, Any], max_to_keep: int = 3):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.meta = meta
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any) -> None:
        """Save ``state`` as checkpoint ``step`` (asynchronous; atomic on completion)."""
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(self.meta)
            ),
            force=True,
        )

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        step = self.latest_step() if step is None else step
        out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def restore(self, target: Any, step: int | None = None) -> Any:
        """Restore into the structure (and shardings) of ``target``; checks the model."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        meta = self.read_meta(step)
        diffs = {
            k: (meta.get(k), v)
            for k, v in self.meta.items()
            if k in _IDENTITY_KEYS and _jsonish(meta.get(k)) != _jsonish(v)
        }
        if diffs:
            lines = "; ".join(
                f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, (a, b) in diffs.items()
            )
            raise CheckpointMismatchError(
                f"the checkpoint at {self.directory}/{step} belongs to another model ({lines}). "
                "Use another workdir, or the configuration that wrote it."
            )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            out = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )
        except (ValueError, KeyError) as e:
            raise CheckpointMismatchError(
                f"the checkpoint at {self.directory}/{step} does not fit this model's state: {e}"
            ) from e
        return out["state"]

    def wait(self) -> None:
        """Block until pending asynchronous saves are written."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


# Meta keys that identify the model; others (e.g. the learning rate) may change on resume.
_IDENTITY_KEYS = ("family", "model", "sample_shape", "latent_dim", "num_classes")


def _jsonish(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonish(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonish(v) for v in x]
    return x
