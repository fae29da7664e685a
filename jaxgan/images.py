"""Writing what a run shows a person: sample grids and 2D scatter plots as PNG."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map images in [-1, 1] to uint8 [0, 255] (clipping)."""
    x = (np.clip(np.asarray(images, dtype=np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.round(x).astype(np.uint8)


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile ``(N, H, W, C)`` images in [-1, 1] into one uint8 ``(H', W', C)`` grid."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"make_grid needs (N, H, W, C) images, got shape {images.shape}")
    n, h, w, c = images.shape
    ncol = nrow or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncol))
    grid = np.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(to_uint8(images)):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top : top + h, left : left + w] = img
    return grid


def save_image(array: np.ndarray, path: str, scale: int = 1) -> str:
    """Write a uint8 ``(H, W, C)`` array as PNG (atomically), upscaled by ``scale``."""
    if array.shape[-1] == 1:
        array = array[..., 0]
    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    img.save(tmp)
    os.replace(tmp, path)
    return path


def save_grid(images: np.ndarray, path: str, nrow: int | None = None) -> str:
    """Write a grid of ``(N, H, W, C)`` images in [-1, 1]; small images are enlarged."""
    h = np.asarray(images).shape[1]
    return save_image(make_grid(images, nrow), path, scale=max(1, 64 // max(h, 1)))


def save_scatter(
    points: np.ndarray,
    path: str,
    reference: np.ndarray | None = None,
    size: int = 512,
    extent: float | None = None,
) -> str:
    """Scatter 2D ``points`` (blue) over optional ``reference`` points (red) to a PNG."""
    pts = np.asarray(points, dtype=np.float32)
    ref = None if reference is None else np.asarray(reference, dtype=np.float32)
    if extent is None:
        both = pts if ref is None else np.concatenate([pts, ref])
        finite = both[np.isfinite(both).all(axis=1)]
        extent = float(np.abs(finite).max()) * 1.1 if len(finite) else 1.0
    canvas = np.full((size, size, 3), 255, np.uint8)
    mid = size // 2
    canvas[mid, :] = canvas[:, mid] = 220

    def draw(p: np.ndarray, color: tuple[int, int, int], radius: int) -> None:
        p = p[np.isfinite(p).all(axis=1)]
        cols = np.round((p[:, 0] / extent + 1) * 0.5 * (size - 1)).astype(int)
        rows = np.round((1 - (p[:, 1] / extent + 1) * 0.5) * (size - 1)).astype(int)
        for dr in range(-radius, radius + 1):
            for dc in range(-radius, radius + 1):
                r, c = rows + dr, cols + dc
                ok = (r >= 0) & (r < size) & (c >= 0) & (c < size)
                canvas[r[ok], c[ok]] = color

    if ref is not None:
        draw(ref, (230, 80, 80), 2)
    draw(pts, (40, 90, 220), 1)
    return save_image(canvas, path)
