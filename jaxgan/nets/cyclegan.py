"""CycleGAN networks (Zhu et al. 2017): the ResNet generator and the PatchGAN discriminator.

Both follow the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix, the
defaults ``--netG resnet_9blocks --netD basic --norm instance --init_type normal``), in
NHWC layout:

Generator (Johnson et al. 2016 style), with ``f = features`` (64 in the paper)::

    reflect-pad 3, conv 7x7 f, IN, ReLU                      c7s1-f
    conv 3x3 stride 2 (zero pad 1) 2f, IN, ReLU              d2f
    conv 3x3 stride 2 (zero pad 1) 4f, IN, ReLU              d4f
    n_blocks x residual block:  x + [reflect-pad 1, conv 3x3 4f, IN, ReLU,
                                     reflect-pad 1, conv 3x3 4f, IN]        R4f
    transposed conv 3x3 stride 2 2f, IN, ReLU                u2f
    transposed conv 3x3 stride 2 f, IN, ReLU                 uf
    reflect-pad 3, conv 7x7 channels, tanh                   c7s1-3

The paper uses 6 blocks for 128x128 images and 9 for 256x256. The fractional-stride
convolutions are :class:`jaxgan.nets.layers.ConvTranspose` (flax-compatible 'SAME'
transposed convolution that avoids XLA's slow CPU path); like PyTorch's
``ConvTranspose2d(k=3, s=2, padding=1, output_padding=1)`` it doubles the size exactly.

PatchGAN discriminator ("70x70" for ``n_layers=3``), ``f = features``::

    conv 4x4 s2 f, LeakyReLU(0.2)                        C64 (no norm)
    conv 4x4 s2 min(2^i, 8) f, IN, LeakyReLU(0.2)        i = 1 .. n_layers-1
    conv 4x4 s1 min(2^n_layers, 8) f, IN, LeakyReLU(0.2)
    conv 4x4 s1 1                                        one raw logit per patch

every convolution zero-padded by 1. Each output logit sees a ``receptive_field(n_layers)``
pixel patch of the input (70 for ``n_layers=3``; 34 for 2, 16 for 1).

Instance normalisation is the reference's ``InstanceNorm2d(affine=False)``: per sample and
channel, over the spatial axes, biased variance, eps 1e-5, no running statistics; the
convolutions therefore keep their biases. Weights are initialised N(0, 0.02), biases 0
(the reference's ``init_type='normal'``, ``init_gain=0.02``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxgan.nets.layers import Conv, ConvTranspose

Array = jax.Array

#: The reference initialisation: weights N(0, 0.02), biases zero.
INIT = nn.initializers.normal(stddev=0.02)


def reflect_pad(x: Array, pad: int) -> Array:
    """Reflection padding of the two spatial axes of NHWC ``x`` (PyTorch ``ReflectionPad2d``).

    The border pixel is not repeated: padding ``[a, b, c]`` by 2 gives ``[c, b, a, b, c, b, a]``.
    ``pad`` must be smaller than the height and the width.
    """
    if pad == 0:
        return x
    h, w = x.shape[-3], x.shape[-2]
    if pad >= h or pad >= w:
        raise ValueError(f"reflection padding {pad} needs images larger than {pad}, got {h}x{w}")
    widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    return jnp.pad(x, widths, mode="reflect")


def instance_norm(x: Array, eps: float = 1e-5) -> Array:
    """Normalise each sample and channel of NHWC ``x`` over its spatial axes.

    ``(x - mean) / sqrt(var + eps)`` with the biased variance over (H, W): the statistics
    of ``torch.nn.InstanceNorm2d(affine=False)`` (Ulyanov et al. 2016), computed in float32.
    """
    dtype = x.dtype
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=(-3, -2), keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=(-3, -2), keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(dtype)


def receptive_field(n_layers: int) -> int:
    """Side of the input patch one PatchGAN logit sees (70 for ``n_layers=3``)."""
    rf = 1
    for stride in [1, 1] + [2] * n_layers:  # the last two convs (stride 1), then backwards
        rf = (rf - 1) * stride + 4
    return rf


def patch_output_size(image_size: int, n_layers: int) -> int:
    """Side of the logit map of :class:`PatchDiscriminator` for square inputs."""
    s = image_size
    for _ in range(n_layers):
        s = (s + 2 - 4) // 2 + 1
    return s - 2  # two 4x4 stride-1 convolutions with padding 1 each remove one pixel


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, IN, ReLU, (dropout), pad, conv3x3, IN](x)``, reflection padding."""

    features: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> Array:
        """Apply the block (dropout only when ``train`` and ``dropout > 0``)."""
        conv = lambda: Conv(self.features, (3, 3), padding="VALID", kernel_init=INIT)
        y = nn.relu(instance_norm(conv()(reflect_pad(x, 1))))
        if self.dropout > 0:
            y = nn.Dropout(self.dropout, deterministic=not train)(y)
        y = instance_norm(conv()(reflect_pad(y, 1)))
        return x + y


