"""Image datasets of tensorflow-datasets, read without TensorFlow.

``tfds.data_source`` gives random access to a dataset prepared in the ``array_record``
format and decodes examples to numpy; it needs no TensorFlow. Reading is offline: with
``download=False`` (the default) a dataset that is not already prepared under ``data_dir``
is an error that says how to prepare it. Preparing (``download=True``, or once on a
machine with network: ``tfds build NAME --file_format=array_record``) fetches the raw
files and may need TensorFlow for some datasets.

Names are resolved against the registry that ships with the installed tfds package, before
anything is read, so an unknown name fails at once, offline. Community datasets
(``namespace:name``) are not supported: tfds looks them up over the network.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import numpy as np

from jaxgan.data.source import Source, empty_batch
from jaxgan.data.validate import array_to_pil, check_image_options, prepare_image

_VERSION = re.compile(r"^\d+(\.(\d+|\*))*$")


def _unknown(name: str, reason: str, tfds: Any) -> ValueError:
    base = name.split(":")[0].split("/")[0].lower()
    known = tfds.list_builders(with_community_datasets=False)  # local registry only
    if base in known and "/" in name:
        try:
            configs = sorted(tfds.builder_cls(base).builder_configs)
        except Exception:  # only for the hint: never fail here
            configs = []
        hint = f" Configs of {base!r}: {', '.join(configs)}." if configs else ""
    else:
        close = difflib.get_close_matches(base, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close and base not in known else ""
    return ValueError(
        f"unknown dataset {name!r}: {reason.rstrip('.')}.{hint} tensorflow-datasets names are "
        "listed at https://www.tensorflow.org/datasets/catalog/overview (prepare one once "
        "with network: `tfds build NAME --file_format=array_record`, or pass download=True); "
        "offline alternatives: the embedded 'digits', 'ring8', 'grid25', or a folder of "
        "images as 'folder:/path/to/dir'."
    )


def _import_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - tfds is a dependency
        raise ValueError(
            "tensorflow-datasets is not installed: `pip install tensorflow-datasets`"
        ) from e
    return tfds


class TfdsSource(Source):
    """An image dataset of tensorflow-datasets, via ``tfds.data_source``.

    Args:
      name: a tfds name, optionally with config and version: ``'mnist'``,
        ``'cycle_gan/horse2zebra'``, ``'celeb_a:2.1.0'``.
      split: a tfds split (``'train'``, ``'test'``, ``'trainA'``, ``'train[:90%]'`` ...).
      image_size: resize to ``image_size`` x ``image_size`` (centre-crop to a square first);
        ``None`` keeps the stored size, which must then be the same for every example.
      channels: 1 or 3 (converted if the dataset has the other); ``None`` keeps the
        dataset's.
      data_dir: where the prepared dataset lives (tfds's default: ``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``).
      download: prepare the dataset if it is not there (needs network).
      image_key: the feature holding the image.
      label_key: the feature holding an integer class label; if the dataset has no such
        feature (or ``label_key`` is ``None``), labels are -1.

    Raises:
      ValueError: unknown name, missing image feature, dataset not prepared, empty split.
    """

    kind = "image"

    def __init__(
        self,
        name: str,
        *,
        split: str = "train",
        image_size: int | None = None,
        channels: int | None = None,
        data_dir: str | None = None,
        download: bool = False,
        image_key: str = "image",
        label_key: str | None = "label",
    ):
        check_image_options(image_size, channels)
        tfds = _import_tfds()
        self.name = f"tfds:{name}"
        self.split = split
        head = name.split("/")[0]
        if ":" in head and not _VERSION.match(head.split(":", 1)[1]):
            raise ValueError(
                f"dataset {name!r}: tfds community datasets ('namespace:name') are looked up "
                "over the network and are not supported; prepare the data as a folder of "
                "images and use 'folder:/path' instead"
            )
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError as e:
            raise _unknown(name, "no such tensorflow-datasets dataset", tfds) from e
        except (ValueError, AssertionError, KeyError) as e:  # bad config or version
            reason = str(e).split("\n")[0].split('": ', 1)[-1].split(". Here are")[0]
            raise _unknown(name, reason, tfds) from e
        features = builder.info.features
        keys = list(features.keys()) if hasattr(features, "keys") else []
        if image_key not in keys:
            raise ValueError(
                f"{self.name}: no image feature {image_key!r}; features are {keys}. "
                "Pass image_key=... naming the image feature."
            )
        self.image_key = image_key
        self.label_key = label_key if label_key in keys else None
        label_feature = features[self.label_key] if self.label_key else None
        self.num_classes = int(getattr(label_feature, "num_classes", 0) or 0)
        if self.label_key and not self.num_classes:
            self.label_key = None  # not a class label (e.g. a string id)

        try:
            self._ds = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
        except Exception as e:  # tfds raises several types here; add what to do about it
            where = builder.data_dir
            if download:
                raise ValueError(
                    f"{self.name}: could not prepare split {split!r} in {where}: {e}"
                ) from e
            raise ValueError(
                f"{self.name}: split {split!r} is not available offline in {where} "
                f"(tfds says: {str(e).splitlines()[0] if str(e) else type(e).__name__}). "
                f"Prepare it once with network (`tfds build {name} --file_format=array_record "
                f"--data_dir=...`, or download=True), or check the split name "
                f"(known: {sorted(builder.info.splits.keys()) or 'unknown until prepared'})."
            ) from e
        if len(self._ds) == 0:
            raise ValueError(f"{self.name}: split {split!r} is empty")

        stored = tuple(getattr(features[image_key], "shape", ()) or ())
        if image_size is None and None in stored:
            raise ValueError(
                f"{self.name}: the images vary in size (stored shape {stored}); pass "
                "image_size=... to crop and resize them to one size"
            )
        stored_channels = stored[-1] if len(stored) == 3 else None
        self.image_size = image_size
        self.channels = int(channels or stored_channels or self._first_channels())
        first = self._decode(self._ds[0], 0)
        self.sample_shape = tuple(int(d) for d in first.shape)

    def _first_channels(self) -> int:
        arr = np.asarray(self._ds[0][self.image_key])
        return 3 if arr.ndim == 3 and arr.shape[-1] >= 3 else 1

    def _decode(self, example: dict[str, Any], index: int) -> np.ndarray:
        try:
            img = array_to_pil(np.asarray(example[self.image_key]))
        except ValueError as e:
            raise ValueError(f"{self.name}: example {index}: {e}") from e
        return prepare_image(img, self.image_size, self.channels)

    def __len__(self) -> int:
        return len(self._ds)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        idx = self._check_indices(indices)
        if idx.size == 0:
            return empty_batch(self.sample_shape)
        xs, labels = [], []
        for i in idx:
            ex = self._ds[int(i)]
            x = self._decode(ex, int(i))
            if x.shape != self.sample_shape:
                raise ValueError(
                    f"{self.name}: example {int(i)} has shape {x.shape}, the first has "
                    f"{self.sample_shape}; pass image_size=... to resize them all"
                )
            xs.append(x)
            labels.append(int(ex[self.label_key]) if self.label_key else -1)
        return {"x": np.stack(xs), "label": np.asarray(labels, np.int32)}
