"""Sample-quality metrics: Frechet distance, KID, IS, precision/recall, digits scores, modes.

Everything here needs no downloaded weights: the digits classifier's weights ship with the
package (``jaxgan/assets/digits_classifier.npz``). Inception-based FID for natural images
needs InceptionV3 weights from a file the user names; it lives in its own module.

``evaluate_samples(dataset, samples, labels)`` picks the metrics that fit a dataset and
returns a flat ``{name: float}`` dict ready for logging.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxgan.metrics.frechet import frechet_distance, gaussian_stats
from jaxgan.metrics.modes import mode_counts, mode_coverage
from jaxgan.metrics.scores import (
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

if TYPE_CHECKING:
    from jaxgan.metrics.digits import (
        DigitsClassifier,
        classification_accuracy,
        digits_fid,
        digits_inception_score,
        load_digits_classifier,
        train_digits_classifier,
    )

# The digits names load lazily (PEP 562): importing the package stays light, and
# `python -m jaxgan.metrics.digits --train` does not import the module twice.
_DIGITS_NAMES = (
    "DigitsClassifier",
    "classification_accuracy",
    "digits_fid",
    "digits_inception_score",
    "load_digits_classifier",
    "train_digits_classifier",
)

MIXTURE_DATASETS = ("ring8", "grid25")

__all__ = [
    "DigitsClassifier",
    "classification_accuracy",
    "digits_fid",
    "digits_inception_score",
    "evaluate_samples",
    "frechet_distance",
    "gaussian_stats",
    "inception_score",
    "kernel_inception_distance",
    "load_digits_classifier",
    "mode_counts",
    "mode_coverage",
    "precision_recall",
    "train_digits_classifier",
]


def __getattr__(name: str) -> Any:
    """Load the digits-classifier names on first use."""
    if name in _DIGITS_NAMES:
        return getattr(importlib.import_module("jaxgan.metrics.digits"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate_samples(
    dataset: str, samples: Any, labels: np.ndarray | None = None
) -> dict[str, float]:
    """Weight-free metrics of generated ``samples`` for ``dataset``, as a flat dict.

    * ``"digits"``: ``samples`` are ``(N, H, H, 1)`` images in [-1, 1]; returns
      ``digits_fid`` (against all 1,797 real digits), ``digits_is`` (mean over
      ``min(10, N)`` splits) and, when ``labels`` (the classes the samples were
      conditioned on) are given, ``class_accuracy``.
    * ``"ring8"`` / ``"grid25"``: ``samples`` are ``(N, 2)`` points; returns ``modes``,
      ``high_quality`` and ``kl`` from ``mode_coverage`` (VEEGAN protocol).
    * any other dataset: ``{}``; natural images need Inception FID, whose weights the
      user provides (see ``jaxgan.metrics.fid``).
    """
    if dataset == "digits":
        from jaxgan.metrics.digits import (
            classification_accuracy,
            digits_fid,
            digits_inception_score,
        )

        images = np.asarray(samples)
        out = {
            "digits_fid": digits_fid(images),
            "digits_is": digits_inception_score(images, splits=min(10, len(images)))[0],
        }
        if labels is not None:
            out["class_accuracy"] = classification_accuracy(images, labels)
        return out
    if dataset in MIXTURE_DATASETS:
        return {k: float(v) for k, v in mode_coverage(samples, dataset).items()}
    return {}
