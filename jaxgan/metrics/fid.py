"""Frechet Inception Distance with parity to pytorch-fid, streaming and jit-compiled.

Typical use::

    feature_fn = load_inception("pt_inception-2015-12-05-6726825d.pth")  # or the .npz
    mu, sigma = compute_stats(feature_fn, batches_of_images)              # NHWC in [-1, 1]
    save_stats("real.npz", mu, sigma)
    fid = fid_from_stats(mu, sigma, *load_stats("real.npz"))

Pieces:

* :func:`load_inception` reads the weights (``.pth`` without torch, or a converted ``.npz``)
  and returns an :class:`InceptionFeatures`: a callable ``images -> (N, dims)`` float32
  ``jax.Array``, jit-compiled once per input shape (preprocessing, i.e. the bilinear resize
  to 299 and the value mapping, is its own small jit so that the network itself compiles once
  per batch size whatever the image size).
* :class:`FeatureStats` accumulates mean and covariance over a stream of feature batches:
  per batch, on device and under jit, the float32 sum and Gram matrix ``D^T D`` of the
  features minus a fixed shift (the first batch's mean, which removes the cancellation of
  the naive ``E[x x^T] - mu mu^T``); on the host, those are added up in float64.
* :func:`compute_stats` runs the two over an iterable of image batches, with a tqdm bar.
* :func:`fid_from_stats` is :func:`jaxgan.metrics.frechet.frechet_distance` (float64, scipy
  ``sqrtm``, as pytorch-fid); :func:`save_stats` / :func:`load_stats` use pytorch-fid's
  ``.npz`` layout (keys ``mu`` and ``sigma``), so statistics files are interchangeable.

Sharding: batches may be ``jax.Array``s sharded along the batch axis over a mesh
(``NamedSharding(mesh, P("data"))``, Auto or Explicit axes). The network then runs data
parallel; the weights are replicated by jit (or pass ``sharding=NamedSharding(mesh, P())``
to :func:`load_inception` to place them once); the per-batch sums reduce over the batch axis
with ``jnp.sum``/``einsum``, which XLA turns into an all-reduce, and the (D,) and (D, D)
results come back replicated. Nothing in this module calls ``pmap`` or needs a mesh context.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from jaxgan.metrics.frechet import frechet_distance
from jaxgan.nets.inception import (
    FID_DIMS,
    INPUT_SIZE,
    InceptionV3,
    load_inception_variables,
    preprocess,
)

__all__ = [
    "FeatureStats",
    "InceptionFeatures",
    "compute_stats",
    "fid_from_stats",
    "load_inception",
    "load_stats",
    "resize_images",
    "save_stats",
]


@partial(jax.jit, static_argnames=("input_range", "resize"))
def _preprocess(x: jax.Array, input_range: tuple[float, float], resize: bool) -> jax.Array:
    return preprocess(x, input_range, resize)


@partial(jax.jit, static_argnames=("size",))
def resize_images(x: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """Bilinear (half-pixel, no antialias) resize of NHWC images to ``size``x``size``, float32.

    The same resize the network applies; useful to bring images of different sizes to a
    common shape before batching them (values are left in their range).
    """
    x = jnp.asarray(x, jnp.float32)
    return jax.image.resize(
        x, (x.shape[0], size, size, x.shape[-1]), method="bilinear", antialias=False
    )


@partial(jax.jit, static_argnames=("dims", "precision"))
def _features(variables: Any, x: jax.Array, dims: int, precision: str | None) -> jax.Array:
    model = InceptionV3(dims=dims, resize_input=False, precision=precision)
    return model.apply(variables, x)


@dataclass(frozen=True, eq=False)
class InceptionFeatures:
    """``images (N, H, W, 3) -> features (N, dims)`` with the FID InceptionV3.

    Images are NHWC with values in ``input_range`` (jaxgan's ``[-1, 1]`` by default;
    ``(0.0, 1.0)`` for pytorch-fid's convention, e.g. ``uint8 / 255``); any size of at least
    75x75 when ``resize`` is false, any size at all otherwise (they are resized to 299x299).
    Built by :func:`load_inception`.
    """

    variables: Any = field(repr=False)
    dims: int = 2048
    input_range: tuple[float, float] = (-1.0, 1.0)
    resize: bool = True
    precision: str | None = "highest"

    def preprocess(self, images: Any) -> jax.Array:
        """Resize (if enabled) and map to ``[-1, 1]``: the network's actual input."""
        shape = np.shape(images)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"expected NHWC RGB images (N, H, W, 3), got shape {shape}")
        dtype = getattr(images, "dtype", np.float32)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"images must be floats in {self.input_range}, got {dtype}")
        if not self.resize and min(shape[1:3]) < 75:
            raise ValueError(f"images must be at least 75x75 without resizing, got {shape}")
        return _preprocess(images, self.input_range, self.resize)

    def __call__(self, images: Any) -> jax.Array:
        return _features(self.variables, self.preprocess(images), self.dims, self.precision)


