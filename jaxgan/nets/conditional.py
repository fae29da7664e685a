"""Networks of the conditional family: label-conditioned GANs and InfoGAN.

Generators wrap any unconditional generator (:mod:`jaxgan.nets.mlp`,
:mod:`jaxgan.nets.dcgan`), whose latent size is taken from its input:

* :class:`LabelConditionedGenerator` ``(z, labels)``: the label's one-hot vector (or a
  learned embedding) is concatenated to ``z`` (Mirza & Osindero 2014, "Conditional
  Generative Adversarial Nets"; the DCGAN-style conditional generator does the same);
* :class:`CodeConditionedGenerator` ``(z, cat, cont)``: InfoGAN's latent input, the noise
  with the one-hot categorical codes and the continuous codes concatenated (Chen et al.
  2016, "InfoGAN").

Discriminators return raw logits ``(B,)``:

* :class:`LabelConcatDiscriminator` ``(x, labels)``: the label's encoding concatenated to
  the flattened input (``mode='flat'``, the MLP of Mirza & Osindero) or, as constant
  one-hot label maps, to the image channels (``mode='maps'``, for convolutional networks);
* :class:`ProjectionDiscriminator` ``(x, labels)``: Miyato & Koyama 2018, "cGANs with
  Projection Discriminator": ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``;
* :class:`InfoGANDiscriminator` ``x -> (logits, q_outputs)``: the adversarial head and the
  auxiliary head Q share the trunk ``phi``; Q predicts the codes: categorical logits
  ``(B, n_cat, K)``, continuous means ``(B, n_cont)`` and, optionally, log standard
  deviations (``None`` for the fixed-variance form).

The shared trunks are :class:`DCGANTrunk` (the DCGAN discriminator without its last
convolution) and :class:`MLPTrunk`.

Labels are int32 ``(B,)``; ``labels=None`` (and, for InfoGAN, ``cat=None``/``cont=None``)
means ``arange(B) % num_classes`` (every class in turn) and zero continuous codes, so a
conditional generator can also be called like an unconditional one (``G(z)``), e.g. by
``python -m jaxgan.sample``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxgan.nets.dcgan import _EPSILON, _NORMS, _batch_norm, _check_config, dcgan_kernel_init
from jaxgan.nets.layers import Conv

Array = jax.Array

_MODES = ("flat", "maps")


def _check_labels(name: str, labels: Array | None, batch: int, num_classes: int) -> Array:
    """``labels`` as int32 ``(batch,)``; ``None`` gives every class in turn."""
    if num_classes < 1:
        raise ValueError(f"{name}: num_classes must be >= 1, got {num_classes}")
    if labels is None:
        return jnp.arange(batch, dtype=jnp.int32) % num_classes
    if labels.shape != (batch,):
        raise ValueError(f"{name}: labels must have shape ({batch},), got {tuple(labels.shape)}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name}: labels must be integers, got {labels.dtype}")
    return labels.astype(jnp.int32)


def _encode(labels: Array, num_classes: int, embed_dim: int, dtype: Any) -> Array:
    """One-hot ``(B, K)`` (``embed_dim == 0``) or a learned embedding ``(B, embed_dim)``.

    Must be called inside a compact module (the embedding is a submodule of the caller).
    """
    if embed_dim > 0:
        return nn.Embed(num_classes, embed_dim, name="label_embed")(labels).astype(dtype)
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)


class LabelConditionedGenerator(nn.Module):
    """``(z, labels) -> generator(concat(z, encode(labels)))``.

    Attributes:
      generator: any generator module mapping ``(B, L)`` latents to samples (its latent
        size is taken from its input, as :class:`~jaxgan.nets.mlp.MLPGenerator` and
        :class:`~jaxgan.nets.dcgan.DCGANGenerator` do).
      num_classes: number of classes K.
      embed_dim: 0 for a one-hot encoding, else the size of a learned label embedding.
    """

    generator: nn.Module
    num_classes: int
    embed_dim: int = 0

    @nn.compact
    def __call__(self, z: Array, labels: Array | None = None, train: bool = True) -> Array:
        """Map ``z`` (B, L) and ``labels`` (B,) to samples (B, ...)."""
        if z.ndim != 2:
            raise ValueError(f"LabelConditionedGenerator: z must be (batch, latent), got {z.shape}")
        labels = _check_labels("LabelConditionedGenerator", labels, z.shape[0], self.num_classes)
        h = jnp.concatenate([z, _encode(labels, self.num_classes, self.embed_dim, z.dtype)], -1)
        return self.generator(h, train=train)


class CodeConditionedGenerator(nn.Module):
    """InfoGAN's generator: ``(z, cat, cont) -> generator(concat(z, one_hot(cat), cont))``.

    Attributes:
      generator: any generator module taking ``(B, L)`` latents (see
        :class:`LabelConditionedGenerator`).
      num_categorical: number of categorical codes (each one-hot of size
        ``categorical_values``).
      categorical_values: values K of each categorical code.
      num_continuous: number of continuous codes.
    """

    generator: nn.Module
    num_categorical: int = 1
    categorical_values: int = 10
    num_continuous: int = 2

    @nn.compact
    def __call__(
        self,
        z: Array,
        cat: Array | None = None,
        cont: Array | None = None,
        train: bool = True,
    ) -> Array:
        """Map noise ``z`` (B, L), integer codes ``cat`` (B, n_cat) in [0, K) and continuous
        codes ``cont`` (B, n_cont) to samples (B, ...)."""
        if z.ndim != 2:
            raise ValueError(f"CodeConditionedGenerator: z must be (batch, latent), got {z.shape}")
        b = z.shape[0]
        n_cat, k, n_cont = self.num_categorical, self.categorical_values, self.num_continuous
        if cat is None:
            cat = jnp.broadcast_to((jnp.arange(b, dtype=jnp.int32) % k)[:, None], (b, n_cat))
        if cont is None:
            cont = jnp.zeros((b, n_cont), z.dtype)
        if cat.shape != (b, n_cat) or cont.shape != (b, n_cont):
            raise ValueError(
                f"CodeConditionedGenerator: codes must be cat ({b}, {n_cat}) and cont "
                f"({b}, {n_cont}), got {tuple(cat.shape)} and {tuple(cont.shape)}"
            )
        parts = [z, jax.nn.one_hot(cat, k, dtype=z.dtype).reshape(b, n_cat * k)]
        h = jnp.concatenate([*parts, cont.astype(z.dtype)], axis=-1)
        return self.generator(h, train=train)


class LabelConcatDiscriminator(nn.Module):
    """``(x, labels) -> discriminator(concat(x, label encoding))``: raw logits (B,).

    Attributes:
      discriminator: the unconditional discriminator that sees the concatenation. With
        ``mode='maps'`` it must accept ``channels + K`` input channels (e.g.
        ``DCGANDiscriminator(channels=C + K)``); with ``mode='flat'`` it gets
        ``(B, prod(x.shape[1:]) + K)`` vectors (e.g. ``MLPDiscriminator``).
      num_classes: number of classes K.
      mode: 'flat' (encoding concatenated to the flattened input) or 'maps' (constant
        one-hot label maps concatenated to the image channels).
      embed_dim: 'flat' only: 0 for one-hot, else a learned embedding of this size.
    """

    discriminator: nn.Module
    num_classes: int
    mode: str = "maps"
    embed_dim: int = 0

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None, train: bool = True) -> Array:
        """Map ``x`` (B, ...) and ``labels`` (B,) to logits (B,)."""
        if self.mode not in _MODES:
            raise ValueError(f"LabelConcatDiscriminator mode must be one of {_MODES}")
        labels = _check_labels("LabelConcatDiscriminator", labels, x.shape[0], self.num_classes)
        if self.mode == "flat":
            flat = x.reshape(x.shape[0], -1)
            code = _encode(labels, self.num_classes, self.embed_dim, x.dtype)
            return self.discriminator(jnp.concatenate([flat, code], -1), train=train)
        if x.ndim != 4:
            raise ValueError(
                f"LabelConcatDiscriminator(mode='maps') needs NHWC images, got {x.shape}"
            )
        if self.embed_dim:
            raise ValueError("LabelConcatDiscriminator(mode='maps') uses one-hot maps: embed_dim=0")
        maps = jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)[:, None, None, :]
        maps = jnp.broadcast_to(maps, (*x.shape[:3], self.num_classes))
        return self.discriminator(jnp.concatenate([x, maps], -1), train=train)


class DCGANTrunk(nn.Module):
    """The DCGAN discriminator up to its last convolution: features (B, 4, 4, F).

    Same layers and initialisation as :class:`~jaxgan.nets.dcgan.DCGANDiscriminator`
    (Conv(4, 2) -> LReLU -> [Conv(4, 2) -> norm -> LReLU]*, features doubling from
    ``base_features``), which is this trunk followed by a 4x4 'VALID' convolution to one
    logit, i.e. a Dense layer on the flattened features.

    Attributes:
      resolution: input height and width (8, 16, 32 or 64).
      channels: input channels.
      base_features: features of the first convolution.
      norm: 'batch', 'layer' or 'none' (see ``DCGANDiscriminator``).
      bn_axis_name: BatchNorm's pmap axis (see ``DCGANDiscriminator``).
    """

    resolution: int
    channels: int
    base_features: int = 64
    norm: str = "batch"
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> Array:
        """Map images (B, resolution, resolution, channels) to features (B, 4, 4, F)."""
        n_down = _check_config("DCGANTrunk", self.resolution, self.base_features)
        if self.norm not in _NORMS:
            raise ValueError(f"DCGANTrunk norm must be one of {_NORMS}, got {self.norm!r}")
        want = (self.resolution, self.resolution, self.channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"DCGANTrunk expects images of shape (batch, {want[0]}, {want[1]}, {want[2]}) "
                f"(NHWC), got {tuple(x.shape)}"
            )
        features = self.base_features
        h = x
        for i in range(n_down):
            normed = i > 0 and self.norm != "none"
            h = Conv(
                features,
                (4, 4),
                (2, 2),
                padding=((1, 1), (1, 1)),
                use_bias=not (i > 0 and self.norm == "batch"),
                kernel_init=dcgan_kernel_init,
            )(h)
            if normed and self.norm == "batch":
                h = _batch_norm(train, self.bn_axis_name)(h)
            elif normed:
                h = nn.LayerNorm(epsilon=_EPSILON, reduction_axes=(-3, -2, -1), feature_axes=-1)(h)
            h = nn.leaky_relu(h, negative_slope=0.2)
            features *= 2
        return h


class MLPTrunk(nn.Module):
    """flatten(x) -> [Dense -> LeakyReLU]*: features (B, hidden[-1]).

    Attributes:
      hidden: widths of the hidden layers (as :class:`~jaxgan.nets.mlp.MLPDiscriminator`).
      negative_slope: slope of the LeakyReLU.
    """

    hidden: Sequence[int] = (256, 256)
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> Array:
        """Map x (B, ...) to features (B, hidden[-1])."""
        del train
        if x.ndim < 2:
            raise ValueError(f"MLPTrunk expects a batch (B, ...), got shape {x.shape}")
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(width)(h), negative_slope=self.negative_slope)
        return h


class ProjectionDiscriminator(nn.Module):
    """Projection discriminator (Miyato & Koyama 2018): raw logits (B,).

    ``D(x, y) = w . phi(x) + b + embed(y) . phi(x)``, with ``phi`` the flattened trunk
    features. For the DCGAN trunk ``w . phi(x) + b`` is exactly the DCGAN discriminator's
    last 4x4 convolution.

    Attributes:
      trunk: feature extractor ``(x, train) -> (B, ...)``.
      num_classes: number of classes K.
    """

    trunk: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None, train: bool = True) -> Array:
        """Map ``x`` (B, ...) and ``labels`` (B,) to logits (B,)."""
        labels = _check_labels("ProjectionDiscriminator", labels, x.shape[0], self.num_classes)
        phi = self.trunk(x, train=train)
        phi = phi.reshape(phi.shape[0], -1)
        out = nn.Dense(1, kernel_init=dcgan_kernel_init, name="linear")(phi)[:, 0]
        embed = nn.Embed(
            self.num_classes,
            phi.shape[-1],
            embedding_init=nn.initializers.normal(0.02),
            name="projection",
        )(labels)
        return out + jnp.sum(embed * phi, axis=-1)


class InfoGANDiscriminator(nn.Module):
    """Discriminator and InfoGAN's Q head on one trunk: ``x -> (logits, q_outputs)``.

    ``logits`` (B,) = Dense(1)(phi); ``q_outputs = (cat_logits, cont_mean, cont_log_std)``
    from Q = Dense(q_hidden) -> [BatchNorm] -> LReLU -> Dense, on the same features ``phi``
    (the InfoGAN paper's MNIST Q: FC 128 - BN - lReLU - FC):

    * ``cat_logits`` (B, n_cat, K), or None without categorical codes;
    * ``cont_mean`` (B, n_cont), or None without continuous codes;
    * ``cont_log_std`` (B, n_cont) when ``learn_std`` (clipped to ``[min_log_std, 2]``),
      else None (fixed unit variance: the loss is half the squared error plus a constant).

    Attributes:
      trunk: shared feature extractor ``(x, train) -> (B, ...)``.
      num_categorical, categorical_values, num_continuous: the codes Q predicts.
      learn_std: predict a log standard deviation per continuous code.
      q_hidden: width of Q's hidden layer.
      q_norm: BatchNorm in Q's hidden layer.
      min_log_std: floor of the predicted log standard deviation (keeps the NLL bounded).
      bn_axis_name: BatchNorm's pmap axis.
    """

    trunk: nn.Module
    num_categorical: int = 1
    categorical_values: int = 10
    num_continuous: int = 2
    learn_std: bool = False
    q_hidden: int = 128
    q_norm: bool = True
    min_log_std: float = -4.0
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> tuple[Array, tuple]:
        """Map ``x`` (B, ...) to ``(logits (B,), (cat_logits, cont_mean, cont_log_std))``."""
        n_cat, k, n_cont = self.num_categorical, self.categorical_values, self.num_continuous
        if n_cat + n_cont == 0:
            raise ValueError("InfoGANDiscriminator needs categorical or continuous codes")
        phi = self.trunk(x, train=train)
        phi = phi.reshape(phi.shape[0], -1)
        b = phi.shape[0]
        logits = nn.Dense(1, kernel_init=dcgan_kernel_init, name="adversarial")(phi)[:, 0]
        q = nn.Dense(self.q_hidden, use_bias=not self.q_norm, name="q_hidden")(phi)
        if self.q_norm:
            q = _batch_norm(train, self.bn_axis_name, name="q_norm")(q)
        q = nn.leaky_relu(q, negative_slope=0.2)
        n_out = n_cat * k + n_cont * (2 if self.learn_std else 1)
        q = nn.Dense(n_out, name="q_out")(q)
        cat_logits = q[:, : n_cat * k].reshape(b, n_cat, k) if n_cat else None
        rest = q[:, n_cat * k :]
        cont_mean = rest[:, :n_cont] if n_cont else None
        cont_log_std = None
        if n_cont and self.learn_std:
            cont_log_std = jnp.clip(rest[:, n_cont:], self.min_log_std, 2.0)
        return logits, (cat_logits, cont_mean, cont_log_std)
