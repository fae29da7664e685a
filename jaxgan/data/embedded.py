"""Datasets that ship with the installed packages: every experiment runs offline on them.

* ``digits``: scikit-learn's ``load_digits()``, 1,797 real 8x8 handwritten digits
  (UCI optical recognition of handwritten digits, test part), 17 grey levels 0..16,
  10 classes. Scaled to [-1, 1] and, for ``image_size`` other than 8, resized with a
  bicubic filter (values clipped to [-1, 1]). The split is fixed: the first 1,500 images
  (in ``load_digits`` order) are ``'train'``, the last 297 are ``'test'``, ``'all'`` is
  every image.
* ``ring8`` and ``grid25``: the 2D Gaussian mixtures of :mod:`jaxgan.data.mixtures`, as a
  fixed pool of points drawn once per split (``'train'``: 100,000 points from seed 0;
  ``'test'``: 100,000 points from seed 1; ``'all'``: both). The label is the mode index.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from jaxgan.data.mixtures import MIXTURES, mixture_centers, sample_mixture
from jaxgan.data.source import Source
from jaxgan.data.validate import check_image_options, validate_images

#: The number of ``load_digits`` images in the ``'train'`` split; the rest are ``'test'``.
DIGITS_TRAIN_SIZE = 1500
#: Points per split in the mixture sources.
MIXTURE_POOL_SIZE = 100_000
_MIXTURE_SPLIT_SEEDS = {"train": 0, "test": 1}
SPLITS = ("train", "test", "all")

EMBEDDED: dict[str, str] = {
    "digits": "scikit-learn load_digits: 1,797 8x8 greyscale handwritten digits, 10 classes",
    "ring8": "8 Gaussians on a circle of radius 2 (std 0.02), 2D points, label = mode",
    "grid25": "25 Gaussians on the grid {-4,-2,0,2,4}^2 (std 0.05), 2D points, label = mode",
}


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{name}: unknown split {split!r}; use one of {SPLITS}")


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(np.int32)


@functools.lru_cache(maxsize=4)
def _digits_images(image_size: int) -> np.ndarray:
    """All 1,797 digits as float32 ``(N, S, S)`` in [-1, 1] (read-only)."""
    images, _ = _digits_raw()
    x = images / 8.0 - 1.0  # 0..16 -> [-1, 1]
    if image_size != 8:
        x = np.stack(
            [
                np.asarray(
                    Image.fromarray(img, mode="F").resize((image_size, image_size), Image.BICUBIC)
                )
                for img in x
            ]
        )
        x = np.clip(x, -1.0, 1.0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.flags.writeable = False
    return x


class DigitsSource(Source):
    """scikit-learn's 8x8 handwritten digits (see the module docstring for the split).

    Args:
      split: ``'train'`` (first 1,500), ``'test'`` (last 297) or ``'all'`` (1,797).
      image_size: the side of the square images (default 8, the native size).
      channels: 1 (default) or 3 (the grey value repeated).
    """

    kind = "image"
    num_classes = 10

    def __init__(
        self, split: str = "train", image_size: int | None = None, channels: int | None = None
    ):
        _check_split("digits", split)
        check_image_options(image_size, channels)
        self.name = "digits"
        self.split = split
        self.image_size = int(image_size or 8)
        self.channels = int(channels or 1)
        x = _digits_images(self.image_size)
        _, y = _digits_raw()
        rows = {
            "train": slice(0, DIGITS_TRAIN_SIZE),
            "test": slice(DIGITS_TRAIN_SIZE, None),
            "all": slice(None),
        }[split]
        self._x, self._y = x[rows], y[rows]
        self.sample_shape = (self.image_size, self.image_size, self.channels)
        validate_images(self._x[..., None], (self.image_size, self.image_size, 1), "digits")

    def __len__(self) -> int:
        return len(self._y)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        x = self._x[idx][..., None]
        if self.channels == 3:
            x = np.repeat(x, 3, axis=-1)
        return {"x": np.ascontiguousarray(x, np.float32), "label": self._y[idx].copy()}


@functools.lru_cache(maxsize=4)
def _mixture_pool(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pts, modes = sample_mixture(name, MIXTURE_POOL_SIZE, seed)
    pts.flags.writeable = False
    modes.flags.writeable = False
    return pts, modes


class MixtureSource(Source):
    """A fixed pool of points from the 2D mixture ``name`` (``'ring8'`` or ``'grid25'``).

    ``'train'`` and ``'test'`` are independent draws of 100,000 points (seeds 0 and 1);
    ``'all'`` is both. ``label`` is the index of the mode each point was drawn from, in the
    order of :func:`jaxgan.data.mixtures.mixture_centers`.
    """

    kind = "points"
    sample_shape = (2,)

    def __init__(self, name: str, split: str = "train"):
        if name not in MIXTURES:
            raise ValueError(f"unknown mixture {name!r}; known: {sorted(MIXTURES)}")
        _check_split(name, split)
        self.name = name
        self.split = split
        self.num_classes = len(mixture_centers(name))
        seeds = [0, 1] if split == "all" else [_MIXTURE_SPLIT_SEEDS[split]]
        pools = [_mixture_pool(name, s) for s in seeds]
        self._x = np.concatenate([p[0] for p in pools]) if len(pools) > 1 else pools[0][0]
        self._y = np.concatenate([p[1] for p in pools]) if len(pools) > 1 else pools[0][1]

    def __len__(self) -> int:
        return len(self._y)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        return {"x": self._x[idx], "label": self._y[idx]}