def load_inception(
    path: str | os.PathLike,
    *,
    dims: int = 2048,
    input_range: tuple[float, float] = (-1.0, 1.0),
    resize: bool = True,
    precision: str | None = "highest",
    sharding: jax.sharding.Sharding | None = None,
) -> InceptionFeatures:
    """Load the FID InceptionV3 from ``path`` and return its jit-compiled feature function.

    Args:
      path: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (read without torch and
        without unpickling arbitrary objects) or its ``.npz`` conversion
        (``python -m jaxgan.fid convert``). Errors name the file and the offending key.
      dims: 2048 (pool3, standard FID), 768, 192 or 64, as pytorch-fid's ``--dims``.
      input_range: value range of the images that will be passed in.
      resize: resize inputs to 299x299 (pytorch-fid always does).
      precision: conv precision; ``"highest"`` avoids TF32/bfloat16 passes on accelerators.
      sharding: where to place the weights (e.g. replicated over a mesh); default device if
        None.
    """
    if dims not in FID_DIMS:
        raise ValueError(f"dims must be one of {FID_DIMS}, got {dims}")
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
    variables = load_inception_variables(path)
    variables = jax.device_put(variables, sharding)
    return InceptionFeatures(variables, dims, (lo, hi), resize, precision)


# --------------------------------------------------------------------------------------------
# Streaming statistics.


def _replicated_kwargs(x: jax.Array) -> dict[str, Any]:
    """``out_sharding`` for a reduction over a batch axis that an Explicit mesh may shard."""
    mesh = jax.typeof(x).sharding.mesh
    if any(t == AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
        return {"out_sharding": NamedSharding(mesh, PartitionSpec())}
    return {}


@partial(jax.jit, static_argnames=("gram",))
def _shifted_moments(
    features: jax.Array, shift: jax.Array, n_valid: jax.Array, gram: bool = True
) -> tuple[jax.Array, jax.Array | None]:
    """Sum and Gram matrix of ``features[:n_valid] - shift``, float32, at full precision.

    Rows are masked rather than sliced, so a batch sharded over a mesh stays sharded.
    """
    f = jnp.asarray(features, jnp.float32)
    valid = (jnp.arange(f.shape[0]) < n_valid)[:, None]
    d = jnp.where(valid, f - shift, 0.0)
    kw = _replicated_kwargs(d)
    s1 = jnp.einsum("nd->d", d, **kw)
    if not gram:
        return s1, None
    s2 = jnp.einsum("nd,ne->de", d, d, precision=jax.lax.Precision.HIGHEST, **kw)
    return s1, s2


class FeatureStats:
    """Running mean and covariance of ``(N, D)`` feature batches (see the module docstring).

    ``update`` dispatches the per-batch reduction and returns without waiting for it; the
    previous batch's result is fetched and added (float64, host) at the next ``update``, so
    device work overlaps host work. ``mean_cov`` gives ``(mu, sigma)`` in float64 with the
    unbiased covariance (``np.cov(..., rowvar=False)``, as pytorch-fid).
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: jax.Array | None = None
        self._shift_host: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._gram: np.ndarray | None = None
        self._pending: tuple[jax.Array, jax.Array] | None = None

    @property
    def dims(self) -> int | None:
        """Feature dimension, once the first batch has been seen."""
        return None if self._shift_host is None else int(self._shift_host.shape[0])

    def update(self, features: Any, n_valid: int | None = None) -> None:
        """Add the first ``n_valid`` rows (all by default) of a ``(N, D)`` batch.

        Padding rows after ``n_valid`` let a short last batch reuse the compiled shape.
        """
        shape = np.shape(features)
        if len(shape) != 2:
            raise ValueError(f"features must be (N, D), got shape {shape}")
        n = shape[0] if n_valid is None else int(n_valid)
        if not 0 <= n <= shape[0]:
            raise ValueError(f"n_valid={n_valid} is outside [0, {shape[0]}]")
        if n == 0:
            return
        if self._shift_host is None:
            s1, _ = _shifted_moments(features, jnp.float32(0.0), jnp.int32(n), gram=False)
            self._shift_host = (np.asarray(s1, np.float64) / n).astype(np.float32)
            self._shift = jnp.asarray(self._shift_host)
            self._sum = np.zeros(shape[1], np.float64)
            self._gram = np.zeros((shape[1], shape[1]), np.float64)
        elif shape[1] != self.dims:
            raise ValueError(f"features have {shape[1]} dims, earlier batches had {self.dims}")
        result = _shifted_moments(features, self._shift, jnp.int32(n))
        self._flush()
        self._pending = result
        self.count += n

    def _flush(self) -> None:
        if self._pending is not None:
            s1, s2 = jax.device_get(self._pending)
            self._pending = None
            self._sum += np.asarray(s1, np.float64)
            self._gram += np.asarray(s2, np.float64)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)``: float64 mean ``(D,)`` and unbiased covariance ``(D, D)``."""
        self._flush()
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.count}")
        n = self.count
        mean_d = self._sum / n
        mu = self._shift_host.astype(np.float64) + mean_d
        sigma = (self._gram - n * np.outer(mean_d, mean_d)) / (n - 1)
        sigma = 0.5 * (sigma + sigma.T)
        return mu, sigma


