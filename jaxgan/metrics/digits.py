"""A small CNN for scikit-learn's 8x8 digits: FID, Inception Score and accuracy without downloads.

scikit-learn ships 1,797 handwritten digits (8x8, values 0..16, 10 classes) inside its wheel,
so a classifier trained on them gives image metrics that need no downloaded weights. The
weights live in ``jaxgan/assets/digits_classifier.npz`` (126k float32 parameters, 470 KB)
and are made, deterministically, by::

    python -m jaxgan.metrics.digits --train

which trains with ``seed=0`` (30 epochs, about 4 minutes on two CPU cores), writes the file
and prints the held-out test accuracy. The shipped file scores 97.98% on the 297 test
digits at 8x8 and 97.6-98.0% on them upsampled to 16, 32 and 64 (bicubic or bilinear).

Conventions
-----------
* Images are NHWC float32 in [-1, 1] with one channel and any square size (8, 16, 32, 64,
  ...): a digit ``v`` in 0..16 maps to ``v / 8 - 1``. Before the network the images are
  resized to 8x8 with an antialiased (triangle-filter) ``jax.image.resize(..., "linear",
  antialias=True)``, so that the classifier sees what it was trained on.
* Split: the LAST 297 digits are the held-out test split, the first 1,500 the training split
  (the data module uses the same convention).
* Training (``train_digits_classifier``) uses the 8x8 training digits plus their round trips
  8 -> S -> 8 for S in 16, 32, 64 (bicubic, bilinear and nearest upsampling, then the
  resize above), so digits generated at a model's resolution are classified as well as the
  originals; each batch also gets random one-pixel shifts and Gaussian noise.
* Real digits at another resolution: ``upsample`` with the default ``"bicubic"`` is
  ``jax.image.resize(..., "cubic")`` clipped to [-1, 1], which equals (to 3e-7) the PIL
  bicubic resize plus clipping that the ``digits`` data source uses. ``digits_fid`` compares
  fakes with real digits brought to the fakes' resolution this way: the resize round trip
  blurs, so comparing 32x32 fakes with 8x8 originals would add a large constant.

Metrics on top of the classifier: ``digits_fid`` (Frechet distance between Gaussians fitted
to the 64-d penultimate features, as FID does with Inception pool3), ``digits_inception_score``
(Salimans et al. 2016 with the digits classifier's probabilities) and
``classification_accuracy``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxgan.metrics.frechet import frechet_distance, gaussian_stats
from jaxgan.metrics.scores import inception_score

NUM_CLASSES = 10
SIZE = 8
TEST_SIZE = 297
FEATURE_DIM = 64
RANGE_TOLERANCE = 0.1
DEFAULT_WEIGHTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "digits_classifier.npz"
)
_AUGMENT_SIZES = (16, 32, 64)
SHIFT_KEEP = 0.5
NOISE_MAX = 0.1

Params = dict[str, Any]


class DigitsNet(nn.Module):
    """Three 3x3 convolutions, two 2x2 max-pools, a 64-unit ReLU layer and 10 logits.

    The features are that layer's pre-activations: after ReLU many units are zero on every
    digit, which would make the feature covariance singular (and FID ill-conditioned).
    """

    features: int = FEATURE_DIM
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Map ``(N, 8, 8, 1)`` images to ``(logits (N, 10), features (N, 64))``."""
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        x = nn.relu(nn.Conv(64, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(128, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        feats = nn.Dense(self.features)(x)
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(feats))
        logits = nn.Dense(NUM_CLASSES)(h)
        return logits, feats


def load_digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as ``(images (N, 8, 8, 1) float32 in [-1, 1], labels (N,) int32)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images.astype(np.float32) / 8.0 - 1.0)[..., None]
    return images, d.target.astype(np.int32)


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)``; test = the last 297."""
    images, labels = load_digit_arrays()
    n = len(images) - TEST_SIZE
    return images[:n], labels[:n], images[n:], labels[n:]


def to_classifier_resolution(images: jax.Array) -> jax.Array:
    """Resize ``(N, H, W, 1)`` images to 8x8 with an antialiased linear (triangle) filter."""
    if images.shape[1:3] == (SIZE, SIZE):
        return images
    shape = (images.shape[0], SIZE, SIZE, images.shape[3])
    return jax.image.resize(images, shape, method="linear", antialias=True)


def upsample(images: jax.Array, size: int, method: str = "bicubic") -> jax.Array:
    """Resize ``(N, 8, 8, C)`` digits to ``size`` x ``size`` and clip to [-1, 1].

    The default (bicubic, Keys a=-0.5, then clipping) reproduces the ``digits`` data source,
    i.e. what a generator trained at ``size`` learns to imitate.
    """
    shape = (images.shape[0], size, size, images.shape[3])
    return jnp.clip(jax.image.resize(images, shape, method=method), -1.0, 1.0)


def check_images(images: Any) -> np.ndarray:
    """Return ``(N, H, H, 1)`` float32 numpy images after checking shape and range [-1, 1].

    Three-channel images (the data source's ``channels=3``: the grey value repeated) are
    averaged to one channel. Values may exceed [-1, 1] by ``RANGE_TOLERANCE`` (e.g. cubic
    overshoot); anything further out, or non-finite, is an error: images in [0, 255] are
    the usual mistake.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[1] != x.shape[2] or x.shape[0] == 0:
        raise ValueError(
            f"digits metrics need NHWC images of shape (N>0, H, H, 1 or 3), got shape {x.shape}"
        )
    if x.shape[-1] == 3:
        x = x.mean(axis=-1, keepdims=True)
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise ValueError(f"images must be in [-1, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return x


@jax.jit
def _forward(params: Params, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    return DigitsNet().apply({"params": params}, to_classifier_resolution(images))


class DigitsClassifier:
    """Trained digits CNN: batched, jit-compiled ``logits``/``probs``/``features``/``predict``."""

    def __init__(self, params: Params, batch_size: int = 1024) -> None:
        """Wrap trained ``params`` (the ``"params"`` collection of ``DigitsNet``)."""
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self.batch_size = int(batch_size)

    def _run(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        x = check_images(images)
        n = x.shape[0]
        # Pad batches to a power of two (at most batch_size) to bound recompilation.
        bs = min(self.batch_size, 1 << max(n - 1, 0).bit_length())
        logits, feats = [], []
        for start in range(0, n, bs):
            chunk = x[start : start + bs]
            m = chunk.shape[0]
            if m < bs:
                chunk = np.concatenate([chunk, np.zeros((bs - m,) + chunk.shape[1:], np.float32)])
            lg, ft = _forward(self.params, chunk)
            logits.append(np.asarray(lg)[:m])
            feats.append(np.asarray(ft)[:m])
        return np.concatenate(logits), np.concatenate(feats)

    def logits(self, images: Any) -> np.ndarray:
        """``(N, 10)`` float32 logits of ``(N, H, H, 1)`` images in [-1, 1]."""
        return self._run(images)[0]

    def probs(self, images: Any) -> np.ndarray:
        """``(N, 10)`` float64 class probabilities (softmax of the logits)."""
        lg = self.logits(images).astype(np.float64)
        lg -= lg.max(axis=1, keepdims=True)
        e = np.exp(lg)
        return e / e.sum(axis=1, keepdims=True)

    def features(self, images: Any) -> np.ndarray:
        """``(N, 64)`` float32 penultimate-layer features (pre-activations of the ReLU)."""
        return self._run(images)[1]

    def predict(self, images: Any) -> np.ndarray:
        """``(N,)`` int32 predicted classes."""
        return np.argmax(self.logits(images), axis=1).astype(np.int32)


def save_params(params: Params, path: str) -> None:
    """Write ``params`` as a flat ``.npz`` of float32 arrays (keys like ``Conv_0/kernel``)."""
    flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **{k: np.asarray(v, dtype=np.float32) for k, v in flat.items()})


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes = jax.eval_shape(
        lambda: DigitsNet().init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 1)))["params"]
    )
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def load_params(path: str) -> Params:
    """Read a file written by ``save_params``; say which key is wrong when it does not fit."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"digits classifier weights not found at {path}; "
            "make them with `python -m jaxgan.metrics.digits --train`"
        )
    expected = _expected_shapes()
    with np.load(path, allow_pickle=False) as f:
        flat = {k: f[k] for k in f.files}
    missing = sorted(set(expected) - set(flat))
    extra = sorted(set(flat) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: not DigitsNet weights (missing keys {missing}, extra {extra})")
    for k, shape in expected.items():
        if flat[k].shape != shape:
            raise ValueError(f"{path}: key {k!r} has shape {flat[k].shape}, expected {shape}")
    return traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()}, sep="/")


@functools.lru_cache(maxsize=4)
def load_digits_classifier(path: str | None = None) -> DigitsClassifier:
    """The shipped (or ``path``'s) trained classifier; cached per path."""
    return DigitsClassifier(load_params(path or DEFAULT_WEIGHTS))


# ----------------------------------------------------------------------------- metrics


def real_digits(size: int = SIZE) -> np.ndarray:
    """All 1,797 real digits at ``size`` x ``size`` as the data source makes them."""
    images, _ = load_digit_arrays()
    if size == SIZE:
        return images
    return np.asarray(upsample(jnp.asarray(images), size))


@functools.lru_cache(maxsize=8)
def _real_stats(size: int) -> tuple[np.ndarray, np.ndarray]:
    return gaussian_stats(load_digits_classifier().features(real_digits(size)))


def digits_fid(fake_images: Any, real_images: Any | None = None) -> float:
    """Frechet distance between digits-classifier features of fake and real images.

    ``real_images`` defaults to all 1,797 digits at the fakes' resolution (``real_digits``:
    bicubic upsampling and clipping, as the ``digits`` data source does; statistics cached
    per resolution). Pass your own set to compare against, e.g., the test split only.
    """
    clf = load_digits_classifier()
    fake = check_images(fake_images)
    mu_f, s_f = gaussian_stats(clf.features(fake))
    if real_images is None:
        mu_r, s_r = _real_stats(fake.shape[1])
    else:
        mu_r, s_r = gaussian_stats(clf.features(real_images))
    return frechet_distance(mu_f, s_f, mu_r, s_r)


def classification_accuracy(images: Any, labels: Any) -> float:
    """Fraction of ``images`` the digits classifier labels as ``labels``."""
    y = np.asarray(labels).reshape(-1)
    x = check_images(images)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {y.shape[0]} labels")
    return float(np.mean(load_digits_classifier().predict(x) == y))


def digits_inception_score(images: Any, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` over ``splits`` with the digits classifier (max 10)."""
    return inception_score(load_digits_classifier().probs(images), splits=splits)


# ----------------------------------------------------------------------------- training


@functools.lru_cache(maxsize=2)
def _training_set(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Training digits plus 8 -> S -> 8 round trips (bicubic, bilinear, nearest upsampling)."""
    images, labels, _, _ = digits_split()
    sets = [images]
    for size in sizes:
        for method in ("bicubic", "bilinear", "nearest"):
            sets.append(np.asarray(_round_trip(jnp.asarray(images), size, method)))
    return np.concatenate(sets), np.tile(labels, len(sets))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _round_trip(images: jax.Array, size: int, method: str) -> jax.Array:
    return to_classifier_resolution(upsample(images, size, method))


def _augment_batch(key: jax.Array, x: jax.Array) -> jax.Array:
    """Random shifts of -1, 0 or +1 pixel per axis (background -1 fills in) and noise."""
    k_shift, k_noise, k_std, k_keep = jax.random.split(key, 4)
    n = x.shape[0]
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(k_shift, (n, 2), 0, 3)

    def crop(img: jax.Array, off: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (SIZE, SIZE, img.shape[-1]))

    shifted = jax.vmap(crop)(padded, offsets)
    keep = jax.random.bernoulli(k_keep, SHIFT_KEEP, (n, 1, 1, 1))
    x = jnp.where(keep, x, shifted)
    std = jax.random.uniform(k_std, (n, 1, 1, 1), maxval=NOISE_MAX)
    return x + std * jax.random.normal(k_noise, x.shape)


_ADAM = optax.scale_by_adam()


@jax.jit
def _train_step(
    params: Params, opt_state: Any, xb: jax.Array, yb: jax.Array, key: jax.Array, lr: jax.Array
) -> tuple[Params, Any, jax.Array]:
    """One Adam step on an augmented batch; ``lr`` is this step's learning rate."""
    k_aug, k_drop = jax.random.split(key)
    xb = _augment_batch(k_aug, xb)

    def loss_fn(p: Params) -> jax.Array:
        logits, _ = DigitsNet().apply({"params": p}, xb, train=True, rngs={"dropout": k_drop})
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = _ADAM.update(grads, opt_state, params)
    params = jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates)
    return params, opt_state, loss


def _accuracy(params: Params, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(DigitsClassifier(params).predict(images) == labels))


def train_digits_classifier(
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    max_steps: int | None = None,
    evaluate: bool = True,
    round_trip_sizes: Sequence[int] = _AUGMENT_SIZES,
) -> tuple[Params, dict[str, float]]:
    """Train ``DigitsNet`` deterministically on the first 1,500 digits.

    Adam with a cosine-decayed learning rate (computed on the host and passed to the one
    compiled step), softmax cross-entropy, dropout 0.3 on the features. Keys: one per step,
    ``fold_in(key, step)``; shuffling per epoch likewise.
    ``max_steps`` stops early and fewer ``round_trip_sizes`` shrink the data (for tests).
    Returns ``(params, metrics)`` with the test accuracy at 8x8 and at 16/32/64 (bicubic and
    bilinear upsampling); ``metrics`` is empty if ``evaluate`` is False.
    """
    train_x, train_y, test_x, test_y = digits_split()
    x_all, y_all = _training_set(tuple(int(s) for s in round_trip_sizes))
    steps_per_epoch = len(x_all) // batch_size
    total = (
        epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    )
    key = jax.random.key(seed)
    k_init, k_shuffle, k_step = jax.random.split(key, 3)
    params = DigitsNet().init(k_init, jnp.zeros((1, SIZE, SIZE, 1)))["params"]
    opt_state = _ADAM.init(params)
    x_dev, y_dev = jnp.asarray(x_all), jnp.asarray(y_all)
    for t in range(total):
        epoch, i = divmod(t, steps_per_epoch)
        if i == 0:
            perm = jax.random.permutation(jax.random.fold_in(k_shuffle, epoch), len(x_all))
        idx = perm[i * batch_size : (i + 1) * batch_size]
        lr = np.float32(0.5 * learning_rate * (1.0 + math.cos(math.pi * t / max(total, 1))))
        params, opt_state, _ = _train_step(
            params, opt_state, x_dev[idx], y_dev[idx], jax.random.fold_in(k_step, t), lr
        )

    metrics: dict[str, float] = {}
    if evaluate:
        metrics["test_accuracy_8"] = _accuracy(params, test_x, test_y)
        for size in _AUGMENT_SIZES:
            for method in ("bicubic", "bilinear"):
                up = np.asarray(upsample(jnp.asarray(test_x), size, method))
                metrics[f"test_accuracy_{size}_{method}"] = _accuracy(params, up, test_y)
        metrics["train_accuracy_8"] = _accuracy(params, train_x, train_y)
    return params, metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m jaxgan.metrics.digits --train [--out PATH] [--seed 0]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train and write the weights")
    parser.add_argument("--out", default=DEFAULT_WEIGHTS, help="where to write the .npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    if not args.train:
        clf = load_digits_classifier(args.out)
        _, _, test_x, test_y = digits_split()
        print(f"test accuracy (8x8): {np.mean(clf.predict(test_x) == test_y):.4f}")
        return 0
    params, metrics = train_digits_classifier(seed=args.seed, epochs=args.epochs)
    save_params(params, args.out)
    print(f"wrote {args.out}")
    for k, v in metrics.items():
        print(f"{k}: {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
