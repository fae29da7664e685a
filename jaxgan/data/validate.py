"""Checks on image batches, and the one image conversion every image source shares.

Every image that leaves :mod:`jaxgan.data` is float32 ``(H, W, C)`` in [-1, 1], channels
last. :func:`validate_images` is the check (also usable on generator outputs and on arrays
users hand to the metrics); :func:`prepare_image` is the conversion (crop, resize, channel
count, scaling) used by the tfds and folder sources.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

#: Slack allowed beyond [-1, 1] before :func:`validate_images` complains.
RANGE_TOLERANCE = 1e-3


def validate_images(
    x: np.ndarray,
    expected_shape: Sequence[int | None] | None = None,
    name: str = "images",
    atol: float = RANGE_TOLERANCE,
) -> np.ndarray:
    """Check a batch of images and return it as a numpy array.

    Args:
      x: array-like of shape ``(N, H, W, C)``, floating point, values in [-1, 1].
      expected_shape: ``(H, W, C)`` (or ``(N, H, W, C)``) the images must have; ``None``
        entries match anything. Without it the channel count must be 1 or 3.
      name: what the images are, for the error message (e.g. ``"digits batch"``).
      atol: tolerance beyond [-1, 1].

    Raises:
      ValueError: naming ``name`` and the problem: wrong rank, wrong size or channels,
        non-floating dtype, NaN/inf values or values outside [-1, 1].
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(
            f"{name}: expected a batch of images of shape (N, H, W, C), got an array of "
            f"shape {x.shape} (rank {x.ndim})"
        )
    if not np.issubdtype(x.dtype, np.floating):
        hint = " (scale uint8 images with x / 127.5 - 1)" if x.dtype == np.uint8 else ""
        raise ValueError(f"{name}: expected floating point values in [-1, 1], got {x.dtype}{hint}")
    if expected_shape is not None:
        expected = tuple(expected_shape)
        if len(expected) not in (3, 4):
            raise ValueError(f"expected_shape must be (H, W, C) or (N, H, W, C), got {expected}")
        got = x.shape[-len(expected) :]
        labels = ("batch size", "height", "width", "channels")[-len(expected) :]
        for want, have, what in zip(expected, got, labels, strict=True):
            if want is not None and want != have:
                raise ValueError(
                    f"{name}: wrong {what}: expected images of shape {expected}, got "
                    f"{x.shape[-len(expected) :]} (batch shape {x.shape}; images are NHWC)"
                )
    elif x.shape[-1] not in (1, 3):
        hint = " (this looks like NCHW: jaxgan uses NHWC)" if x.shape[1] in (1, 3) else ""
        raise ValueError(
            f"{name}: expected 1 or 3 channels in the last axis, got shape {x.shape}{hint}"
        )
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - finite.sum())
        raise ValueError(f"{name}: {bad} of {x.size} values are NaN or infinite")
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.0 - atol or hi > 1.0 + atol:
            raise ValueError(
                f"{name}: values must lie in [-1, 1], got min {lo:.4g} and max {hi:.4g}"
            )
    return x


def check_image_options(image_size: int | None, channels: int | None) -> None:
    """Raise ``ValueError`` unless ``image_size`` is ``None`` or a positive int and
    ``channels`` is ``None``, 1 or 3."""
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
    ):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    if image_size is not None and image_size <= 0:
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")


def center_crop_square(img: Image.Image) -> Image.Image:
    """The largest centred square of ``img``."""
    w, h = img.size
    if w == h:
        return img
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """An ``(H, W)`` or ``(H, W, C)`` uint8 array (C in 1, 2, 3, 4) as a PIL image.

    Other integer types are scaled by their maximum, floats are taken to be in [0, 1].
    """
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W, C) image with 1 to 4 channels, got {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
        arr = np.round(arr.astype(np.float64) * (255.0 / np.iinfo(arr.dtype).max))
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr, mode=mode)


def prepare_image(img: Image.Image, image_size: int | None, channels: int) -> np.ndarray:
    """Convert a PIL image to float32 ``(H, W, channels)`` in [-1, 1].

    Greyscale uses the ITU-R 601 luma (PIL's ``convert('L')``); alpha is dropped. With
    ``image_size`` the image is centre-cropped to a square and resized with PIL's bicubic
    filter (antialiased when shrinking); without it the size is kept.
    """
    img = img.convert("L" if channels == 1 else "RGB")
    if image_size is not None and img.size != (image_size, image_size):
        img = center_crop_square(img).resize((image_size, image_size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr / 127.5 - 1.0
