"""Paired low/high-resolution patches for super-resolution, made on the fly.

**Degradation.** :func:`imresize` is MATLAB's ``imresize(..., 'bicubic')`` (the degradation
of the SR literature: SRGAN, ESRGAN, DIV2K's "bicubic" track) written as two matrix
products on float images: the cubic kernel with ``a = -0.5``, output pixel ``i`` (1-based)
centred at input coordinate ``u = i / s + (1 - 1 / s) / 2`` for scale ``s = out / in``,
the kernel widened by ``1 / s`` when shrinking (antialiasing), weights normalised to sum to
one per output pixel, and indices past the border mirrored (``[1..n, n..1]``, the edge
pixel repeated). Rows summing to one make a constant image stay exactly constant.
:func:`bicubic_downscale` gives the LR image (rounded to 8-bit levels by default, as LR
files are), :func:`bicubic_upscale` the bicubic baseline.

**Images.** :func:`load_sr_images` returns a list-like of full-size RGB ``uint8`` images:

* ``'photos'`` (embedded, offline): colour photographs that ship inside the scikit-image
  wheel (``skimage/data``), split by photograph: ``'train'`` = astronaut, rocket,
  motorcycle_left, hubble_deep_field, ihc; ``'test'`` (held out) = chelsea, coffee.
* ``'div2k'`` (or ``'div2k/bicubic_x4'``, ...): DIV2K through tensorflow-datasets'
  ``data_source`` (no TensorFlow), its ``'hr'`` images; ``'test'`` reads the
  ``validation`` split. ``'tfds:NAME'`` reads the ``'hr'`` (else ``'image'``) feature of any
  tfds dataset. Offline unless ``download=True``.
* ``'folder:/path'`` (or an existing directory): every image file in it (recursively),
  read with PIL when used; greyscale and palette images are converted to RGB.

Large images are decoded when needed and kept in a small cache (``cache_bytes``).

**Patches.** :class:`SRPatchSource` is a :class:`~jaxgan.data.source.Source` whose example
``i`` is a ``patch_size`` HR crop of image ``i % n_images`` at a position drawn from
``default_rng([seed, i])`` (top-left corner on multiples of ``scale``), with its LR
counterpart. The LR patch is degraded from the crop plus a ``2 * scale`` margin and then cut
out, so it equals the same region of the LR image of the whole photograph (the bicubic
kernel reaches ``2 * scale`` HR pixels): training patches see no artificial borders.
``len = n_images * patches_per_image``, so an epoch of the step-indexed pipeline draws
``patches_per_image`` crops of every image. :func:`random_dihedral` is the augmentation
(random horizontal flip, vertical flip and 90-degree rotation, the 8 symmetries of the
square, applied to both patches alike: each commutes with the bicubic degradation).

All arrays are float32 in [-1, 1] (jaxgan's image range): ``{'hr': (N, P, P, 3),
'lr': (N, P/s, P/s, 3), 'label': -1}``.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from jaxgan.data.source import Source

#: The embedded photographs (files of ``skimage/data``), by split.
EMBEDDED_PHOTOS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "hubble_deep_field.jpg",
        "ihc.png",
    ),
    "test": ("chelsea.png", "coffee.png"),
}

SPLITS = ("train", "test")


# ---------------------------------------------------------------------------------------
# MATLAB-style bicubic resizing
# ---------------------------------------------------------------------------------------


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's and PIL's bicubic)."""
    x = np.abs(np.asarray(x, np.float64))
    x2, x3 = x * x, x * x * x
    inner = (a + 2) * x3 - (a + 3) * x2 + 1
    outer = a * x3 - 5 * a * x2 + 8 * a * x - 4 * a
    return np.where(x <= 1, inner, np.where(x < 2, outer, 0.0))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_size: int, out_size: int, antialias: bool = True) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix of a MATLAB bicubic resize along one axis.

    Row ``i`` holds the normalised weights of output pixel ``i`` (module docstring).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    s = out_size / in_size
    shrink = antialias and s < 1
    width = 4.0 / s if shrink else 4.0
    x = np.arange(1, out_size + 1, dtype=np.float64)
    u = x / s + 0.5 * (1 - 1 / s)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    dist = u[:, None] - idx
    w = s * cubic(s * dist) if shrink else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_size), np.arange(in_size)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_size)]
    m = np.zeros((out_size, in_size), np.float64)
    np.add.at(m, (np.repeat(np.arange(out_size), taps), cols.ravel()), w.ravel())
    m.flags.writeable = False
    return m


