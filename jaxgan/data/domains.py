"""Two unpaired image domains for CycleGAN: sources, a pairing source and random jitter.

``get_domain_pair(name, split)`` returns ``(source_A, source_B)``, two image
:class:`~jaxgan.data.source.Source` objects of the same height and width, for:

* ``'grass2gravel'`` (embedded, offline): crops of two photographs that ship inside the
  scikit-image wheel, ``skimage/data/grass.png`` (domain A) and ``gravel.png`` (domain B),
  512x512 greyscale, downscaled by ``scale`` (default 1/2). Split ``'train'`` holds every
  crop from the top 3/4 of each photograph, ``'test'`` every crop from the bottom 1/4, so
  held-out crops never overlap a training pixel. Why these two: each is a stationary
  texture, so every crop is a genuine sample of its domain and one photograph gives tens of
  thousands of training patches; both were taken the same way (greyscale, similar lighting
  and scale), so the only difference between the domains is the structure itself: thin
  blades versus rounded pebbles with dark gaps. That is the kind of change CycleGAN makes
  well (horse -> zebra is a texture change too), it is easy to judge by eye at 32x32, and a
  tiny generator learns it on a CPU in minutes.
* ``'cycle_gan/horse2zebra'`` and the other tensorflow-datasets ``cycle_gan/*`` configs
  (or ``'tfds:NAME'`` for any dataset with ``trainA/trainB/testA/testB`` splits), read with
  ``tfds.data_source`` (no TensorFlow): splits ``trainA``/``trainB`` or ``testA``/``testB``.
* ``'folder:/root'`` (or an existing directory): the reference implementation's layout,
  ``root/trainA``, ``root/trainB``, ``root/testA``, ``root/testB``, read with PIL.

:class:`PairedDomainsSource` turns the two into one source whose batches hold ``'x'``
(domain A) and ``'y'`` (domain B) for the step-indexed pipeline. :func:`make_jitter` is the
paper's augmentation (resize to 286/256 of the size, random crop back, random horizontal
flip) as a ``transform(batch, rng)`` of :func:`jaxgan.data.batch_iterator`.
"""

from __future__ import annotations

import importlib.resources
import os
from typing import Any

import numpy as np
from PIL import Image

from jaxgan.data.folder import FolderSource
from jaxgan.data.source import Source, empty_batch
from jaxgan.data.tfds_source import TfdsSource
from jaxgan.data.validate import check_image_options

#: Embedded domain pairs: name -> (domain A file, domain B file, default downscale) in
#: scikit-image's ``skimage/data`` folder (shipped inside the wheel).
EMBEDDED_PAIRS: dict[str, tuple[str, str, float]] = {
    "grass2gravel": ("grass.png", "gravel.png", 0.5),
    "grass2brick": ("grass.png", "brick.png", 0.25),
}

#: Fraction of each embedded photograph's rows (from the top) used for training.
TRAIN_FRACTION = 0.75

#: The paper's jitter: images are resized to 286 and cropped to 256.
LOAD_RATIO = 286 / 256


def _skimage_file(filename: str) -> Image.Image:
    root = importlib.resources.files("skimage") / "data"
    path = root / filename
    if not path.is_file():
        raise ValueError(
            f"scikit-image's data file {filename} is not in {root}: the embedded CycleGAN "
            "domains need scikit-image's wheel (pip install scikit-image)"
        )
    with path.open("rb") as fh:
        img = Image.open(fh)
        img.load()
    return img


