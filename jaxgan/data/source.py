"""The random-access data source every dataset of jaxgan implements.

A source is a finite, indexable dataset: ``len(source)`` examples, and
``source.get(indices)`` returns the batch of those examples as a dict of numpy arrays:

* ``'x'``: the samples, float32; images ``(N, H, W, C)`` in [-1, 1], 2D points ``(N, 2)``;
* ``'label'``: int32 ``(N,)`` class labels, ``-1`` where the dataset has none.

Sources are plain numpy (no jax), safe to read from several threads, and deterministic:
the same indices give the same arrays. The input pipeline
(:func:`jaxgan.data.batch_iterator`) decides which indices each step reads.
"""

from __future__ import annotations

import abc

import numpy as np


class Source(abc.ABC):
    """A finite random-access dataset.

    Attributes:
      name: how the dataset was named (e.g. ``'digits'``, ``'tfds:mnist'``).
      sample_shape: the shape of one sample: ``(H, W, C)`` for images, ``(2,)`` for points.
      num_classes: the number of label classes, 0 when the dataset has no labels.
      kind: ``'image'`` or ``'points'``.
    """

    name: str
    sample_shape: tuple[int, ...]
    num_classes: int
    kind: str

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of examples."""

    @abc.abstractmethod
    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples at ``indices`` (any 1-D integer array, repeats allowed), in order."""

    def _check_indices(self, indices: np.ndarray) -> np.ndarray:
        """``indices`` as a 1-D int64 array, each in ``[0, len(self))``."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise ValueError(
                f"{self.name}: indices must be a 1-D integer array, got {idx.dtype} {idx.shape}"
            )
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(
                f"{self.name}: indices must lie in [0, {len(self)}), got "
                f"min {idx.min()} max {idx.max()}"
            )
        return idx

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, len={len(self)}, "
            f"sample_shape={self.sample_shape}, num_classes={self.num_classes}, "
            f"kind={self.kind!r})"
        )


def empty_batch(sample_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """A batch with no examples."""
    return {
        "x": np.zeros((0, *sample_shape), np.float32),
        "label": np.zeros((0,), np.int32),
    }
