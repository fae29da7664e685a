"""The conditional family as :class:`~jaxgan.train.loop.Task`s: conditional GAN and InfoGAN.

Both train with the unconditional family's compiled step
(:func:`jaxgan.train.gan_step.make_train_step`), so every loss of that family
(``config.loss``), ``n_critic``, weight clipping and the gradient penalty work unchanged;
what differs is a :class:`~jaxgan.train.gan_step.Conditioning`:

* **cGAN** (Mirza & Osindero 2014): fakes get labels drawn uniformly from the K classes,
  G gets ``(z, labels)`` and D ``(x, labels)``; real images come with their own labels.
  The critic's gradient penalty (WGAN-GP) is taken at the real images' labels.
* **InfoGAN** (Chen et al. 2016): G gets ``(z, cat, cont)``: noise, categorical codes
  (uniform over K values) and continuous codes (uniform on [-1, 1]); D returns
  ``(logits, q_outputs)`` from one trunk, and the weighted negative mutual-information
  bound (:func:`jaxgan.losses.infogan_mutual_information_loss`) on the fakes is added to
  both the D/Q loss and the G loss (metric ``info_loss``).

Figures (``write_samples``): the cGAN grid has one row per class (fixed noise per column);
InfoGAN writes the categorical code along rows (fixed noise per column) and, next to it
(``<name>_continuous_<i>.png``), for each continuous code a grid varying it from -2 to 2
along the columns (rows: the categorical values; noise fixed).

Scores (``evaluate``) on ``config.eval_samples`` samples with balanced classes/codes:

* cGAN: ``class_accuracy``, the fraction of samples of class k that the digits classifier
  labels k (on 2D mixtures: whose nearest mode is k), plus ``digits_fid``/``digits_is``
  (or mode coverage);
* InfoGAN: ``cat_code_accuracy`` (:func:`majority_assignment_accuracy`): each value of
  the first categorical code is assigned the class the classifier most often gives its
  samples, and the score is the fraction of samples whose class is their code's
  assignment; ``cat_code_classes`` counts the distinct classes assigned (K ideally).

Many devices (:mod:`jaxgan.parallel`): ``parallel='sharding'`` runs the global step as it
is; with ``parallel='pmap'`` the networks average their BatchNorm statistics over the
devices (``bn_axis_name``, also in the projection / InfoGAN trunk and Q head) and the
shared step, built with ``axis_name``, draws the fake labels, codes and noise for the
global batch and keeps each device's rows, so both compute what one device computes.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import losses
from jaxgan.images import save_grid, save_scatter
from jaxgan.parallel import AXIS
from jaxgan.state import GANState, create_train_state
from jaxgan.train.gan_step import Conditioning, make_train_step
from jaxgan.train.loop import Task
from jaxgan.train.optim import make_optimizer
from jaxgan.train.unconditional import (
    base_config,
    build_networks,
    load_source,
    make_inception_fid,
    step_config,
)

_CONDITIONINGS = ("concat", "projection")
_GENERATE_CHUNK = 500


# ----------------------------------------------------------------------------- configs


def cgan_base_config() -> ml_collections.ConfigDict:
    """:func:`~jaxgan.train.unconditional.base_config` plus the conditional GAN's fields."""
    c = base_config()
    c.family = "cgan"
    # How D sees the label: 'concat' (one-hot label maps on the image channels for dcgan,
    # label encoding on the flattened input for mlp) or 'projection' (Miyato & Koyama).
    c.model.conditioning = "concat"
    c.model.embed_dim = 0  # 0: one-hot labels; > 0: learned embedding (G; D with mlp concat)
    c.grid_columns = 10  # samples per class in the sample grid
    c.eval_samples = 10000
    return c


