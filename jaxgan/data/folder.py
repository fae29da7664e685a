"""A folder of image files on disk as a data source.

Files are found by extension (``.png .jpg .jpeg .bmp .gif .tif .tiff .webp .ppm .pgm``,
any case; hidden files skipped), recursively by default, and sorted by path so the order
and therefore the batches are the same on every machine. Every file is opened and checked
with PIL when the source is built (``Image.verify``), so an empty folder or an unreadable
file is an error that names it before any compute. Images are converted to ``channels``
(1: ITU-R 601 luma, 3: RGB; alpha dropped), centre-cropped to a square and resized to
``image_size`` with a bicubic filter, and scaled to [-1, 1]. Decoded images are kept in
memory when all of them fit in ``cache_bytes``.

With ``labels=True`` the first-level subfolders are the classes (sorted names, label =
position), as in ``root/cat/*.png, root/dog/*.png``.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jaxgan.data.source import Source, empty_batch
from jaxgan.data.validate import check_image_options, prepare_image

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def list_image_files(root: str, recursive: bool = True) -> list[str]:
    """Sorted paths of the image files under ``root`` (see the module docstring)."""
    found: list[str] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(os.path.join(dirpath, f) for f in filenames)
    else:
        found = [os.path.join(root, f) for f in os.listdir(root)]
    return sorted(
        p
        for p in found
        if os.path.isfile(p)
        and not os.path.basename(p).startswith(".")
        and p.lower().endswith(IMAGE_EXTENSIONS)
    )


def _inspect(path: str) -> tuple[tuple[int, int], str]:
    """``(size, mode)`` of an image file after PIL's integrity check."""
    try:
        with Image.open(path) as img:
            size, mode = img.size, img.mode
            img.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read image file {path}: {e}") from e
    return size, mode


class FolderSource(Source):
    """The image files in a folder.

    Args:
      root: the folder.
      image_size: square output side; ``None`` keeps the files' size, which must then be
        the same for all.
      channels: 1 or 3; ``None``: 1 if every file is greyscale, else 3.
      recursive: also read subfolders.
      labels: use first-level subfolder names as class labels (else labels are -1).
      cache_bytes: keep decoded images in memory if all of them take at most this much.
      verify: check every file with PIL at construction (recommended).

    Raises:
      ValueError: missing or empty folder, unreadable file (named), mixed sizes without
        ``image_size``, files outside class subfolders with ``labels=True``.
    """

    kind = "image"

    def __init__(
        self,
        root: str,
        *,
        image_size: int | None = None,
        channels: int | None = None,
        recursive: bool = True,
        labels: bool = False,
        cache_bytes: int = 512 * 2**20,
        verify: bool = True,
    ):
        check_image_options(image_size, channels)
        root = os.path.abspath(os.path.expanduser(root))
        self.name = f"folder:{root}"
        self.root = root
        if not os.path.isdir(root):
            raise ValueError(f"image folder {root} does not exist or is not a directory")
        self.files = list_image_files(root, recursive)
        if not self.files:
            raise ValueError(
                f"image folder {root} holds no image files "
                f"({' '.join(IMAGE_EXTENSIONS)}{', searched recursively' if recursive else ''})"
            )
        if labels:
            tops = [os.path.relpath(p, root).split(os.sep)[0] for p in self.files]
            loose = [p for p, t in zip(self.files, tops, strict=True) if t == os.path.basename(p)]
            if loose:
                raise ValueError(
                    f"labels=True needs every image in a class subfolder of {root}, but "
                    f"{loose[0]} is not (and {len(loose) - 1} more)"
                )
            self.class_names = sorted(set(tops))
            lookup = {c: i for i, c in enumerate(self.class_names)}
            self._labels = np.asarray([lookup[t] for t in tops], np.int32)
        else:
            self.class_names = []
            self._labels = np.full(len(self.files), -1, np.int32)
        self.num_classes = len(self.class_names)

        if verify:
            info = [_inspect(p) for p in self.files]
        else:
            info = [_inspect(self.files[0])]
        if channels is None:
            channels = 1 if all(mode in _GREY_MODES for _, mode in info) else 3
        self.channels = int(channels)
        self.image_size = image_size
        if image_size is None:
            sizes = {size for size, _ in info}
            if len(sizes) > 1:
                first = info[0][0]
                odd = next(p for p, (s, _) in zip(self.files, info, strict=True) if s != first)
                raise ValueError(
                    f"images in {root} differ in size ({self.files[0]} is {info[0][0][0]}x"
                    f"{info[0][0][1]}, {odd} is not); pass image_size=... to resize them"
                )
            w, h = info[0][0]
            self.sample_shape = (h, w, self.channels)
        else:
            self.sample_shape = (image_size, image_size, self.channels)
        per_image = int(np.prod(self.sample_shape)) * 4
        self._cache: dict[int, np.ndarray] | None = (
            {} if per_image * len(self.files) <= cache_bytes else None
        )
        self._load(0)  # decode one image now: errors come before compute

    def _load(self, i: int) -> np.ndarray:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        path = self.files[i]
        try:
            with Image.open(path) as img:
                x = prepare_image(img, self.image_size, self.channels)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"cannot read image file {path}: {e}") from e
        if x.shape != self.sample_shape:
            raise ValueError(
                f"image file {path} has shape {x.shape}, expected {self.sample_shape}; "
                "pass image_size=... to resize all images"
            )
        if self._cache is not None:
            x.flags.writeable = False
            self._cache[i] = x
        return x

    def __len__(self) -> int:
        return len(self.files)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        if idx.size == 0:
            return empty_batch(self.sample_shape)
        x = np.stack([self._load(int(i)) for i in idx])
        return {"x": x, "label": self._labels[idx]}
