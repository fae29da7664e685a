"""One entry point from a dataset name to a :class:`~jaxgan.data.source.Source`.

Names:

* ``'digits'``, ``'ring8'``, ``'grid25'``: embedded, offline (:func:`list_embedded`);
* ``'folder:/path/to/dir'``, or any existing directory (a path starting with ``/``, ``.``
  or ``~`` is always taken as a folder): the image files in it;
* ``'tfds:mnist'`` or just ``'mnist'``, ``'cycle_gan/horse2zebra'``: tensorflow-datasets,
  read with ``tfds.data_source`` (no TensorFlow needed; offline unless ``download=True``).
"""

from __future__ import annotations

import os
from typing import Any

from jaxgan.data.embedded import EMBEDDED, DigitsSource, MixtureSource
from jaxgan.data.folder import FolderSource
from jaxgan.data.source import Source
from jaxgan.data.tfds_source import TfdsSource


def list_embedded() -> list[str]:
    """Names of the datasets that ship with the installed packages (work offline)."""
    return sorted(EMBEDDED)


def get_source(
    name: str,
    *,
    split: str = "train",
    image_size: int | None = None,
    channels: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
    **options: Any,
) -> Source:
    """The data source called ``name`` (see the module docstring for the forms).

    Args:
      name: dataset name.
      split: ``'train'``, ``'test'`` or ``'all'`` for the embedded datasets; any tfds split
        for tfds; ignored for folders (a folder is one split: name the subfolder instead).
      image_size: square side the images are resized to (``None``: the dataset's own;
        8 for digits). Ignored for 2D point datasets.
      channels: 1 or 3 (``None``: the dataset's own). Ignored for 2D point datasets.
      data_dir: tfds data directory.
      download: let tfds download and prepare a dataset that is not there.
      **options: passed to the source: ``image_key``/``label_key`` for tfds;
        ``recursive``/``labels``/``cache_bytes``/``verify`` for folders.

    Raises:
      ValueError: unknown name (with how to get it), missing folder, bad options: all
        before anything is computed.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name == "digits":
        _no_options(name, options)
        return DigitsSource(split=split, image_size=image_size, channels=channels)
    if name in ("ring8", "grid25"):
        _no_options(name, options)
        return MixtureSource(name, split=split)
    if name.startswith("folder:") or name.startswith(("/", ".", "~")) or os.path.isdir(name):
        root = name[len("folder:") :] if name.startswith("folder:") else name
        return FolderSource(root, image_size=image_size, channels=channels, **options)
    if name.startswith("tfds:"):
        name = name[len("tfds:") :]
    return TfdsSource(
        name,
        split=split,
        image_size=image_size,
        channels=channels,
        data_dir=data_dir,
        download=download,
        **options,
    )


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(f"dataset {name!r} takes no options, got {sorted(options)}")
