"""ESRGAN networks (Wang et al. 2018): the RRDB generator and network interpolation.

The generator (``RRDBNet``), ``f = features`` (64 in the paper), ``g = growth`` (32),
``B = n_blocks`` (23), no BatchNorm anywhere, LeakyReLU(0.2)::

    conv 3x3 f                                                   -> feat
    B x RRDB, conv 3x3 f, + feat                                 (trunk with long skip)
    log2(scale) x [nearest-neighbour x2, conv 3x3 f, LReLU]      (scale 3: one x3 stage)
    conv 3x3 f, LReLU, conv 3x3 C

Residual dense block (RDB), with ``beta = residual_scale`` (0.2)::

    x1 = LReLU(conv(x));  x2 = LReLU(conv([x, x1]));  x3 = LReLU(conv([x, x1, x2]))
    x4 = LReLU(conv([x, x1, x2, x3]));  x5 = conv([x, x1, x2, x3, x4])     ([.] = concat)
    RDB(x) = x + beta * x5                 (x1..x4 have g channels, x5 has f)

Residual-in-residual dense block: ``RRDB(x) = x + beta * RDB3(RDB2(RDB1(x)))``. So with all
inner convolutions zero an RDB is the identity and an RRDB multiplies by ``1 + beta``.

Initialisation (:func:`jaxgan.nets.srgan.init_sr_variables`): Kaiming-normal times 0.1
inside the RRDBs (named ``block*``), as BasicSR's ``default_init_weights(..., 0.1)``;
PyTorch's default scale elsewhere.

:func:`interpolate_params` is the paper's network interpolation (Sec. 3.4):
``theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN``, a continuous trade between the
PSNR-oriented generator (alpha 0) and the adversarially fine-tuned one (alpha 1).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxgan.nets.layers import Conv
from jaxgan.nets.srgan import upsample_stages

Array = jax.Array

_PAD1 = ((1, 1), (1, 1))


def _conv(features: int, name: str) -> Conv:
    return Conv(features, (3, 3), padding=_PAD1, name=name)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions with a scaled residual (module docstring)."""

    features: int = 64
    growth: int = 32
    residual_scale: float = 0.2

    @nn.compact
    def __call__(self, x: Array) -> Array:
        outs = [x]
        for i in range(4):
            y = _conv(self.growth, f"conv{i + 1}")(jnp.concatenate(outs, axis=-1))
            outs.append(nn.leaky_relu(y, 0.2))
        x5 = _conv(self.features, "conv5")(jnp.concatenate(outs, axis=-1))
        return x + self.residual_scale * x5


class RRDB(nn.Module):
    """``x + beta * RDB3(RDB2(RDB1(x)))`` (module docstring)."""

    features: int = 64
    growth: int = 32
    residual_scale: float = 0.2

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = x
        for i in range(3):
            beta = self.residual_scale
            rdb = ResidualDenseBlock(self.features, self.growth, beta, name=f"rdb{i}")
            y = rdb(y)
        return x + self.residual_scale * y


def upsample_nearest(x: Array, r: int) -> Array:
    """Nearest-neighbour upsampling of the two spatial axes of NHWC ``x`` by ``r``."""
    return jnp.repeat(jnp.repeat(x, r, axis=-3), r, axis=-2)


class RRDBNet(nn.Module):
    """The ESRGAN generator (module docstring). Input ``(N, h, w, channels)``.

    ``train`` is accepted for a common generator signature; the network has no BatchNorm
    or dropout, so it changes nothing.
    """

    scale: int = 4
    features: int = 64
    growth: int = 32
    n_blocks: int = 23
    channels: int = 3
    residual_scale: float = 0.2

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        del train
        f = self.features
        feat = _conv(f, "conv_first")(x)
        y = feat
        for i in range(self.n_blocks):
            y = RRDB(f, self.growth, self.residual_scale, name=f"block{i}")(y)
        feat = feat + _conv(f, "conv_body")(y)
        for i, r in enumerate(upsample_stages(self.scale)):
            feat = nn.leaky_relu(_conv(f, f"conv_up{i}")(upsample_nearest(feat, r)), 0.2)
        feat = nn.leaky_relu(_conv(f, "conv_hr")(feat), 0.2)
        return _conv(self.channels, "conv_last")(feat)


def receptive_radius_rrdbnet(scale: int, n_blocks: int) -> int:
    """An upper bound, in low-resolution pixels, of how far an RRDBNet output pixel sees
    (15 convolutions per RRDB; see :func:`jaxgan.nets.srgan.receptive_radius_srresnet`)."""
    radius = 1 + 15 * n_blocks + 1  # conv_first, RRDBs, conv_body
    r = 1
    for s in upsample_stages(scale):
        r *= s
        radius += math.ceil(1 / r)  # conv after the upsampling, at the new resolution
    return radius + 2 * math.ceil(1 / r)  # conv_hr, conv_last


def interpolate_params(psnr_params: Any, gan_params: Any, alpha: float) -> Any:
    """Network interpolation: ``(1 - alpha) * psnr_params + alpha * gan_params``, leafwise.

    Works on any pytree of arrays (``params``, or whole variable dicts with
    ``batch_stats``). ``alpha`` 0 gives the PSNR-oriented network, 1 the GAN one; values
    outside [0, 1] extrapolate and are refused.

    Raises:
      ValueError: ``alpha`` outside [0, 1], or the two trees differ in structure or shape
        (networks of different configurations).
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    sa, sb = jax.tree.structure(psnr_params), jax.tree.structure(gan_params)
    if sa != sb:
        raise ValueError(
            "network interpolation needs two networks of the same architecture; "
            f"their parameter trees differ: {sa} vs {sb}"
        )
    flat_a = jax.tree_util.tree_flatten_with_path(psnr_params)[0]
    for (path, a), b in zip(flat_a, jax.tree.leaves(gan_params), strict=True):
        if jnp.shape(a) != jnp.shape(b):
            where = jax.tree_util.keystr(path)
            raise ValueError(
                f"network interpolation: {where} has shape {jnp.shape(a)} in the PSNR network "
                f"and {jnp.shape(b)} in the GAN network"
            )
    return _interpolate(psnr_params, gan_params, jnp.float32(alpha))


@jax.jit
def _interpolate(a: Any, b: Any, alpha: Array) -> Any:
    """Leafwise ``(1 - alpha) * a + alpha * b`` in the dtype of ``a`` (one compiled call)."""
    return jax.tree.map(lambda p, q: ((1.0 - alpha) * p + alpha * q).astype(p.dtype), a, b)