class ResnetGenerator(nn.Module):
    """The CycleGAN generator (see the module docstring); images in and out in [-1, 1].

    Attributes:
      channels: output channels (3 for RGB).
      features: width of the first layer (``ngf``, 64 in the paper).
      n_blocks: residual blocks (6 for 128x128, 9 for 256x256 in the paper).
      n_downsampling: stride-2 layers down (and fractional-stride layers up), 2 in the paper.
      dropout: dropout rate inside the residual blocks (the reference's ``--no_dropout``
        default for CycleGAN is no dropout, 0.0).
    """

    channels: int = 3
    features: int = 64
    n_blocks: int = 9
    n_downsampling: int = 2
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> Array:
        """Map ``(N, H, W, C)`` images to ``(N, H, W, channels)``; H, W divisible by 4."""
        if x.ndim != 4:
            raise ValueError(f"ResnetGenerator expects NHWC images, got shape {x.shape}")
        factor = 2**self.n_downsampling
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"ResnetGenerator with {self.n_downsampling} downsamplings needs a height and "
                f"width divisible by {factor}, got {x.shape[1]}x{x.shape[2]}"
            )
        f = self.features
        y = Conv(f, (7, 7), padding="VALID", kernel_init=INIT)(reflect_pad(x, 3))
        y = nn.relu(instance_norm(y))
        for i in range(self.n_downsampling):
            width = f * 2 ** (i + 1)
            y = Conv(width, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=INIT)(y)
            y = nn.relu(instance_norm(y))
        for _ in range(self.n_blocks):
            y = ResnetBlock(f * 2**self.n_downsampling, dropout=self.dropout)(y, train=train)
        for i in reversed(range(self.n_downsampling)):
            y = ConvTranspose(f * 2**i, (3, 3), strides=(2, 2), kernel_init=INIT)(y)
            y = nn.relu(instance_norm(y))
        y = Conv(self.channels, (7, 7), padding="VALID", kernel_init=INIT)(reflect_pad(y, 3))
        return jnp.tanh(y)


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator (see the module docstring): one raw logit per patch.

    Attributes:
      features: width of the first layer (``ndf``, 64 in the paper).
      n_layers: stride-2 layers (3: the 70x70 PatchGAN).
    """

    features: int = 64
    n_layers: int = 3

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> Array:
        """Map ``(N, H, W, C)`` images to ``(N, h, w, 1)`` logits (``patch_output_size``)."""
        del train  # no dropout or batch statistics; kept for a uniform call signature
        if x.ndim != 4:
            raise ValueError(f"PatchDiscriminator expects NHWC images, got shape {x.shape}")
        need = 2**self.n_layers * 3  # smallest size with a 1x1 logit map
        if min(x.shape[1], x.shape[2]) < need:
            raise ValueError(
                f"PatchDiscriminator with n_layers={self.n_layers} needs images of at least "
                f"{need}x{need}, got {x.shape[1]}x{x.shape[2]}: lower n_layers"
            )
        pad = ((1, 1), (1, 1))
        f = self.features
        y = Conv(f, (4, 4), strides=(2, 2), padding=pad, kernel_init=INIT)(x)
        y = nn.leaky_relu(y, 0.2)
        for i in range(1, self.n_layers):
            width = f * min(2**i, 8)
            y = Conv(width, (4, 4), strides=(2, 2), padding=pad, kernel_init=INIT)(y)
            y = nn.leaky_relu(instance_norm(y), 0.2)
        width = f * min(2**self.n_layers, 8)
        y = Conv(width, (4, 4), strides=(1, 1), padding=pad, kernel_init=INIT)(y)
        y = nn.leaky_relu(instance_norm(y), 0.2)
        return Conv(1, (4, 4), strides=(1, 1), padding=pad, kernel_init=INIT)(y)


def init_params(module: nn.Module, key: Array, *inputs: Any, stddev: float = 0.02, **kwargs: Any):
    """The reference's ``init_type='normal'``: every weight N(0, stddev^2), every bias 0.

    Equal in distribution to ``module.init(key, *inputs)['params']`` (the modules' own
    initialisers are the same), but all weights come from ONE flat normal draw, split and
    reshaped: XLA on CPU compiles each shaped random sampler separately and slowly (a
    per-layer init of a tiny generator took ~40 s to compile on the project's 2-core
    machine; this takes ~1 s). Shapes come from ``jax.eval_shape`` (nothing is run).
    """
    shapes = jax.eval_shape(lambda k: module.init(k, *inputs, **kwargs), key)["params"]
    flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    is_bias = [str(getattr(path[-1], "key", path[-1])) == "bias" for path, _ in flat]
    sizes = [int(np.prod(leaf.shape)) for _, leaf in flat]
    total = sum(n for n, b in zip(sizes, is_bias, strict=True) if not b)
    noise = jax.random.normal(key, (total,), jnp.float32) * stddev
    leaves, start = [], 0
    for (_, leaf), n, bias in zip(flat, sizes, is_bias, strict=True):
        if bias:
            leaves.append(jnp.zeros(leaf.shape, leaf.dtype))
        else:
            leaves.append(noise[start : start + n].reshape(leaf.shape).astype(leaf.dtype))
            start += n
    return jax.tree_util.tree_unflatten(treedef, leaves)


def build_cyclegan_networks(
    channels_x: int,
    channels_y: int,
    g_features: int = 64,
    n_blocks: int = 9,
    d_features: int = 64,
    d_layers: int = 3,
    dropout: float = 0.0,
) -> dict[str, Any]:
    """The four networks: ``G: X -> Y``, ``F: Y -> X``, ``D_X`` and ``D_Y``."""
    return {
        "g": ResnetGenerator(channels_y, g_features, n_blocks, dropout=dropout),
        "f": ResnetGenerator(channels_x, g_features, n_blocks, dropout=dropout),
        "d_x": PatchDiscriminator(d_features, d_layers),
        "d_y": PatchDiscriminator(d_features, d_layers),
    }
