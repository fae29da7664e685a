"""SRGAN networks (Ledig et al. 2017): the SRResNet generator and the VGG-style discriminator.

Both are NHWC Flax modules. The generator maps a low-resolution batch ``(N, h, w, C)`` to
``(N, scale*h, scale*w, C)``; jaxgan feeds images in [-1, 1] and the output is linear (no
tanh), read in the same range and clipped only when saved or scored.

SRResNet (paper, Fig. 4), ``f = features`` (64 in the paper), ``B = n_blocks`` (16)::

    conv 9x9 f, PReLU                                             -> skip
    B x residual block:  x + [conv 3x3 f, BN, PReLU, conv 3x3 f, BN]
    conv 3x3 f, BN, + skip                                        (long skip connection)
    log2(scale) x [conv 3x3 4f, pixel shuffle x2, PReLU]          (sub-pixel upsampling;
                                                                   scale 3: one x3 stage)
    conv 9x9 C

PReLU has one learned slope per layer, initialised to 0.25 (PyTorch's ``nn.PReLU()``).
``batch_norm=False`` drops every BatchNorm (the MSRResNet variant of BasicSR).

The discriminator (paper, Fig. 4) is a stack of 3x3 convolutions, LeakyReLU(0.2) and
BatchNorm (none after the first convolution) whose width doubles at every stage while a
strided convolution halves the resolution, then two dense layers::

    conv 3x3 f, LReLU
    conv k s2 f, BN, LReLU
    for i = 1 .. n_stages-1:  conv 3x3 min(2^i, 8) f, BN, LReLU;  conv k s2 (same), BN, LReLU
    flatten, dense ``dense_features``, LReLU, dense 1          -> one raw logit per image

SRGAN: ``n_stages=4``, ``k=3``, ``dense_features=1024`` (k64s1 ... k512s2 on 96x96 patches).
ESRGAN's discriminator (BasicSR ``VGGStyleDiscriminator`` for 128x128 patches) is the same
module with ``n_stages=5``, ``k=4`` and ``dense_features=100``. The dense layer fixes the
input size: the discriminator accepts the HR patch size it was built for.

Initialisation (:func:`init_sr_variables`): inside the generator's residual blocks (modules
named ``block*``, and RRDBNet's stacked ``blocks``) Kaiming-normal weights (fan-in, gain
sqrt(2)) times 0.1, as BasicSR initialises the trunks of MSRResNet and RRDBNet so that
they start close to the identity; every other kernel with the standard deviation of
PyTorch's default initialisation, ``1 / sqrt(3 fan_in)`` (what the reference
implementations leave there); zero biases, BatchNorm scale 1 and bias 0, PReLU slopes 0.25.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxgan.nets.layers import Conv, pixel_shuffle
from jaxgan.nets.norm import BatchNorm

Array = jax.Array

#: Torch-like padding of every convolution: 'same' size for stride 1, halving for stride 2.
_PAD1 = ((1, 1), (1, 1))


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Zero padding ``k // 2`` (PyTorch ``padding=k//2``); with stride 2 and even input the
    output is half the size for k = 3 and k = 4 (padding 1)."""
    p = k // 2 if k % 2 else 1
    return ((p, p), (p, p))


def upsample_stages(scale: int) -> list[int]:
    """The factors of the upsampling stages: 2 per stage for powers of two, one 3 for 3."""
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    raise ValueError(f"scale must be 2, 3, 4, 8 (a power of two or 3), got {scale}")


class ResidualBlock(nn.Module):
    """``x + [conv 3x3, BN, PReLU, conv 3x3, BN](x)`` (SRResNet's residual block)."""

    features: int
    batch_norm: bool = True
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        y = Conv(self.features, (3, 3), padding=_PAD1, name="conv1")(x)
        if self.batch_norm:
            y = _bn(train, "bn1", self.bn_axis_name)(y)
        y = nn.PReLU(negative_slope_init=0.25, name="prelu")(y)
        y = Conv(self.features, (3, 3), padding=_PAD1, name="conv2")(y)
        if self.batch_norm:
            y = _bn(train, "bn2", self.bn_axis_name)(y)
        return x + y


