"""2D Gaussian mixtures: the classic mode-collapse benchmarks.

* ``ring8``: 8 Gaussians evenly spaced on a circle of radius 2, standard deviation 0.02
  (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017, "VEEGAN").
* ``grid25``: 25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, standard deviation 0.05
  (Srivastava et al. 2017; Lin et al. 2018, "PacGAN").

Both are defined here once; the data sources and the mode-coverage metric read them.
"""

from __future__ import annotations

import numpy as np

MIXTURES: dict[str, float] = {"ring8": 0.02, "grid25": 0.05}


def mixture_centers(name: str) -> np.ndarray:
    """Return the ``(K, 2)`` float32 array of mode centres of mixture ``name``."""
    if name == "ring8":
        angles = 2.0 * np.pi * np.arange(8) / 8.0
        return (2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)
    if name == "grid25":
        g = np.arange(-4.0, 5.0, 2.0)
        xx, yy = np.meshgrid(g, g, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    raise ValueError(f"unknown mixture {name!r}; known: {sorted(MIXTURES)}")


def mixture_std(name: str) -> float:
    """Standard deviation of each mode of mixture ``name``."""
    if name not in MIXTURES:
        raise ValueError(f"unknown mixture {name!r}; known: {sorted(MIXTURES)}")
    return MIXTURES[name]


def sample_mixture(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` points: returns ``(points (n, 2) float32, mode index (n,) int32)``."""
    rng = np.random.default_rng(seed)
    centers = mixture_centers(name)
    modes = rng.integers(0, len(centers), size=n).astype(np.int32)
    pts = centers[modes] + mixture_std(name) * rng.standard_normal((n, 2)).astype(np.float32)
    return pts.astype(np.float32), modes
