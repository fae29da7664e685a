"""Fully connected generator and discriminator (the vanilla GAN of Goodfellow et al. 2014).

``MLPGenerator`` maps a latent ``z`` (B, L) to samples of any shape (2-D points, flattened
images reshaped back); ``MLPDiscriminator`` flattens its input and returns raw logits (B,).
Both take ``train`` for a uniform call signature with the convolutional networks; they have
no BatchNorm or dropout, so it changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

_OUTPUTS = ("tanh", "linear")


class MLPGenerator(nn.Module):
    """z -> [Dense -> ReLU]* -> Dense -> tanh (images in [-1, 1]) or identity (points).

    Attributes:
      out_shape: shape of one sample, e.g. (2,) for points or (28, 28, 1) for images.
      hidden: widths of the hidden layers.
      output: 'tanh' or 'linear'.
    """

    out_shape: tuple[int, ...]
    hidden: Sequence[int] = (256, 256)
    output: str = "tanh"

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        """Map z of shape (B, L) to samples of shape (B, *out_shape)."""
        del train  # no train-mode behaviour
        if self.output not in _OUTPUTS:
            raise ValueError(f"MLPGenerator output must be one of {_OUTPUTS}, got {self.output!r}")
        if z.ndim != 2:
            raise ValueError(f"MLPGenerator expects z of shape (batch, latent), got {z.shape}")
        h = z
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        h = nn.Dense(math.prod(self.out_shape))(h)
        if self.output == "tanh":
            h = jnp.tanh(h)
        return h.reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """flatten(x) -> [Dense -> LeakyReLU]* -> Dense(1): raw logits of shape (B,).

    Attributes:
      hidden: widths of the hidden layers.
      negative_slope: slope of the LeakyReLU for negative inputs.
    """

    hidden: Sequence[int] = (256, 256)
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Map x of shape (B, ...) to logits of shape (B,)."""
        del train  # no train-mode behaviour
        if x.ndim < 2:
            raise ValueError(f"MLPDiscriminator expects a batch (B, ...), got shape {x.shape}")
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(width)(h), negative_slope=self.negative_slope)
        return nn.Dense(1)(h)[:, 0]