def _bn(train: bool, name: str, axis_name: str | None = None) -> BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5);
    ``axis_name``: under ``jax.pmap``, the axis its batch statistics are averaged over.
    :class:`jaxgan.nets.norm.BatchNorm`: flax's layer with a closed-form derivative."""
    return BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=axis_name,
        name=name,
    )


class SRResNet(nn.Module):
    """The SRResNet generator (module docstring). Input ``(N, h, w, channels)``.

    ``bn_axis_name``: under ``jax.pmap``, the axis over which BatchNorm averages its batch
    statistics (those of the global batch); None on one device or under ``jax.jit`` with
    sharded arrays.
    """

    scale: int = 4
    features: int = 64
    n_blocks: int = 16
    channels: int = 3
    batch_norm: bool = True
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        f = self.features
        x = Conv(f, (9, 9), padding=((4, 4), (4, 4)), name="conv_first")(x)
        x = nn.PReLU(negative_slope_init=0.25, name="prelu_first")(x)
        skip = x
        for i in range(self.n_blocks):
            x = ResidualBlock(f, self.batch_norm, self.bn_axis_name, name=f"block{i}")(x, train)
        x = Conv(f, (3, 3), padding=_PAD1, name="conv_body")(x)
        if self.batch_norm:
            x = _bn(train, "bn_body", self.bn_axis_name)(x)
        x = x + skip
        for i, r in enumerate(upsample_stages(self.scale)):
            x = Conv(f * r * r, (3, 3), padding=_PAD1, name=f"conv_up{i}")(x)
            x = pixel_shuffle(x, r)
            x = nn.PReLU(negative_slope_init=0.25, name=f"prelu_up{i}")(x)
        return Conv(self.channels, (9, 9), padding=((4, 4), (4, 4)), name="conv_last")(x)


class VGGStyleDiscriminator(nn.Module):
    """The SRGAN / ESRGAN discriminator (module docstring): images -> ``(N,)`` raw logits.

    ``bn_axis_name``: BatchNorm's pmap axis, as in :class:`SRResNet`.
    """

    features: int = 64
    n_stages: int = 4
    strided_kernel: int = 3
    dense_features: int = 1024
    batch_norm: bool = True
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        f, k = self.features, self.strided_kernel
        x = Conv(f, (3, 3), padding=_PAD1, name="conv0_0")(x)
        x = nn.leaky_relu(x, 0.2)
        for i in range(self.n_stages):
            width = f * min(2**i, 8)
            if i > 0:
                x = Conv(
                    width, (3, 3), padding=_PAD1, use_bias=not self.batch_norm, name=f"conv{i}_0"
                )(x)
                if self.batch_norm:
                    x = _bn(train, f"bn{i}_0", self.bn_axis_name)(x)
                x = nn.leaky_relu(x, 0.2)
            x = Conv(
                width,
                (k, k),
                strides=(2, 2),
                padding=_pad(k),
                use_bias=not self.batch_norm,
                name=f"conv{i}_1",
            )(x)
            if self.batch_norm:
                x = _bn(train, f"bn{i}_1", self.bn_axis_name)(x)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.dense_features, name="dense1")(x)
        x = nn.leaky_relu(x, 0.2)
        return nn.Dense(1, name="dense2")(x)[:, 0]


def discriminator_input_ok(patch_size: int, n_stages: int) -> bool:
    """Whether ``n_stages`` halvings of ``patch_size`` stay integral and at least 1."""
    return patch_size % (2**n_stages) == 0 and patch_size >= 2**n_stages


# ---------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------

#: Values of the non-kernel variables at initialisation, by leaf name.
_CONSTANT_INIT = {"bias": 0.0, "scale": 1.0, "negative_slope": 0.25, "mean": 0.0, "var": 1.0}


