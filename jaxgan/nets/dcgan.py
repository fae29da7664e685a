"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016, arXiv:1511.06434).

Images are NHWC float32 in [-1, 1]; the discriminator returns raw logits of shape (B,).
Resolutions are the powers of two from 8 to 64. Feature counts double as the resolution
halves, so at 64x64 with ``base_features=64`` the generator is the paper's
4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64xC and the discriminator its mirror
(64 -> 128 -> 256 -> 512 features, then a 4x4 convolution to one logit).

Initialisation follows the paper ("all weights ... from a zero-centred Normal distribution
with standard deviation 0.02"): every Dense/Conv/ConvTranspose kernel is N(0, 0.02^2),
biases are zero. BatchNorm scales are N(1, 0.02^2) and offsets zero, as in the authors'
reference code (and PyTorch's DCGAN example); the paper itself does not say. BatchNorm uses
momentum 0.9 (PyTorch's 0.1) and epsilon 1e-5; it is :class:`jaxgan.nets.norm.BatchNorm`,
flax's layer with a closed-form derivative. The generator's transposed convolutions are
:class:`jaxgan.nets.layers.ConvTranspose`, exact and much faster on CPU than flax's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxgan.nets.layers import Conv, ConvTranspose, count_params
from jaxgan.nets.norm import BatchNorm

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "count_params"]

_RESOLUTIONS = (8, 16, 32, 64)
_NORMS = ("batch", "layer", "none")
_MOMENTUM = 0.9
_EPSILON = 1e-5


def dcgan_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """N(0, 0.02^2), the paper's initialisation for every kernel."""
    return 0.02 * jax.random.normal(key, shape, dtype)


def dcgan_scale_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """N(1, 0.02^2), the BatchNorm scale initialisation of the reference DCGAN code."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _check_config(name: str, resolution: int, base_features: int) -> int:
    """Validate the architecture; return the number of stride-2 stages, log2(resolution/4)."""
    if not isinstance(resolution, int) or resolution not in _RESOLUTIONS:
        raise ValueError(
            f"{name}: resolution must be a power of two from 8 to 64 {_RESOLUTIONS}, "
            f"got {resolution!r}"
        )
    if not isinstance(base_features, int) or base_features < 1:
        raise ValueError(f"{name}: base_features must be a positive int, got {base_features!r}")
    return resolution.bit_length() - 3  # 8 -> 1, 16 -> 2, 32 -> 3, 64 -> 4


def _batch_norm(train: bool, axis_name: str | None = None, name: str | None = None) -> BatchNorm:
    return BatchNorm(
        use_running_average=not train,
        momentum=_MOMENTUM,
        epsilon=_EPSILON,
        scale_init=dcgan_scale_init,
        axis_name=axis_name,
        name=name,
    )


class DCGANGenerator(nn.Module):
    """z -> Dense to 4x4xF -> BN -> ReLU -> [ConvT(4, 2) -> BN -> ReLU]* -> ConvT(4, 2) -> tanh.

    ``F = base_features * resolution / 8``; features halve at every upsampling and reach
    ``base_features`` before the last layer, which maps to ``channels``. The latent size is
    taken from ``z``.

    Attributes:
      resolution: output height and width (8, 16, 32 or 64).
      channels: output channels (1 grey, 3 RGB).
      base_features: features of the last hidden layer (64 in the paper).
      bn_axis_name: under ``jax.pmap``, the axis over which BatchNorm averages its batch
        statistics (so they are those of the global batch); None on one device or under
        ``jax.jit`` with sharded arrays.
    """

    resolution: int
    channels: int
    base_features: int = 64
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        """Map z (B, L) to images (B, resolution, resolution, channels) in [-1, 1].

        In train mode BatchNorm normalises with batch statistics and updates the running
        averages in the 'batch_stats' collection (apply with ``mutable=['batch_stats']``).
        """
        n_up = _check_config("DCGANGenerator", self.resolution, self.base_features)
        if z.ndim != 2:
            raise ValueError(f"DCGANGenerator expects z of shape (batch, latent), got {z.shape}")
        features = self.base_features * 2 ** (n_up - 1)
        h = nn.Dense(4 * 4 * features, use_bias=False, kernel_init=dcgan_kernel_init)(z)
        h = h.reshape(z.shape[0], 4, 4, features)
        h = nn.relu(_batch_norm(train, self.bn_axis_name)(h))
        for _ in range(n_up - 1):
            features //= 2
            h = ConvTranspose(
                features, (4, 4), (2, 2), use_bias=False, kernel_init=dcgan_kernel_init
            )(h)
            h = nn.relu(_batch_norm(train, self.bn_axis_name)(h))
        h = ConvTranspose(self.channels, (4, 4), (2, 2), kernel_init=dcgan_kernel_init)(h)
        return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
    """x -> Conv(4, 2) -> LReLU -> [Conv(4, 2) -> norm -> LReLU]* -> Conv(4x4 valid) -> logits.

    Every stride-2 convolution pads by 1 on each side (halving the size, like 'SAME'); the
    first has no normalisation; features double at each stage, from ``base_features``, until
    the map is 4x4. LeakyReLU slope 0.2.

    Attributes:
      resolution: input height and width (8, 16, 32 or 64).
      channels: input channels.
      base_features: features of the first convolution (64 in the paper).
      norm: 'batch' (the paper), or 'layer' / 'none' for WGAN-GP critics, whose
        per-sample gradient penalty BatchNorm would break. 'layer' normalises each sample
        over (H, W, C) with a per-channel scale and offset.
      bn_axis_name: under ``jax.pmap``, the axis over which BatchNorm averages its batch
        statistics (see :class:`DCGANGenerator`).
    """

    resolution: int
    channels: int
    base_features: int = 64
    norm: str = "batch"
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Map images (B, resolution, resolution, channels) to logits (B,)."""
        n_down = _check_config("DCGANDiscriminator", self.resolution, self.base_features)
        if self.norm not in _NORMS:
            raise ValueError(f"DCGANDiscriminator norm must be one of {_NORMS}, got {self.norm!r}")
        want = (self.resolution, self.resolution, self.channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"DCGANDiscriminator expects images of shape (batch, {want[0]}, {want[1]}, "
                f"{want[2]}) (NHWC), got {tuple(x.shape)}"
            )

        def conv(features: int, use_bias: bool = True) -> Conv:
            return Conv(
                features,
                (4, 4),
                (2, 2),
                padding=((1, 1), (1, 1)),
                use_bias=use_bias,
                kernel_init=dcgan_kernel_init,
            )

        features = self.base_features
        h = nn.leaky_relu(conv(features)(x), negative_slope=0.2)
        for _ in range(n_down - 1):
            features *= 2
            h = conv(features, use_bias=self.norm != "batch")(h)
            if self.norm == "batch":
                h = _batch_norm(train, self.bn_axis_name)(h)
            elif self.norm == "layer":
                h = nn.LayerNorm(epsilon=_EPSILON, reduction_axes=(-3, -2, -1), feature_axes=-1)(h)
            h = nn.leaky_relu(h, negative_slope=0.2)
        h = Conv(1, (4, 4), padding="VALID", kernel_init=dcgan_kernel_init)(h)
        return h.reshape(x.shape[0])