def infogan_base_config() -> ml_collections.ConfigDict:
    """:func:`~jaxgan.train.unconditional.base_config` plus InfoGAN's codes and weights."""
    c = base_config()
    c.family = "infogan"
    c.latent_dim = 62  # noise; the codes come on top (the paper's MNIST setting)
    c.info = ml_collections.ConfigDict(
        {
            "num_categorical": 1,
            "categorical_values": 10,
            "num_continuous": 2,
            "lambda_cat": 1.0,  # weight of the categorical cross-entropy
            "lambda_cont": 1.0,  # weight of the continuous Gaussian NLL
            "learn_std": False,  # False: the paper's fixed-variance form (unit variance)
            "q_hidden": 128,
        }
    )
    c.grid_columns = 10
    c.eval_samples = 10000
    return c


# ----------------------------------------------------------------------------- scores


def majority_assignment_accuracy(
    codes: Any, classes: Any, num_codes: int | None = None
) -> tuple[float, np.ndarray]:
    """Accuracy of the best code -> class map that assigns each code its majority class.

    Each code value ``c`` is assigned ``a[c] = argmax_k #{i : codes_i = c, classes_i = k}``
    (ties go to the smaller class; a value that never occurs gets -1), and the accuracy is
    ``mean_i [classes_i == a[codes_i]]``. Several code values may be assigned the same
    class. This is how InfoGAN's categorical code is scored against the digit classes.

    Args:
      codes: ``(N,)`` integer code values in ``[0, num_codes)``.
      classes: ``(N,)`` integer classes (e.g. a classifier's predictions), >= 0.
      num_codes: number of code values (default ``max(codes) + 1``).

    Returns:
      ``(accuracy, assignment)`` with ``assignment`` the int64 ``(num_codes,)`` map.
    """
    codes = np.asarray(codes).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    if codes.shape != classes.shape or codes.size == 0:
        raise ValueError(
            f"codes and classes must be non-empty and of equal length, got {codes.shape} "
            f"and {classes.shape}"
        )
    for name, a in (("codes", codes), ("classes", classes)):
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0:
            raise ValueError(f"{name} must be non-negative integers")
    num_codes = int(codes.max()) + 1 if num_codes is None else int(num_codes)
    if codes.max() >= num_codes:
        raise ValueError(f"codes must lie in [0, {num_codes}), got max {codes.max()}")
    num_classes = int(classes.max()) + 1
    counts = np.bincount(codes * num_classes + classes, minlength=num_codes * num_classes)
    counts = counts.reshape(num_codes, num_classes)
    assignment = np.where(counts.sum(1) > 0, counts.argmax(1), -1).astype(np.int64)
    return float(np.mean(assignment[codes] == classes)), assignment


