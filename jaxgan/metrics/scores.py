"""Sample-quality scores on any features: KID, Inception Score, improved precision/recall.

All functions take numpy arrays (features or class probabilities), compute in float64 on
the host, work in blocks so that 50,000 x 2,048 features fit in bounded memory, and return
Python floats.

* Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
  estimator of MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
  over random subsets as the reference implementations do.
* Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs"):
  exp(E_x KL(p(y|x) || p(y))), mean and std over splits.
* Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall
  Metric for Assessing Generative Models"): k-NN balls around each set's points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Pairwise-distance blocks hold at most this many float64 entries (128 MiB).
_BLOCK_ELEMENTS = 1 << 24


def _rows_per_block(n_cols: int, block: int | None) -> int:
    if block is not None:
        return max(1, int(block))
    return max(1, min(4096, _BLOCK_ELEMENTS // max(n_cols, 1)))


def _as_features(x: Any, name: str) -> np.ndarray:
    f = np.asarray(x, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"{name} must be (N>0, D) features, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return f


def _check_same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equal-size samples ``x``, ``y`` (m, d), kernel (x.y/d + 1)^3.

    MMD^2_u = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m(m-1))
              - 2 sum_{i,j} k(x_i,y_j) / m^2
    """
    m, d = x.shape
    if y.shape != (m, d) or m < 2:
        raise ValueError(f"need two (m>=2, d) samples of equal shape, got {x.shape}, {y.shape}")
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))
    return float(within / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    feat_a: Any,
    feat_b: Any,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``num_subsets`` random subsets (Binkowski et al. 2018).

    Each subset draws ``m = min(subset_size, len(feat_a), len(feat_b))`` rows of each set
    without replacement (a ``numpy.random.default_rng(seed)`` stream) and computes
    ``polynomial_mmd2_unbiased``; the std is the population std (ddof=0) over subsets.
    Unbiased, so it can be slightly negative for two samples of one distribution.
    """
    a = _as_features(feat_a, "feat_a")
    b = _as_features(feat_b, "feat_b")
    _check_same_dim(a, b)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 points, got {m}")
    rng = np.random.default_rng(seed)
    vals = np.empty(num_subsets)
    for i in range(num_subsets):
        xa = a[rng.choice(a.shape[0], m, replace=False)]
        xb = b[rng.choice(b.shape[0], m, replace=False)]
        vals[i] = polynomial_mmd2_unbiased(xa, xb)
    return float(vals.mean()), float(vals.std())


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``(mean, std)``: exp(E_x KL(p(y|x) || p(y))) per split (Salimans 2016).

    ``probs`` is ``(N, C)`` class probabilities (rows sum to 1). The rows are cut into
    ``splits`` consecutive parts ``[i N // splits, (i+1) N // splits)`` as the reference
    code does; p(y) is each part's mean. The std is over splits (ddof=0).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must be (N>0, C), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs rows must sum to 1 (pass softmax probabilities, not logits)")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in [1, N={n}], got {splits}")
    # p log p with 0 log 0 = 0; p(y) >= p(y|x)/n > 0 wherever p(y|x) > 0.
    logp = np.log(np.where(p > 0, p, 1.0))
    scores = np.empty(splits)
    for i in range(splits):
        rows = slice(i * n // splits, (i + 1) * n // splits)
        part, lpart = p[rows], logp[rows]
        py = part.mean(axis=0)
        logpy = np.log(np.where(py > 0, py, 1.0))
        kl = (part * (lpart - logpy)).sum(axis=1)
        scores[i] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _distance_block(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b``."""
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def knn_radii(feats: np.ndarray, k: int, block: int | None = None) -> np.ndarray:
    """Distance from each row to its k-th nearest neighbour in ``feats`` (itself excluded).

    As in the reference code, this is the (k+1)-th smallest distance in the row, the
    point's zero distance to itself counting as the first.
    """
    n = feats.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N-1={n - 1}], got {k}")
    sq = _sq_norms(feats)
    block = _rows_per_block(n, block)
    radii = np.empty(n)
    for s in range(0, n, block):
        d = _distance_block(feats[s : s + block], sq[s : s + block], feats, sq)
        radii[s : s + block] = np.partition(d, k, axis=1)[:, k]
    return radii


def _coverage(
    support: np.ndarray, radii: np.ndarray, queries: np.ndarray, block: int | None = None
) -> float:
    """Fraction of ``queries`` within ``radii[j]`` of some ``support[j]``."""
    s_sq, q_sq = _sq_norms(support), _sq_norms(queries)
    block = _rows_per_block(support.shape[0], block)
    inside = np.zeros(queries.shape[0], dtype=bool)
    for s in range(0, queries.shape[0], block):
        d = _distance_block(queries[s : s + block], q_sq[s : s + block], support, s_sq)
        inside[s : s + block] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real_feats: Any, fake_feats: Any, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    The real manifold is the union of balls around each real point with radius its k-th
    nearest-neighbour distance among the reals; precision is the fraction of fakes inside
    it. Recall is the same with the roles swapped: the fraction of reals inside the fake
    manifold. Distances are Euclidean; ``<=`` counts a point on a ball's surface as inside.
    """
    real = _as_features(real_feats, "real_feats")
    fake = _as_features(fake_feats, "fake_feats")
    _check_same_dim(real, fake)
    precision = _coverage(real, knn_radii(real, k), fake)
    recall = _coverage(fake, knn_radii(fake, k), real)
    return precision, recall
