"""The Frechet distance between two Gaussians, computed as the reference FID does.

d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))   (Heusel et al. 2017, "GANs Trained
by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium").

Everything is float64 on the host. As in the reference implementation: the matrix square
root comes from ``scipy.linalg.sqrtm``; if the product is singular (non-finite root) an
``eps`` times identity is added to both covariances; a complex root whose imaginary part
is numerically zero (diagonal within 1e-3) is replaced by its real part, otherwise it is
an error.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(
            f"covariances must both be {(mu1.shape[0],) * 2}, got {sigma1.shape} and {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = np.max(np.abs(covmean.imag))
            raise ValueError(f"matrix square root has an imaginary component of {worst}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, rowvar=False) covariance of ``(N, D)`` features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need (N>=2, D) features, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)