class TexturePatchSource(Source):
    """Every ``image_size`` x ``image_size`` crop of one region of a texture photograph.

    The photograph is converted to ``channels`` and resized by ``scale`` (bicubic,
    antialiased); ``split='train'`` keeps the top :data:`TRAIN_FRACTION` of its rows,
    ``'test'`` the rest. Example ``i`` is the crop whose top-left corner is
    ``divmod(i * stride, ...)`` on the grid of positions with step ``stride`` (row-major).

    Args:
      filename: a file of ``skimage/data``.
      split: ``'train'`` or ``'test'``.
      image_size: crop side.
      scale: resize factor applied to the photograph first.
      channels: 1 (as stored) or 3 (grey replicated).
      stride: step between crop positions, in pixels of the resized photograph.
    """

    kind = "image"
    num_classes = 0

    def __init__(
        self,
        filename: str,
        *,
        split: str = "train",
        image_size: int = 32,
        scale: float = 0.5,
        channels: int = 1,
        stride: int = 1,
    ):
        check_image_options(image_size, channels)
        if split not in ("train", "test"):
            raise ValueError(
                f"embedded texture domains have splits 'train' and 'test', not {split!r}"
            )
        if not scale > 0 or stride < 1:
            raise ValueError(f"scale must be positive and stride >= 1, got {scale}, {stride}")
        img = _skimage_file(filename).convert("L" if channels == 1 else "RGB")
        w, h = img.size
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = np.asarray(img.resize(size, Image.BICUBIC), np.float32) / 127.5 - 1.0
        if arr.ndim == 2:
            arr = arr[..., None]
        cut = int(round(arr.shape[0] * TRAIN_FRACTION))
        region = arr[:cut] if split == "train" else arr[cut:]
        if min(region.shape[:2]) < image_size:
            raise ValueError(
                f"{filename} at scale {scale} gives a {split} region of "
                f"{region.shape[0]}x{region.shape[1]} pixels, too small for {image_size}x"
                f"{image_size} crops: raise scale or lower image_size"
            )
        region.flags.writeable = False
        self._region = region
        self.name = f"skimage:{filename}[{split}]"
        self.sample_shape = (image_size, image_size, region.shape[-1])
        self._stride = stride
        self._rows = (region.shape[0] - image_size) // stride + 1
        self._cols = (region.shape[1] - image_size) // stride + 1

    def __len__(self) -> int:
        return self._rows * self._cols

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        if idx.size == 0:
            return empty_batch(self.sample_shape)
        s = self.sample_shape[0]
        rows, cols = np.divmod(idx, self._cols)
        tops, lefts = rows * self._stride, cols * self._stride
        x = np.stack([self._region[t : t + s, q : q + s] for t, q in zip(tops, lefts, strict=True)])
        return {"x": x, "label": np.full(idx.size, -1, np.int32)}


class PairedDomainsSource(Source):
    """Unpaired domains A and B as one source: example ``i`` is ``{'x': A[i % len(A)],
    'y': B[perm[i] % len(B)]}`` with ``perm`` a fixed permutation of ``range(len(self))``.

    ``len(self) = max(len(A), len(B))``: one epoch of the step-indexed pipeline visits every
    image of the larger domain once (the reference implementation's epoch), and the fixed
    permutation makes the B stream independent of the A stream. Which A meets which B does
    not change the objective (every CycleGAN loss is a mean of per-image terms); it only
    decides which images share a batch. ``'label'`` is -1.

    Raises:
      ValueError: the domains differ in height or width.
    """

    kind = "image"
    num_classes = 0

    def __init__(self, a: Source, b: Source, seed: int = 0):
        if tuple(a.sample_shape[:2]) != tuple(b.sample_shape[:2]):
            raise ValueError(
                f"domains A ({a.name}, {a.sample_shape}) and B ({b.name}, {b.sample_shape}) "
                "must have images of one size: pass image_size"
            )
        self.a, self.b = a, b
        self.name = f"pair({a.name}, {b.name})"
        self.sample_shape = tuple(a.sample_shape)
        self.sample_shape_y = tuple(b.sample_shape)
        n = max(len(a), len(b))
        self._perm = np.random.default_rng([seed, 0xB]).permutation(n)

    def __len__(self) -> int:
        return len(self._perm)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        x = self.a.get(idx % len(self.a))["x"]
        if idx.size == 0:
            y = np.zeros((0, *self.sample_shape_y), np.float32)
        else:
            y = self.b.get(self._perm[idx] % len(self.b))["x"]
        return {"x": x, "y": y, "label": np.full(idx.size, -1, np.int32)}


def _folder_domain(root: str, sub: str, image_size: int | None, channels: int | None) -> Source:
    path = os.path.join(root, sub)
    if not os.path.isdir(path):
        present = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        raise ValueError(
            f"CycleGAN folder {root} has no {sub}/ subfolder (it holds: "
            f"{', '.join(present) or 'no subfolders'}); the layout is root/trainA, "
            "root/trainB, root/testA, root/testB as in the reference implementation"
        )
    return FolderSource(path, image_size=image_size, channels=channels)


def is_folder_name(name: str) -> bool:
    """Whether ``name`` names a folder (``folder:...``, a path, or an existing directory)."""
    return name.startswith("folder:") or name.startswith(("/", ".", "~")) or os.path.isdir(name)


