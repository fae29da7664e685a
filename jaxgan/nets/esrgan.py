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
The ``B`` RRDBs hold their parameters stacked (``params['blocks']``, leading axis ``B``)
and run as one ``lax.scan`` (:func:`scan_rrdbs`): the paper-size step compiles in a third
of the time it took with 23 unrolled blocks, and runs as fast.

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
from jax.ad_checkpoint import checkpoint_name

from jaxgan.nets.layers import Conv
from jaxgan.nets.srgan import STACKED_BLOCKS, upsample_stages

Array = jax.Array

_PAD1 = ((1, 1), (1, 1))


_SAVED = "rrdb_saved"


def _saved(x: Array) -> Array:
    """Mark ``x`` as kept for the backward pass of the scanned RRDBs (:func:`scan_rrdbs`)."""
    return checkpoint_name(x, _SAVED)


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
            outs.append(nn.leaky_relu(_saved(y), 0.2))
        x5 = _conv(self.features, "conv5")(jnp.concatenate(outs, axis=-1))
        return _saved(x + self.residual_scale * x5)


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

    The ``n_blocks`` RRDBs run as one ``lax.scan`` over parameters stacked along a
    leading block axis (``params['blocks']['rdb0']['conv1']['kernel']`` has shape
    ``(n_blocks, 3, 3, f, g)``), so XLA compiles one RRDB, not 23, and the optimizer
    updates 30 stacked arrays, not 690 small ones (see :meth:`_trunk`).
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
        y = self._trunk(feat)
        feat = feat + _conv(f, "conv_body")(y)
        for i, r in enumerate(upsample_stages(self.scale)):
            feat = nn.leaky_relu(_conv(f, f"conv_up{i}")(upsample_nearest(feat, r)), 0.2)
        feat = nn.leaky_relu(_conv(f, "conv_hr")(feat), 0.2)
        return _conv(self.channels, "conv_last")(feat)

    def _trunk(self, y: Array) -> Array:
        """The RRDBs: parameters ``blocks`` (stacked, see :func:`scan_rrdbs`)."""
        block = RRDB(self.features, self.growth, self.residual_scale, parent=None)

        def init(key: Array, y: Array) -> Any:
            keys = jax.random.split(key, self.n_blocks)
            return jax.vmap(lambda k: block.init(k, y)["params"])(keys)

        return scan_rrdbs(block, self.param(STACKED_BLOCKS, init, y), y)


def scan_rrdbs(block: RRDB, stacked: Any, y: Array) -> Array:
    """Apply ``n`` RRDBs in turn to ``y``: the RRDB module ``block`` with the parameters
    ``stacked`` (an RRDB's tree, every leaf with a leading axis of length ``n``), as one
    ``lax.scan`` whose backward pass keeps only the convolution outputs before their
    activations and the dense blocks' outputs (``jax.checkpoint`` with the names that
    :func:`_saved` gives) and recomputes the rest (concatenations, activations, Winograd
    input transforms).

    Compile time is what the scan buys. The paper-size ESRGAN GAN-stage step (23 blocks,
    batch 4 of 128x128 patches, with VGG19 and the discriminator), on the 2-core CPU
    machine: with 23 unrolled RRDBs (345 convolutions, 690 parameter arrays, each with its
    own gradient and Adam update) XLA compiled 7,615 fusions: 5.4 s tracing + 21.9 s XLA
    compilation. Scanned over stacked parameters: 1,521 fusions, 2.2 + 10.2 s. The step
    runs in the same time (2.95-3.03 s against 2.91-2.99 s unrolled). Without the
    checkpoint it took 3.3-3.5 s: the scan keeps every residual of every block in a
    zero-filled stacked buffer (the Winograd input transforms alone 290 MB). Scanned
    per-block parameters (stacked at each call) still compiled 4,516 fusions, 2,070 of
    them the gradients' unstacking fused with Adam. And the scan relies on convolutions
    whose gradients are written out (:func:`jaxgan.nets.layers.conv_taps` for the 32-output
    layers, Winograd's form for the 64-output ones, :func:`jaxgan.nets.layers.conv_padded`
    otherwise): inside a loop body XLA on CPU runs JAX's own convolution gradients about
    20x slower (four RRDBs forward + backward: 7.4 s against 0.36 s unrolled).
    """
    body = jax.checkpoint(
        lambda y, p: (block.apply({"params": p}, y), None),
        policy=jax.checkpoint_policies.save_only_these_names(_SAVED),
    )
    y, _ = jax.lax.scan(body, y, stacked)
    return y


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
