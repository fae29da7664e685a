"""Mode coverage on the 2D Gaussian mixtures (``ring8``, ``grid25``).

Protocol (Srivastava et al. 2017, "VEEGAN", Sec. 5.1; the same code path in Lin et al.
2018, "PacGAN", whose released ``MetricLogger`` we read to pin the thresholds down):

1. Draw samples from the generator (both papers use 2,500).
2. A sample is **high quality** if it lies within ``num_std = 3`` standard deviations of
   its nearest mode centre (distance / std < 3; each mode is isotropic with the mixture's
   std, so this is the Mahalanobis distance PacGAN computes).
3. A mode is **captured** if at least ``min_count`` high-quality samples have it as their
   nearest centre. VEEGAN and PacGAN count a mode as soon as one high-quality sample falls
   on it, so the default ``min_count`` is 1. A larger value (e.g. 20 out of 2,500) makes
   the count less sensitive to a few stray points; pass it explicitly and report it.
4. Report the number of captured modes and the fraction of high-quality samples.

As an extra, ``kl`` is KL(p || uniform) = log K - H(p) where p is the empirical
distribution of the high-quality samples over the K modes (PacGAN logs the entropy and the
Jensen-Shannon divergence of the same distribution): 0 when every mode gets the same share,
log K when all high-quality samples sit on one mode. With no high-quality sample at all p is
undefined and ``kl`` is reported as its maximum, log K.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxgan.data.mixtures import mixture_centers, mixture_std

VEEGAN_NUM_SAMPLES = 2500


def _check_samples(samples: Any) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"mode coverage needs (N>0, 2) samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinite values")
    return x


def mode_counts(samples: Any, mixture: str, num_std: float = 3.0) -> np.ndarray:
    """``(K,)`` int64 number of high-quality samples whose nearest centre is each mode."""
    x = _check_samples(samples)
    centers = mixture_centers(mixture).astype(np.float64)
    std = mixture_std(mixture)
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    nearest = d2.argmin(axis=1)
    dist = np.sqrt(d2[np.arange(len(x)), nearest])
    good = dist < num_std * std
    return np.bincount(nearest[good], minlength=len(centers)).astype(np.int64)


def mode_coverage(
    samples: Any, mixture: str, num_std: float = 3.0, min_count: int | None = None
) -> dict[str, float | int]:
    """Mode coverage of ``(N, 2)`` samples on ``mixture`` (see the module docstring).

    Returns ``{"modes": captured modes, "high_quality": fraction of high-quality samples,
    "kl": KL(p || uniform) of high-quality samples over modes}`` ("modes" is an int);
    ``min_count`` defaults to 1 (VEEGAN/PacGAN).
    """
    min_count = 1 if min_count is None else int(min_count)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if num_std <= 0:
        raise ValueError(f"num_std must be > 0, got {num_std}")
    counts = mode_counts(samples, mixture, num_std)
    n = np.asarray(samples).shape[0]
    total = counts.sum()
    k = len(counts)
    if total == 0:
        kl = float(np.log(k))
    else:
        p = counts[counts > 0] / total
        kl = float(np.log(k) + (p * np.log(p)).sum())
    return {
        "modes": int((counts >= min_count).sum()),
        "high_quality": float(total / n),
        "kl": max(kl, 0.0),
    }