def _check_range(images: Any, input_range: tuple[float, float], tol: float = 1e-3) -> None:
    lo, hi = input_range
    x = jnp.asarray(images)
    if jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"images are {x.dtype}; pass floats in {input_range} (e.g. uint8 / 255 with "
            "input_range=(0, 1))"
        )
    mn, mx = (float(v) for v in jax.device_get((jnp.min(x), jnp.max(x))))
    if not (np.isfinite(mn) and np.isfinite(mx)) or mn < lo - tol or mx > hi + tol:
        raise ValueError(f"image values span [{mn:.4g}, {mx:.4g}], expected within {input_range}")


def compute_stats(
    feature_fn: Callable[[Any], jax.Array],
    images: Iterable[Any],
    *,
    total: int | None = None,
    progress: bool = True,
    desc: str = "FID features",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of ``feature_fn`` over an iterable of image batches.

    Each batch is an ``(N, H, W, 3)`` array (numpy or a possibly sharded ``jax.Array``) in
    ``feature_fn``'s input range; the first batch's shape and range are checked before any
    network compute (if ``feature_fn`` has an ``input_range``). A batch smaller than the
    first (the last one, usually) is zero-padded to the first batch's size and masked, so
    the network compiles once. ``total`` (number of images) sizes the tqdm bar.
    """
    from tqdm.auto import tqdm

    stats = FeatureStats()
    batch_size: int | None = None
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for batch in images:
            shape = np.shape(batch)
            if len(shape) != 4 or shape[-1] != 3:
                raise ValueError(f"expected batches of NHWC RGB images, got shape {shape}")
            n = shape[0]
            if batch_size is None:
                batch_size = n
                input_range = getattr(feature_fn, "input_range", None)
                if input_range is not None:
                    _check_range(batch, input_range)
            if n > batch_size:
                raise ValueError(f"batch of {n} images after a first batch of {batch_size}")
            if n < batch_size:
                pad = [(0, batch_size - n)] + [(0, 0)] * 3
                batch = np.pad(batch, pad) if isinstance(batch, np.ndarray) else jnp.pad(batch, pad)
            stats.update(feature_fn(batch), n_valid=n)
            bar.update(n)
    if batch_size is None:
        raise ValueError("no images to compute statistics of")
    return stats.mean_cov()


def fid_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """FID between two sets of statistics: the Frechet distance of their Gaussians (float64).

    See :func:`jaxgan.metrics.frechet.frechet_distance` (pytorch-fid's computation).
    """
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Save ``mu`` ``(D,)`` and ``sigma`` ``(D, D)`` as a pytorch-fid compatible ``.npz``."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    _check_stats(mu, sigma, str(path))
    np.savez(path, mu=mu, sigma=sigma)


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(mu, sigma)`` from a ``.npz`` with keys ``mu`` and ``sigma`` (pytorch-fid's)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays: Mapping[str, np.ndarray] = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable statistics .npz ({e})") from e
    for key in ("mu", "sigma"):
        if key not in arrays:
            raise ValueError(f"{path}: statistics file has no '{key}' (keys: {sorted(arrays)})")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    _check_stats(mu, sigma, path)
    return mu, sigma


def _check_stats(mu: np.ndarray, sigma: np.ndarray, source: str) -> None:
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"{source}: mu must be (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{source}: statistics contain NaN or inf")


def _rgb_batches(images: np.ndarray, batch_size: int) -> Iterable[np.ndarray]:
    for i in range(0, len(images), batch_size):
        b = np.asarray(images[i : i + batch_size], np.float32)
        yield np.repeat(b, 3, axis=-1) if b.shape[-1] == 1 else b


def images_stats(
    feature_fn: Callable[[Any], jax.Array],
    images: np.ndarray,
    batch_size: int = 100,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`compute_stats` of an ``(N, H, W, C)`` array (greyscale is repeated to RGB)."""
    return compute_stats(
        feature_fn, _rgb_batches(images, batch_size), total=len(images), progress=progress
    )