def _path_names(path: tuple[Any, ...]) -> list[str]:
    return [str(getattr(p, "key", p)) for p in path]


# The name of a parameter subtree whose leaves stack the blocks along their first axis.
STACKED_BLOCKS = "blocks"


def default_kernel_std(names: list[str], fan_in: int) -> float:
    """The rule of the module docstring: ``0.1 * sqrt(2 / fan_in)`` inside modules named
    ``block*`` (residual blocks), else PyTorch's default ``1 / sqrt(3 fan_in)``."""
    if any(n.startswith("block") for n in names):
        return 0.1 * math.sqrt(2.0 / fan_in)
    return 1.0 / math.sqrt(3.0 * fan_in)


def init_sr_variables(
    module: nn.Module,
    key: Array,
    *inputs: Any,
    kernel_std: Callable[[list[str], int], float] = default_kernel_std,
    **kwargs: Any,
) -> dict[str, Any]:
    """Variables of ``module`` (``params`` and, with BatchNorm, ``batch_stats``).

    Kernels are normal with standard deviation ``kernel_std(path names, fan_in)``
    (:func:`default_kernel_std`), ``fan_in`` being the product of all kernel dimensions but
    the last (and but the first, the block index, under a subtree named
    :data:`STACKED_BLOCKS`, as RRDBNet's); every other variable takes the constant of
    :data:`_CONSTANT_INIT` by its name.
    All kernels come from ONE flat normal draw, split and reshaped: XLA on CPU compiles
    each shaped random sampler separately and slowly, so per-layer initialisers make the
    first step of a run compile for tens of seconds. Shapes come from ``jax.eval_shape``
    (nothing is run).

    Raises:
      ValueError: a variable whose name has no rule (a module this helper does not know).
    """
    shapes = jax.eval_shape(lambda k: module.init(k, *inputs, **kwargs), key)
    flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    stds = []
    for path, leaf in flat:
        names = _path_names(path)
        if names[-1] == "kernel":
            # A stack of blocks (RRDBNet's ``blocks``) has the block index as its first axis.
            stacked = STACKED_BLOCKS in names
            fan_in = int(np.prod(leaf.shape[1 if stacked else 0 : -1]))
            stds.append(kernel_std(names, fan_in))
        elif names[-1] in _CONSTANT_INIT:
            stds.append(None)
        else:
            raise ValueError(f"init_sr_variables: no rule for variable {'/'.join(names)}")
    sizes = [int(np.prod(leaf.shape)) for _, leaf in flat]
    total = sum(n for n, s in zip(sizes, stds, strict=True) if s is not None)
    noise = jax.random.normal(key, (max(total, 1),), jnp.float32)
    leaves, start = [], 0
    for (path, leaf), n, std in zip(flat, sizes, stds, strict=True):
        if std is None:
            value = _CONSTANT_INIT[_path_names(path)[-1]]
            leaves.append(jnp.full(leaf.shape, value, leaf.dtype))
        else:
            leaves.append((noise[start : start + n] * std).reshape(leaf.shape).astype(leaf.dtype))
            start += n
    return jax.tree_util.tree_unflatten(treedef, leaves)


def receptive_radius_srresnet(scale: int, n_blocks: int) -> int:
    """An upper bound, in low-resolution pixels, of how far an SRResNet output pixel sees.

    Tiles processed with at least this much context on each side give exactly the output
    of the whole image (see :func:`jaxgan.upscale.upscale_array`). Layers at resolution
    factor ``r`` with a ``k x k`` kernel reach ``ceil((k // 2) / r)`` low-resolution pixels.
    """
    radius = 4 + 2 * n_blocks + 1  # conv_first, residual blocks, conv_body
    r = 1
    for s in upsample_stages(scale):
        radius += math.ceil(1 / r)  # conv_up at the current resolution
        r *= s
    return radius + math.ceil(4 / r)  # conv_last at full resolution
