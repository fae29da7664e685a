"""Data for jaxgan: random-access sources and a deterministic, step-indexed pipeline.

A batch is a dict of numpy arrays: ``'x'`` (images NHWC float32 in [-1, 1], or 2D points
``(N, 2)`` float32) and ``'label'`` (int32 ``(N,)``, -1 where there are none).

    source = get_source("digits", image_size=32)          # or 'mnist', 'folder:/imgs', ...
    batches = batch_iterator(source, 64, seed=0, start_step=restored_step)
    batch = next(batches)
"""

from jaxgan.data.embedded import (
    DIGITS_TRAIN_SIZE,
    EMBEDDED,
    MIXTURE_POOL_SIZE,
    DigitsSource,
    MixtureSource,
)
from jaxgan.data.folder import IMAGE_EXTENSIONS, FolderSource, list_image_files
from jaxgan.data.mixtures import MIXTURES, mixture_centers, mixture_std, sample_mixture
from jaxgan.data.pipeline import BatchIterator, batch_indices, batch_iterator, fixed_batch
from jaxgan.data.source import Source
from jaxgan.data.sources import get_source, list_embedded
from jaxgan.data.tfds_source import TfdsSource
from jaxgan.data.validate import prepare_image, validate_images

__all__ = [
    "DIGITS_TRAIN_SIZE",
    "EMBEDDED",
    "IMAGE_EXTENSIONS",
    "MIXTURES",
    "MIXTURE_POOL_SIZE",
    "BatchIterator",
    "DigitsSource",
    "FolderSource",
    "MixtureSource",
    "Source",
    "TfdsSource",
    "batch_indices",
    "batch_iterator",
    "fixed_batch",
    "get_source",
    "list_embedded",
    "list_image_files",
    "mixture_centers",
    "mixture_std",
    "prepare_image",
    "sample_mixture",
    "validate_images",
]