def _nearest_mode(points: np.ndarray, mixture: str) -> np.ndarray:
    """Index of the nearest mode centre of each 2D point."""
    from jaxgan.data import mixture_centers

    centers = mixture_centers(mixture)
    return ((points[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)


def _classify(dataset: str, kind: str, samples: np.ndarray) -> np.ndarray | None:
    """Classes of samples by a fixed classifier: digits CNN or nearest mode; else None."""
    if dataset == "digits":
        from jaxgan.metrics import load_digits_classifier

        return load_digits_classifier().predict(samples)
    if kind == "points":
        return _nearest_mode(samples, dataset)
    return None


# ----------------------------------------------------------------------------- networks


def _check_dcgan_gp(config: ml_collections.ConfigDict) -> None:
    if config.gp_weight > 0 and config.model.name == "dcgan" and config.model.d_norm == "batch":
        raise ValueError(
            "the gradient penalty is per sample, and BatchNorm in the critic mixes samples: "
            "use --model.d_norm layer (or none) with --gp_weight > 0"
        )


def _trunk(
    model: ml_collections.ConfigDict,
    sample_shape: tuple[int, ...],
    bn_axis_name: str | None = None,
) -> Any:
    """The discriminator trunk of ``model`` (shared by the projection and InfoGAN heads)."""
    from jaxgan.nets.conditional import DCGANTrunk, MLPTrunk

    if model.name == "mlp":
        return MLPTrunk(hidden=tuple(model.hidden))
    res, _, ch = sample_shape
    return DCGANTrunk(
        res, ch, base_features=model.base_features, norm=model.d_norm, bn_axis_name=bn_axis_name
    )


def build_cgan_networks(
    model: ml_collections.ConfigDict,
    sample_shape: tuple[int, ...],
    kind: str,
    num_classes: int,
    bn_axis_name: str | None = None,
) -> tuple[Any, Any]:
    """Label-conditioned ``(G, D)`` for ``model.name`` ('mlp' or 'dcgan') and
    ``model.conditioning`` ('concat' or 'projection').

    ``bn_axis_name``: the pmap axis every BatchNorm averages its statistics over (None: no
    pmap; see :mod:`jaxgan.parallel`)."""
    from jaxgan.nets.conditional import (
        LabelConcatDiscriminator,
        LabelConditionedGenerator,
        ProjectionDiscriminator,
    )
    from jaxgan.nets.dcgan import DCGANDiscriminator

    conditioning = model.get("conditioning", "concat")
    embed_dim = int(model.get("embed_dim", 0))
    if conditioning not in _CONDITIONINGS:
        raise ValueError(f"unknown conditioning {conditioning!r}; use one of {_CONDITIONINGS}")
    if embed_dim < 0:
        raise ValueError(f"model.embed_dim must be >= 0, got {embed_dim}")
    # validates model.name and the data
    G, D = build_networks(model, sample_shape, kind, bn_axis_name=bn_axis_name)
    G = LabelConditionedGenerator(G, num_classes, embed_dim)
    if conditioning == "projection":
        trunk = _trunk(model, sample_shape, bn_axis_name)
        return G, ProjectionDiscriminator(trunk, num_classes)
    if model.name == "mlp":
        return G, LabelConcatDiscriminator(D, num_classes, "flat", embed_dim)
    res, _, ch = sample_shape
    inner = DCGANDiscriminator(
        res, ch + num_classes, model.base_features, norm=model.d_norm, bn_axis_name=bn_axis_name
    )
    return G, LabelConcatDiscriminator(inner, num_classes, "maps")


def _check_info(info: ml_collections.ConfigDict) -> None:
    n_cat, k, n_cont = info.num_categorical, info.categorical_values, info.num_continuous
    if n_cat < 0 or n_cont < 0 or n_cat + n_cont == 0:
        raise ValueError(
            f"InfoGAN needs codes: info.num_categorical={n_cat}, info.num_continuous={n_cont}"
        )
    if n_cat and k < 2:
        raise ValueError(f"info.categorical_values must be >= 2, got {k}")
    if info.lambda_cat < 0 or info.lambda_cont < 0:
        raise ValueError("info.lambda_cat and info.lambda_cont must be >= 0")


def build_infogan_networks(
    config: ml_collections.ConfigDict,
    sample_shape: tuple[int, ...],
    kind: str,
    bn_axis_name: str | None = None,
) -> tuple[Any, Any]:
    """InfoGAN's ``(G, D)``: the family's generator fed with noise and codes, and a
    discriminator whose trunk is shared with the Q head (``bn_axis_name``: as
    :func:`build_cgan_networks`)."""
    from jaxgan.nets.conditional import CodeConditionedGenerator, InfoGANDiscriminator

    info, model = config.info, config.model
    _check_info(info)
    G, _ = build_networks(model, sample_shape, kind, bn_axis_name=bn_axis_name)
    codes = dict(
        num_categorical=info.num_categorical,
        categorical_values=info.categorical_values,
        num_continuous=info.num_continuous,
    )
    D = InfoGANDiscriminator(
        _trunk(model, sample_shape, bn_axis_name),
        **codes,
        learn_std=info.learn_std,
        q_hidden=info.q_hidden,
        q_norm=model.name == "dcgan" and model.d_norm == "batch",
        bn_axis_name=bn_axis_name,
    )
    return CodeConditionedGenerator(G, **codes), D


# ----------------------------------------------------------------------------- shared


def _axis_name(config: ml_collections.ConfigDict) -> str | None:
    """The pmap axis of the step and of BatchNorm: ``AXIS`` with ``parallel='pmap'``, else
    None ('none' and 'sharding' run the plain global step; see :mod:`jaxgan.parallel`)."""
    return AXIS if config.get("parallel", "none") == "pmap" else None


def _gan_task(
    config: ml_collections.ConfigDict,
    source: Any,
    networks: tuple[Any, Any],
    conditioning: Conditioning,
    g_inputs: tuple,
    d_inputs: tuple,
    model_meta: dict[str, Any],
) -> dict[str, Any]:
    """The parts of a Task that the conditional families share with the unconditional one:
    optimizers, state, the compiled step of :mod:`jaxgan.train.gan_step` (with
    ``parallel='pmap'`` the per-device step over ``AXIS``: it draws labels, codes and noise
    for the global batch and keeps its own rows), metadata."""
    G, D = networks
    axis_name = _axis_name(config)
    _check_dcgan_gp(config)
    sample_shape = tuple(source.sample_shape)
    tx_g = make_optimizer(config.optimizer, config.g_lr, config.b1, config.b2)
    tx_d = make_optimizer(config.optimizer, config.d_lr, config.b1, config.b2)

    def init_state(key: jax.Array) -> GANState:
        kg, kd, ks = jax.random.split(key, 3)
        z = jnp.zeros((1, config.latent_dim))
        x = jnp.zeros((1, *sample_shape))
        return GANState(
            g=create_train_state(G, tx_g, kg, z, *g_inputs, train=False),
            d=create_train_state(D, tx_d, kd, x, *d_inputs, train=False),
            step=jnp.array(0, jnp.int32),
            key=ks,
        )

    return dict(
        meta={
            "family": config.family,
            "model": model_meta,
            "sample_shape": list(sample_shape),
            "latent_dim": config.latent_dim,
            "num_classes": int(source.num_classes),
        },
        init_state=init_state,
        train_step=make_train_step(
            step_config(config), conditioning, jit=axis_name is None, axis_name=axis_name
        ),
        source=source,
        examples_per_step=config.batch_size * config.n_critic,
        axis_name=axis_name,
        batch_chunks=config.n_critic,
    )


_generate = jax.jit(lambda g, *inputs: g.apply_fn(g.variables(), *inputs, train=False))


def generate(state: GANState, *inputs: Any, chunk: int = _GENERATE_CHUNK) -> np.ndarray:
    """Samples of the generator of ``state`` (eval mode) for the row-aligned ``inputs``
    (noise, labels or codes), in chunks of ``chunk`` rows."""
    n = len(inputs[0])
    out = []
    for i in range(0, n, chunk):
        out.append(np.asarray(_generate(state.g, *(jnp.asarray(a[i : i + chunk]) for a in inputs))))
    return np.concatenate(out)


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------- cGAN


def label_conditioning(num_classes: int) -> Conditioning:
    """Fakes get labels drawn uniformly from ``num_classes``; reals come with their own."""

    def sample(key: jax.Array, batch: dict, n: int, latent_dim: int):
        kz, ky = jax.random.split(key)
        labels = jax.random.randint(ky, (n,), 0, num_classes, dtype=jnp.int32)
        return (jax.random.normal(kz, (n, latent_dim)), labels), (labels,), None

    return Conditioning(sample, lambda batch: (batch["label"].astype(jnp.int32),))


def _check_labelled(config: ml_collections.ConfigDict, source: Any) -> int:
    k = int(getattr(source, "num_classes", 0) or 0)
    if k < 1:
        raise ValueError(
            f"the conditional GAN needs class labels, but dataset {config.dataset!r} has none "
            "(num_classes == 0): use a labelled dataset, e.g. digits or a tfds dataset with a "
            "'label' feature (mnist, fashion_mnist, cifar10, ...)"
        )
    return k


def build_cgan_task(config: ml_collections.ConfigDict) -> Task:
    """The conditional GAN task of ``config`` (fields of :func:`cgan_base_config`)."""
    source = load_source(config)
    k = _check_labelled(config, source)
    sample_shape = tuple(source.sample_shape)
    G, D = build_cgan_networks(
        config.model, sample_shape, source.kind, k, bn_axis_name=_axis_name(config)
    )
    label = jnp.zeros((1,), jnp.int32)
    parts = _gan_task(
        config, source, (G, D), label_conditioning(k), (label,), (label,), config.model.to_dict()
    )

    cols = int(config.grid_columns)
    grid_z = _normal(np.random.default_rng(config.seed + 1), (cols, config.latent_dim))
    grid_z = np.tile(grid_z, (k, 1))  # fixed noise per column
    grid_labels = np.repeat(np.arange(k, dtype=np.int32), cols)  # one row per class
    real_points = source.get(np.arange(min(len(source), 2500))) if source.kind == "points" else None

    def balanced(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        z = _normal(np.random.default_rng(seed), (n, config.latent_dim))
        return z, (np.arange(n) % k).astype(np.int32)

    def write_samples(state: GANState, path: str) -> None:
        if source.kind == "points":
            z, y = balanced(2500, config.seed + 1)
            save_scatter(generate(state, z, y), path, reference=real_points["x"])
        else:
            save_grid(generate(state, grid_z, grid_labels), path, nrow=cols)

    inception_fid = make_inception_fid(config, source)

    def evaluate(state: GANState) -> dict[str, float]:
        from jaxgan.metrics import evaluate_samples

        n = 2500 if source.kind == "points" else config.eval_samples
        z, labels = balanced(n, config.seed + 2)
        samples = generate(state, z, labels)
        scores = evaluate_samples(config.dataset, samples)
        predicted = _classify(config.dataset, source.kind, samples)
        if predicted is not None:
            scores["class_accuracy"] = float(np.mean(predicted == labels))
        if inception_fid is not None:
            z, labels = balanced(config.fid_samples, config.seed + 3)
            scores["fid"] = inception_fid(generate(state, z, labels))
        return scores

    return Task(**parts, write_samples=write_samples, evaluate=evaluate)


# ----------------------------------------------------------------------------- InfoGAN


def info_conditioning(info: ml_collections.ConfigDict) -> Conditioning:
    """InfoGAN's codes: categorical uniform over ``info.categorical_values``, continuous
    uniform on [-1, 1]; the weighted negative MI bound of Q's predictions on the fakes."""
    n_cat, k, n_cont = info.num_categorical, info.categorical_values, info.num_continuous
    lambda_cat, lambda_cont = float(info.lambda_cat), float(info.lambda_cont)

    def sample(key: jax.Array, batch: dict, n: int, latent_dim: int):
        kz, kc, ku = jax.random.split(key, 3)
        z = jax.random.normal(kz, (n, latent_dim))
        cat = jax.random.randint(kc, (n, n_cat), 0, k, dtype=jnp.int32)
        cont = jax.random.uniform(ku, (n, n_cont), minval=-1.0, maxval=1.0)
        return (z, cat, cont), (), (cat, cont)

    def info_loss(q_outputs: tuple, codes: tuple) -> jax.Array:
        cat_logits, cont_mean, cont_log_std = q_outputs
        cat, cont = codes
        return losses.infogan_mutual_information_loss(
            cat_logits,
            cat if n_cat else None,
            cont_mean,
            cont if n_cont else None,
            cont_log_std,
            lambda_cat=lambda_cat,
            lambda_cont=lambda_cont,
        )

    return Conditioning(sample, lambda batch: (), info_loss)


def continuous_grid_path(path: str, index: int) -> str:
    """Where :func:`build_infogan_task`'s sample writer puts the grid of continuous code
    ``index`` next to the categorical grid ``path`` (``x.png -> x_continuous_<i>.png``)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}_continuous_{index}{ext or '.png'}"


def build_infogan_task(config: ml_collections.ConfigDict) -> Task:
    """The InfoGAN task of ``config`` (fields of :func:`infogan_base_config`)."""
    source = load_source(config)
    info = config.info
    sample_shape = tuple(source.sample_shape)
    G, D = build_infogan_networks(config, sample_shape, source.kind, _axis_name(config))
    n_cat, k, n_cont = info.num_categorical, info.categorical_values, info.num_continuous
    g_inputs = (jnp.zeros((1, n_cat), jnp.int32), jnp.zeros((1, n_cont)))
    model_meta = {
        **config.model.to_dict(),
        "codes": [n_cat, k, n_cont],
        "learn_std": bool(info.learn_std),
        "q_hidden": info.q_hidden,
    }
    parts = _gan_task(config, source, (G, D), info_conditioning(info), g_inputs, (), model_meta)

    cols = int(config.grid_columns)
    rows = k if n_cat else cols
    rng = np.random.default_rng(config.seed + 1)
    column_z = np.tile(_normal(rng, (cols, config.latent_dim)), (rows, 1))
    one_z = np.tile(_normal(rng, (1, config.latent_dim)), (rows * cols, 1))
    grid_cat = np.zeros((rows * cols, n_cat), np.int32)
    if n_cat:
        grid_cat[:, 0] = np.repeat(np.arange(k), cols)  # first code along the rows
    no_cont = np.zeros((rows * cols, n_cont), np.float32)
    sweep = np.tile(np.linspace(-2.0, 2.0, cols, dtype=np.float32), rows)
    real_points = source.get(np.arange(min(len(source), 2500))) if source.kind == "points" else None

    def codes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise and codes of ``n`` samples; the first categorical code balanced."""
        r = np.random.default_rng(seed)
        z = _normal(r, (n, config.latent_dim))
        cat = r.integers(0, max(k, 1), (n, n_cat)).astype(np.int32)
        if n_cat:
            cat[:, 0] = np.arange(n) % k
        cont = r.uniform(-1.0, 1.0, (n, n_cont)).astype(np.float32)
        return z, cat, cont

    def write_samples(state: GANState, path: str) -> None:
        if source.kind == "points":
            save_scatter(generate(state, *codes(2500, config.seed + 1)), path, real_points["x"])
            return
        # Categorical code along the rows, fixed noise per column, continuous codes 0.
        save_grid(generate(state, column_z, grid_cat, no_cont), path, nrow=cols)
        for i in range(n_cont):
            cont = no_cont.copy()
            cont[:, i] = sweep  # from -2 to 2 along the columns; noise fixed
            z = one_z if n_cat else column_z.reshape(cols, cols, -1).transpose(1, 0, 2)
            z = z.reshape(rows * cols, -1)
            save_grid(generate(state, z, grid_cat, cont), continuous_grid_path(path, i), cols)

    inception_fid = make_inception_fid(config, source)

    def evaluate(state: GANState) -> dict[str, float]:
        from jaxgan.metrics import evaluate_samples

        n = 2500 if source.kind == "points" else config.eval_samples
        z, cat, cont = codes(n, config.seed + 2)
        samples = generate(state, z, cat, cont)
        scores = evaluate_samples(config.dataset, samples)
        predicted = _classify(config.dataset, source.kind, samples)
        if predicted is not None and n_cat:
            acc, assignment = majority_assignment_accuracy(cat[:, 0], predicted, k)
            scores["cat_code_accuracy"] = acc
            scores["cat_code_classes"] = float(len(set(assignment[assignment >= 0].tolist())))
        if inception_fid is not None:
            fakes = generate(state, *codes(config.fid_samples, config.seed + 3))
            scores["fid"] = inception_fid(fakes)
        return scores

    return Task(**parts, write_samples=write_samples, evaluate=evaluate)
