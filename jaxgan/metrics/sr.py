"""Super-resolution scores: PSNR and SSIM on the Y channel with a border crop.

The usual protocol of SR papers (SRGAN, ESRGAN, and BasicSR's ``calculate_psnr`` /
``calculate_ssim`` with ``test_y_channel=True``):

* images are 8-bit RGB (values 0..255; a network's output is clipped and rounded to 8 bits
  first, as when it is saved);
* both are converted to the luma ``Y`` of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` does, in
  [16, 235]::

      Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255        (R, G, B in 0..255)

  kept in floating point (not rounded);
* ``crop_border`` pixels (the scale factor, by convention) are cut from every side;
* PSNR = ``10 log10(255^2 / MSE)`` (infinite for identical images);
* SSIM (Wang et al. 2004) with an 11x11 Gaussian window of sigma 1.5, ``K1 = 0.01``,
  ``K2 = 0.03``, ``L = 255``, computed where the window fits inside the image ('valid')
  and averaged; for colour images without ``y_channel`` the mean over channels.

This SSIM equals ``skimage.metrics.structural_similarity(a, b, data_range=255,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` (tested).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Y of ITU-R BT.601 from RGB in 0..255, as MATLAB's rgb2ycbcr (output in [16, 235]).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """The BT.601 luma ``Y`` (module docstring) of RGB ``image`` with values in 0..255.

    ``(..., 3) -> (...)``, float64.
    """
    image = np.asarray(image, np.float64)
    if image.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs RGB images (..., 3), got shape {image.shape}")
    return image @ _Y_WEIGHTS + 16.0


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] (jaxgan's range) as 8-bit values 0..255 (clipped, rounded), float64."""
    x = (np.clip(np.asarray(images, np.float64), -1.0, 1.0) + 1.0) * 127.5
    return np.round(x)


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected one image (H, W) or (H, W, C), got shape {a.shape}")
    if y_channel:
        if a.shape[-1] != 3:
            raise ValueError(f"y_channel needs RGB images, got {a.shape[-1]} channels")
        a, b = rgb_to_y(a)[..., None], rgb_to_y(b)[..., None]
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {a.shape} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """PSNR in dB of two 8-bit-valued images (module docstring); ``inf`` if they are equal."""
    a, b = _prepare(a, b, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering of ``x`` by ``w`` (outer product), 'valid' region only."""
    y = ndimage.correlate1d(x, w, axis=0, mode="constant")
    y = ndimage.correlate1d(y, w, axis=1, mode="constant")
    p = len(w) // 2
    return y[p:-p, p:-p]


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = _gaussian_window()
    if min(a.shape) < len(w):
        raise ValueError(f"SSIM needs images of at least {len(w)}x{len(w)}, got {a.shape}")
    mu_a, mu_b = _filter_valid(a, w), _filter_valid(b, w)
    var_a = _filter_valid(a * a, w) - mu_a**2
    var_b = _filter_valid(b * b, w) - mu_b**2
    cov = _filter_valid(a * b, w) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """SSIM of two 8-bit-valued images (module docstring)."""
    a, b = _prepare(a, b, crop_border, y_channel)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[-1])]))


def sr_scores(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = True
) -> dict[str, float]:
    """``{'psnr': ..., 'ssim': ...}`` of one super-resolved image against its ground truth,
    both in [-1, 1] (converted with :func:`to_pixels` first)."""
    a, b = to_pixels(sr), to_pixels(hr)
    return {
        "psnr": psnr(a, b, crop_border, y_channel),
        "ssim": ssim(a, b, crop_border, y_channel),
    }