def imresize(images: np.ndarray, size: tuple[int, int], antialias: bool = True) -> np.ndarray:
    """Bicubic resize of ``(..., H, W, C)`` float images to ``size = (H', W')`` (MATLAB).

    Returns float32; values are not clipped (bicubic overshoots slightly at edges).
    """
    x = np.asarray(images, np.float32)
    if x.ndim < 3:
        raise ValueError(f"imresize needs (..., H, W, C) images, got shape {x.shape}")
    h, w = x.shape[-3], x.shape[-2]
    mh = resize_matrix(h, int(size[0]), antialias).astype(np.float32)
    mw = resize_matrix(w, int(size[1]), antialias).astype(np.float32)
    y = np.einsum("oh,...hwc->...owc", mh, x, optimize=True)
    return np.einsum("pw,...owc->...opc", mw, y, optimize=True)


def quantize(images: np.ndarray) -> np.ndarray:
    """Round images in [-1, 1] to the 256 levels of 8-bit files (clipping first)."""
    x = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5)
    return (x / 127.5 - 1.0).astype(np.float32)


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def bicubic_downscale(hr: np.ndarray, scale: int, quantized: bool = True) -> np.ndarray:
    """The LR image(s) of ``hr`` ``(..., H, W, C)`` in [-1, 1]: bicubic (antialiased)
    shrinking by ``scale``; ``H`` and ``W`` must be multiples of ``scale``. With
    ``quantized`` the result is rounded to 8-bit levels, as an LR image file is."""
    scale = _check_scale(scale)
    h, w = np.shape(hr)[-3], np.shape(hr)[-2]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not a multiple of the scale {scale}")
    lr = imresize(hr, (h // scale, w // scale))
    return quantize(lr) if quantized else lr


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling of ``lr`` ``(..., h, w, C)`` by ``scale``: the SR baseline."""
    scale = _check_scale(scale)
    h, w = np.shape(lr)[-3], np.shape(lr)[-2]
    return imresize(lr, (h * scale, w * scale))


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """``image[:H - H % scale, :W - W % scale]`` (the usual way to make HR fit a scale)."""
    h, w = image.shape[-3], image.shape[-2]
    return image[..., : h - h % scale, : w - w % scale, :]


# ---------------------------------------------------------------------------------------
# Full-size images
# ---------------------------------------------------------------------------------------


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA").convert("RGB")  # drop alpha
    return np.asarray(img.convert("RGB"), np.uint8)


class ImageList:
    """A sequence of full-size RGB uint8 images (decoded lazily, cached up to a budget)."""

    name: str

    def __init__(self, cache_bytes: int = 512 * 2**20):
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes = int(cache_bytes)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self, i: int) -> str:
        """How to name image ``i`` in an error message."""
        return f"{self.name} image {i}"

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"{self.name}: image index {i} out of range [0, {len(self)})")
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        img = self._load(i)
        if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
            raise ValueError(f"{self.describe(i)}: expected RGB uint8, got {img.dtype} {img.shape}")
        img.flags.writeable = False
        with self._lock:
            self._cache[i] = img
            while sum(v.nbytes for v in self._cache.values()) > self._cache_bytes:
                if len(self._cache) == 1:
                    break
                self._cache.popitem(last=False)
        return img


class EmbeddedPhotos(ImageList):
    """The photographs of :data:`EMBEDDED_PHOTOS` (in the scikit-image wheel)."""

    def __init__(self, split: str = "train"):
        super().__init__(cache_bytes=2**40)  # small: keep all
        if split not in EMBEDDED_PHOTOS:
            raise ValueError(f"the embedded photos have splits {SPLITS}, not {split!r}")
        root = importlib.resources.files("skimage") / "data"
        self.files = EMBEDDED_PHOTOS[split]
        for f in self.files:
            if not (root / f).is_file():
                raise ValueError(
                    f"scikit-image's data file {f} is not in {root}: the embedded photos need "
                    "scikit-image's wheel (pip install scikit-image)"
                )
        self._root = root
        self.name = f"photos[{split}]"

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, i: int) -> str:
        return f"skimage/data/{self.files[i]}"

    def _load(self, i: int) -> np.ndarray:
        with (self._root / self.files[i]).open("rb") as fh, Image.open(fh) as img:
            return _to_rgb_array(img)


class FolderImages(ImageList):
    """Every image file under a folder (sorted paths; checked with PIL when listed)."""

    def __init__(self, root: str, cache_bytes: int = 512 * 2**20):
        super().__init__(cache_bytes)
        from jaxgan.data.folder import IMAGE_EXTENSIONS, list_image_files

        root = os.path.abspath(os.path.expanduser(root))
        if not os.path.isdir(root):
            raise ValueError(f"image folder {root} does not exist or is not a directory")
        self.files = list_image_files(root)
        if not self.files:
            raise ValueError(
                f"image folder {root} holds no image files ({' '.join(IMAGE_EXTENSIONS)})"
            )
        for path in self.files:
            try:
                with Image.open(path) as img:
                    img.verify()
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                raise ValueError(f"cannot read image file {path}: {e}") from e
        self.name = f"folder:{root}"

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, i: int) -> str:
        return self.files[i]

    def _load(self, i: int) -> np.ndarray:
        try:
            with Image.open(self.files[i]) as img:
                return _to_rgb_array(img)
        except OSError as e:
            raise ValueError(f"cannot read image file {self.files[i]}: {e}") from e


class TfdsImages(ImageList):
    """One image feature of a tensorflow-datasets split, via ``tfds.data_source``."""

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None = None,
        download: bool = False,
        image_key: str | None = None,
        cache_bytes: int = 512 * 2**20,
    ):
        super().__init__(cache_bytes)
        from jaxgan.data.tfds_source import _import_tfds, _unknown

        tfds = _import_tfds()
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError as e:
            raise _unknown(name, "no such tensorflow-datasets dataset", tfds) from e
        except (ValueError, AssertionError, KeyError) as e:
            raise _unknown(name, str(e).split("\n")[0], tfds) from e
        keys = list(builder.info.features.keys())
        key = image_key or ("hr" if "hr" in keys else "image")
        if key not in keys:
            raise ValueError(f"tfds:{name}: no image feature {key!r}; features are {keys}")
        self.image_key = key
        try:
            self._ds = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
        except Exception as e:  # tfds raises several types; say what to do
            raise ValueError(
                f"tfds:{name}: split {split!r} is not available offline in {builder.data_dir} "
                f"({str(e).splitlines()[0] if str(e) else type(e).__name__}). Prepare it once "
                f"with network (`tfds build {name} --file_format=array_record`), or pass "
                "download=True; offline alternatives: 'photos' or 'folder:/path'."
            ) from e
        if len(self._ds) == 0:
            raise ValueError(f"tfds:{name}: split {split!r} is empty")
        self.name = f"tfds:{name}[{split}]"

    def __len__(self) -> int:
        return len(self._ds)

    def _load(self, i: int) -> np.ndarray:
        from jaxgan.data.validate import array_to_pil

        return _to_rgb_array(array_to_pil(np.asarray(self._ds[i][self.image_key])))


def is_folder_name(name: str) -> bool:
    """Whether ``name`` names a folder (``folder:...``, a path, or an existing directory)."""
    return name.startswith("folder:") or name.startswith(("/", ".", "~")) or os.path.isdir(name)


def load_sr_images(
    name: str,
    split: str = "train",
    *,
    scale: int = 4,
    data_dir: str | None = None,
    download: bool = False,
) -> ImageList:
    """The full-size images of dataset ``name`` (module docstring), split ``train``/``test``.

    For folders ``split`` is ignored (name the held-out folder separately).

    Raises:
      ValueError: unknown name or split, missing or empty folder, unprepared tfds dataset.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    name = name.strip()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "photos":
        return EmbeddedPhotos(split)
    if is_folder_name(name):
        return FolderImages(name[len("folder:") :] if name.startswith("folder:") else name)
    if name.startswith("tfds:"):
        name = name[len("tfds:") :]
    tfds_split = split
    if name.split("/")[0].split(":")[0] == "div2k":
        if "/" not in name:
            name = f"div2k/bicubic_x{scale if scale in (2, 3, 4, 8) else 4}"
        tfds_split = "validation" if split == "test" else "train"
    return TfdsImages(name, tfds_split, data_dir=data_dir, download=download)


# ---------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------


class SRPatchSource(Source):
    """Random HR crops of full-size images with their bicubic LR (module docstring).

    Args:
      images: full-size RGB uint8 images (:func:`load_sr_images`).
      patch_size: HR patch side, a multiple of ``scale``.
      scale: the super-resolution factor.
      patches_per_image: crops of each image per epoch (``len = n_images * this``).
      seed: the crop positions' seed (independent of the pipeline's order seed).
      quantized: round LR patches to 8-bit levels.

    Raises:
      ValueError: bad sizes; the first image smaller than ``patch_size`` (others are
        checked when read, naming the file).
    """

    kind = "image"
    num_classes = 0

    def __init__(
        self,
        images: ImageList | Sequence[np.ndarray],
        patch_size: int,
        scale: int,
        *,
        patches_per_image: int = 1000,
        seed: int = 0,
        quantized: bool = True,
    ):
        scale = _check_scale(scale)
        if patch_size < scale or patch_size % scale:
            raise ValueError(
                f"patch_size {patch_size} must be a positive multiple of scale {scale}"
            )
        if patches_per_image < 1:
            raise ValueError(f"patches_per_image must be >= 1, got {patches_per_image}")
        if len(images) == 0:
            raise ValueError("no images to cut patches from")
        self.images = images
        self.patch_size = int(patch_size)
        self.scale = scale
        self.patches_per_image = int(patches_per_image)
        self.seed = int(seed)
        self.quantized = quantized
        self.name = f"patches({getattr(images, 'name', 'images')}, {patch_size}, x{scale})"
        self.sample_shape = (self.patch_size, self.patch_size, 3)
        self.lr_shape = (self.patch_size // scale, self.patch_size // scale, 3)
        self._image(0)  # read one now: errors come before any compute

    def __len__(self) -> int:
        return len(self.images) * self.patches_per_image

    def _image(self, i: int) -> np.ndarray:
        img = crop_to_multiple(np.asarray(self.images[i]), self.scale)
        if min(img.shape[:2]) < self.patch_size:
            what = self.images.describe(i) if hasattr(self.images, "describe") else f"image {i}"
            raise ValueError(
                f"{what} is {img.shape[0]}x{img.shape[1]} pixels (after cropping to a "
                f"multiple of {self.scale}), smaller than patch_size {self.patch_size}"
            )
        return img

    def crop(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(hr, lr)`` of example ``index``: float32 in [-1, 1]."""
        img = self._image(index % len(self.images))
        h, w = img.shape[:2]
        s, p = self.scale, self.patch_size
        rng = np.random.default_rng([self.seed, index])
        top = s * int(rng.integers(0, (h - p) // s + 1))
        left = s * int(rng.integers(0, (w - p) // s + 1))
        m = 2 * s  # the reach of the antialiased bicubic kernel, in HR pixels
        t0, l0 = max(0, top - m), max(0, left - m)
        t1, l1 = min(h, top + p + m), min(w, left + p + m)
        region = img[t0:t1, l0:l1].astype(np.float32) / 127.5 - 1.0
        lr = bicubic_downscale(region, s, self.quantized)
        a, b = (top - t0) // s, (left - l0) // s
        lr = lr[a : a + p // s, b : b + p // s]
        hr = region[top - t0 : top - t0 + p, left - l0 : left - l0 + p]
        return hr, lr

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        pairs = [self.crop(int(i)) for i in idx]
        n = len(pairs)
        hr = np.stack([q[0] for q in pairs]) if n else np.zeros((0, *self.sample_shape), np.float32)
        lr = np.stack([q[1] for q in pairs]) if n else np.zeros((0, *self.lr_shape), np.float32)
        return {"hr": hr, "lr": lr, "label": np.full(n, -1, np.int32)}


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """Symmetry ``k`` (0..7) of the square on ``(H, W, C)`` ``x``: bit 0 horizontal flip,
    bit 1 vertical flip, bit 2 transpose (with a flip, a 90-degree rotation)."""
    if k & 1:
        x = x[:, ::-1]
    if k & 2:
        x = x[::-1]
    if k & 4:
        x = np.swapaxes(x, 0, 1)
    return x


def random_dihedral(batch: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Augment an SR batch: one random symmetry of the square per example, the same for
    its HR and LR patches (a ``transform`` for :func:`jaxgan.data.batch_iterator`)."""
    ks = rng.integers(0, 8, size=len(batch["hr"]))
    out = dict(batch)
    if len(ks) == 0:
        return out
    for key in ("hr", "lr"):
        rows = [
            np.ascontiguousarray(dihedral(x, int(k))) for x, k in zip(batch[key], ks, strict=True)
        ]
        out[key] = np.stack(rows)
    return out


def eval_pairs(
    images: ImageList | Sequence[np.ndarray],
    scale: int,
    max_images: int = 0,
    max_size: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(lr, hr), ...]`` of held-out full images, float32 in [-1, 1].

    Each HR image is centre-cropped to at most ``max_size`` pixels a side (0: no limit),
    then to a multiple of ``scale``; its LR is :func:`bicubic_downscale` (8-bit levels).
    ``max_images`` (0: all) keeps the first ones.
    """
    n = len(images) if not max_images else min(max_images, len(images))
    pairs = []
    for i in range(n):
        img = np.asarray(images[i])
        if max_size:
            h, w = img.shape[:2]
            t, q = max(0, (h - max_size) // 2), max(0, (w - max_size) // 2)
            img = img[t : t + max_size, q : q + max_size]
        hr = crop_to_multiple(img, scale).astype(np.float32) / 127.5 - 1.0
        pairs.append((bicubic_downscale(hr, scale), hr))
    return pairs