def get_domain_pair(
    name: str,
    split: str = "train",
    *,
    image_size: int | None = None,
    channels: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
    scale: float | None = None,
) -> tuple[Source, Source]:
    """``(source_A, source_B)`` of a domain pair (see the module docstring).

    Args:
      name: ``'grass2gravel'`` (embedded), a tfds name such as ``'cycle_gan/horse2zebra'``,
        or a folder ``'folder:/root'``.
      split: ``'train'`` or ``'test'`` (tfds/folders: ``trainA``/``trainB`` or
        ``testA``/``testB``).
      image_size: square side (embedded default 32; tfds and folders are centre-cropped and
        resized to it; required for tfds ``cycle_gan``, whose images vary in size).
      channels: 1 or 3 (default: the data's own; the embedded textures are greyscale).
      data_dir, download: tfds options.
      scale: embedded only: resize factor of the photographs (default per pair).

    Raises:
      ValueError: unknown name, missing subfolder or split (named), sizes that do not fit.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name in EMBEDDED_PAIRS:
        file_a, file_b, default_scale = EMBEDDED_PAIRS[name]
        kw = dict(
            split=split,
            image_size=image_size or 32,
            scale=scale or default_scale,
            channels=channels or 1,
        )
        return TexturePatchSource(file_a, **kw), TexturePatchSource(file_b, **kw)
    if is_folder_name(name):
        root = os.path.abspath(os.path.expanduser(name.removeprefix("folder:")))
        if not os.path.isdir(root):
            raise ValueError(f"CycleGAN folder {root} does not exist or is not a directory")
        return (
            _folder_domain(root, f"{split}A", image_size, channels),
            _folder_domain(root, f"{split}B", image_size, channels),
        )
    tfds_name = name.removeprefix("tfds:")
    opts: dict[str, Any] = dict(
        image_size=image_size,
        channels=channels,
        data_dir=data_dir,
        download=download,
        label_key=None,
    )
    return (
        TfdsSource(tfds_name, split=f"{split}A", **opts),
        TfdsSource(tfds_name, split=f"{split}B", **opts),
    )


def has_test_split(name: str) -> bool:
    """Whether a folder pair has ``testA`` and ``testB`` (other pairs always have them)."""
    if not is_folder_name(name.strip()):
        return True
    root = os.path.abspath(os.path.expanduser(name.strip().removeprefix("folder:")))
    return all(os.path.isdir(os.path.join(root, s)) for s in ("testA", "testB"))


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` linear-interpolation weights (half-pixel centres, edge clamped)."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def load_size(image_size: int) -> int:
    """The jitter's resize target: ``round(image_size * 286 / 256)`` (286 for 256)."""
    return int(round(image_size * LOAD_RATIO))


def jitter(
    images: np.ndarray, rng: np.random.Generator, resize_to: int | None, flip: bool
) -> np.ndarray:
    """Resize NHWC ``images`` to ``resize_to`` (bilinear), crop each back to its size at a
    random position, and flip each horizontally with probability 1/2."""
    n, h, w, _ = images.shape
    out = np.asarray(images, np.float32)
    if resize_to is not None and resize_to > max(h, w):
        mh, mw = _resize_matrix(h, resize_to), _resize_matrix(w, resize_to)
        big = np.einsum("oh,nhwc,pw->nopc", mh, out, mw, optimize=True)
        tops = rng.integers(0, resize_to - h + 1, n)
        lefts = rng.integers(0, resize_to - w + 1, n)
        out = np.stack(
            [big[i, t : t + h, q : q + w] for i, (t, q) in enumerate(zip(tops, lefts, strict=True))]
        )
    if flip:
        flips = rng.random(n) < 0.5
        out = np.where(flips[:, None, None, None], out[:, :, ::-1], out)
    return np.ascontiguousarray(out, np.float32)


def make_jitter(image_size: int, resize: bool = True, flip: bool = True):
    """The paper's augmentation as a ``transform(batch, rng)``, applied to ``'x'`` and ``'y'``
    independently: resize to :func:`load_size` (286 for 256, 36 for 32), random crop back to
    ``image_size``, random horizontal flip. Returns ``None`` when both are off."""
    if not resize and not flip:
        return None
    target = load_size(image_size) if resize else None

    def transform(batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = dict(batch)
        for k in ("x", "y"):
            if k in out:
                out[k] = jitter(out[k], rng, target, flip)
        return out

    return transform
