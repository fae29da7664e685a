"""Layers shared by the networks: a fast transposed convolution and pixel (un)shuffle.

``ConvTranspose`` is a drop-in for ``flax.linen.ConvTranspose(features, kernel_size,
strides, padding='SAME')``: same parameter names ('kernel' of shape (kh, kw, in, out),
'bias' of shape (out,)), same default initialisers, same outputs. ``lax.conv_transpose``
convolves an lhs-dilated input (zeros between pixels), and XLA on CPU computes the *weight
gradient* of such a convolution extremely slowly. On CPU this layer therefore computes the
same function in one of three exact forms: for kernels twice the stride with at least 64
channels in and out (DCGAN's 4x4 stride-2 layers), the adjoint of that strided convolution
computed by Winograd's F(4x4, 2x2) or F(2x2, 2x2) (:mod:`jaxgan.nets.winograd`);
otherwise the adjoint of a strided convolution (:func:`conv_transpose_adjoint`, whose
derivatives are that convolution and its weight gradient, see :func:`conv_strided`) or, for
small inputs with many output channels, the polyphase (sub-pixel) convolution below; on
other backends it calls ``lax.conv_transpose`` (cuDNN and the TPU handle dilated inputs natively).

Derivation, per spatial axis. With ``pa`` the 'before' padding that ``lax.conv_transpose``
uses for 'SAME' (``_conv_transpose_padding``: ``pa = k - 1`` if ``s > k - 1``, else
``ceil((k + s - 2) / 2)``), flax computes ``y[o] = sum_t xd[o + t - pa] * w[t]``, where
``xd`` is the input dilated by ``s`` and the kernel is not flipped. Write the output position
as ``o = s*q + r`` with phase ``r`` in ``0..s-1``. Only the taps ``t = t0 + s*j`` with
``t0 = (pa - r) mod s`` land on real pixels, and they read ``x[q + j + d]`` with
``d = (t0 + r - pa) / s`` (an integer, <= 0). So phase ``r`` of the output is an ordinary
stride-1 correlation of the *undilated* input with the sub-kernel ``w[t0::s]``, padded by
``(-d, n_taps - 1 + d)``. In 2-D there are ``s*s`` phases; their outputs are interleaved
(depth-to-space). For k=4, s=2 that is four 2x2 convolutions: exactly the multiply-adds of
the transposed convolution, none on inserted zeros.

Speed: forward + backward (``jax.jit(jax.value_and_grad(sum(y**2), argnums=(kernel, x)))``,
after warm-up, median of 7) for the 16x16x128 -> 32x32x64, k=4, s=2 layer at batch 64,
float32, on the project's 2-core CPU machine (jax 0.10.2), 2026-11-23 at load ~0.7::

    lax.conv_transpose (= flax.linen.ConvTranspose)       1156 ms
    polyphase, one 3x3 conv to 4*64 channels + shuffle     218 ms
    polyphase, four 2x2 convolutions, interleaved          175 ms
    adjoint of a strided convolution                       103 ms   <- auto before Winograd
    reference: one 4.3 GFLOP matmul (16384x512 @ 512x256)   21 ms

``impl='auto'`` now runs this layer on CPU as the adjoint of the Winograd strided
convolution, ``conv_transpose_adjoint(..., winograd_form=True)``, a row the command below
also prints (F(2x2, 2x2) when these numbers were taken, F(4x4, 2x2) from 1024 output
pixels since, from 2048 since 2026-12-07): at 23:15 UTC it printed 83.9 ms for the
adjoint form above and 74.4 ms for the Winograd one (flax 1200 ms; see :mod:`jaxgan.nets.winograd`).

The layer costs 12.9 GFLOP forward + backward, so the adjoint form runs at ~125 GFLOP/s.
Its input gradient is the strided convolution and its forward pass that convolution's
input gradient, computed through the space-to-depth form for outputs from 16x16 up. The
polyphase form stays faster for small inputs with many output channels (a DCGAN
generator's first upsampling, 4x4x512 -> 8x8x256: 80 vs 91 ms); ``_adjoint_on_cpu`` holds
the rule and its measurements. The fused polyphase variant (all phases as one convolution
with ``s*s*out`` channels, sub-kernels zero-padded to a common 3x3 window, then
:func:`pixel_shuffle`) does 9/4 of the multiply-adds and is slower. Earlier measurements
(before the space-to-depth input gradient): per-phase im2col + matmul was up to 25% faster
on this layer but slower on the others; a ``custom_vjp`` with a matmul weight gradient was
no faster than im2col. A matrix product to all ``kh*kw*out`` taps followed by shifted sums
(col2im) was about as fast forward as the adjoint form but 2-3x slower backward under
JAX's own derivatives.
Reproduce the first table with::

    python -m jaxgan.nets.layers

``Conv`` is likewise a drop-in for ``flax.linen.Conv`` with CPU forms (measured in whole
train steps with ``python -m benchmarks.run``; see its docstring): strided convolutions as
:func:`conv_strided`, three custom-VJP functions (the convolution, its input gradient, its
weight gradient) that are each other's derivatives, so a gradient penalty's second
derivatives stay in the three forms XLA runs fast (JAX's own rules produce a transposed
form that took ~30x longer: WGAN-GP critic step 2.6 s -> 0.9 s); convolutions with few
outputs (an RGB layer) as one matrix product plus shifted sums; narrow zero-padded 3x3
convolutions of wide inputs as :func:`conv_taps`, matrix products forward and backward;
and other zero-padded 3x3 convolutions as :func:`conv_padded`, whose gradients XLA runs
fast inside ``lax.scan`` too.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

from jaxgan.nets import winograd

Array = jax.Array
Initializer = Any

_IMPLS = ("auto", "polyphase", "dilated", "adjoint")
_CONV_IMPLS = ("auto", "space_to_depth", "direct")
_NHWC = ("NHWC", "HWIO", "NHWC")


def count_params(params: Any) -> int:
    """Total number of scalars in a pytree of arrays (e.g. a Flax 'params' collection)."""
    return int(sum(np.prod(np.shape(leaf), dtype=np.int64) for leaf in jax.tree.leaves(params)))


def pixel_shuffle(x: Array, r: int) -> Array:
    """Depth-to-space, with the channel order of PyTorch's ``nn.PixelShuffle``.

    ``out[n, h*r + i, w*r + j, c] = x[n, h, w, c*r*r + i*r + j]``.

    Args:
      x: array of shape (..., H, W, C*r*r) (channels last, any leading axes).
      r: upscaling factor.

    Returns:
      Array of shape (..., H*r, W*r, C).
    """
    *lead, h, w, crr = x.shape
    if crr % (r * r):
        raise ValueError(f"pixel_shuffle: {crr} channels are not divisible by r*r = {r * r}")
    c = crr // (r * r)
    n = len(lead)
    x = x.reshape(*lead, h, w, c, r, r)
    # (..., h, w, c, i, j) -> (..., h, i, w, j, c)
    x = jnp.transpose(x, (*range(n), n, n + 3, n + 1, n + 4, n + 2))
    return x.reshape(*lead, h * r, w * r, c)


def pixel_unshuffle(x: Array, r: int) -> Array:
    """Space-to-depth, the inverse of :func:`pixel_shuffle` (PyTorch's ``nn.PixelUnshuffle``).

    ``out[n, h, w, c*r*r + i*r + j] = x[n, h*r + i, w*r + j, c]``.

    Args:
      x: array of shape (..., H*r, W*r, C).
      r: downscaling factor.

    Returns:
      Array of shape (..., H, W, C*r*r).
    """
    *lead, hr, wr, c = x.shape
    if hr % r or wr % r:
        raise ValueError(f"pixel_unshuffle: spatial size {(hr, wr)} is not divisible by r = {r}")
    h, w = hr // r, wr // r
    n = len(lead)
    x = x.reshape(*lead, h, r, w, r, c)
    # (..., h, i, w, j, c) -> (..., h, w, c, i, j)
    x = jnp.transpose(x, (*range(n), n, n + 2, n + 4, n + 1, n + 3))
    return x.reshape(*lead, h, w, c * r * r)


def _same_pad_before(k: int, s: int) -> int:
    """'Before' padding of ``lax.conv_transpose(..., padding='SAME')`` along one axis."""
    if s > k - 1:
        return k - 1
    return math.ceil((k + s - 2) / 2)


def _axis_phases(k: int, s: int) -> list[tuple[int, int, tuple[int, int]]]:
    """Per output phase ``r`` of one axis: ``(t0, n_taps, (pad_lo, pad_hi))``.

    Phase ``r`` is the stride-1 correlation of the input, padded by ``(pad_lo, pad_hi)``,
    with the taps ``w[t0::s]`` (``n_taps`` of them, possibly none).
    """
    pa = _same_pad_before(k, s)
    phases = []
    for r in range(s):
        t0 = (pa - r) % s
        n_taps = len(range(t0, k, s))
        d = (t0 + r - pa) // s  # exact: t0 + r - pa is a multiple of s
        phases.append((t0, n_taps, (-d, n_taps - 1 + d)))
    return phases


def conv_transpose_polyphase(
    x: Array, kernel: Array, strides: Sequence[int], precision: Any = None
) -> Array:
    """``lax.conv_transpose(x, kernel, strides, 'SAME')`` as ``sh*sw`` stride-1 convolutions.

    Args:
      x: input of shape (B, H, W, in).
      kernel: (kh, kw, in, out), unflipped, as ``lax.conv_transpose`` takes it.
      strides: (sh, sw).
      precision: passed to ``lax.conv_general_dilated``.

    Returns:
      (B, H*sh, W*sw, out); output pixel (sh*q + rh, sw*p + rw) comes from phase (rh, rw).
    """
    sh, sw = (int(s) for s in strides)
    b, h, w, _ = x.shape
    kh, kw, _, out = kernel.shape
    dtype = jnp.result_type(x, kernel)
    rows = []
    for t0h, nh, pad_h in _axis_phases(kh, sh):
        row = []
        for t0w, nw, pad_w in _axis_phases(kw, sw):
            if nh == 0 or nw == 0:  # kernel smaller than stride: this phase sees no tap
                row.append(jnp.zeros((b, h, w, out), dtype))
                continue
            row.append(
                jax.lax.conv_general_dilated(
                    x,
                    kernel[t0h::sh, t0w::sw],
                    window_strides=(1, 1),
                    padding=(pad_h, pad_w),
                    dimension_numbers=_NHWC,
                    precision=precision,
                )
            )
        rows.append(jnp.stack(row, axis=3))  # (B, H, W, sw, out)
    y = jnp.stack(rows, axis=2)  # (B, H, sh, W, sw, out)
    return y.reshape(b, h * sh, w * sw, out)


def conv_transpose_same(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    precision: Any = None,
    impl: str = "auto",
) -> Array:
    """``lax.conv_transpose(x, kernel, strides, 'SAME')`` (NHWC, HWIO), fast on CPU.

    Args:
      x: input of shape (B, H, W, in).
      kernel: (kh, kw, in, out).
      strides: (sh, sw).
      precision: passed to the convolution.
      impl: 'polyphase' (:func:`conv_transpose_polyphase`), 'dilated'
        (``lax.conv_transpose``), 'adjoint' (:func:`conv_transpose_adjoint`) or 'auto':
        on CPU the adjoint of a Winograd strided convolution for kernels twice the stride
        with at least 64 channels in and out (``winograd.use_winograd_strided``), else the
        adjoint form, or the polyphase one for inputs of at most 64 pixels with at least
        128 output channels (measured faster there, see ``_adjoint_on_cpu``); dilated
        elsewhere; chosen when the computation is lowered for its platform.

    Returns:
      (B, H*sh, W*sw, out).
    """
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    strides = tuple(int(s) for s in strides)

    def polyphase(x: Array, k: Array) -> Array:
        return conv_transpose_polyphase(x, k, strides, precision)

    def dilated(x: Array, k: Array) -> Array:
        return jax.lax.conv_transpose(
            x, k, strides, "SAME", dimension_numbers=_NHWC, precision=precision
        )

    if impl == "polyphase":
        return polyphase(x, kernel)
    if impl == "dilated":
        return dilated(x, kernel)

    def adjoint(x: Array, k: Array) -> Array:
        return conv_transpose_adjoint(x, k, strides)

    if impl == "adjoint":
        return adjoint(x, kernel)
    if winograd.use_winograd_strided(kernel.shape, strides):
        cpu = lambda x, k: conv_transpose_adjoint(x, k, strides, winograd_form=True)
    else:
        cpu = adjoint if _adjoint_on_cpu(x.shape, kernel.shape) else polyphase
    return jax.lax.platform_dependent(x, kernel, cpu=cpu, default=dilated)


# On CPU, 'auto' runs a transposed convolution as the adjoint of a strided convolution
# (conv_transpose_adjoint), except for small inputs with many output channels, where the
# polyphase form was faster. Batch 64, 4x4 kernels, stride 2, forward + input and weight
# gradients, ms, polyphase vs adjoint: 4x4x512 -> 8x8x256: 80 vs 91; 8x8x256 -> 16x16x128:
# 89 vs 97; 8x8x128 -> 16x16x64: 37 vs 21; 16x16x128 -> 32x32x64: 161 vs 84;
# 32x32x64 -> 64x64x3: 51 vs 19. CycleGAN's 3x3 ones (batch 2): 32x32x256 -> 64x64x128:
# 32 vs 26; 64x64x128 -> 128x128x64: 47 vs 25. Steps: DCGAN 64 1.14 -> 1.07 s, DCGAN 32
# 196 -> 182 ms, WGAN-GP 868 -> 851 ms, CycleGAN 128 3.41 -> 3.34 s.
_POLYPHASE_MAX_PIXELS = 64
_POLYPHASE_MIN_FEATURES = 128


def _adjoint_on_cpu(x_shape: Sequence[int], k_shape: Sequence[int]) -> bool:
    """Whether 'auto' runs ``conv_transpose_adjoint`` (else polyphase) on CPU."""
    small = x_shape[-3] * x_shape[-2] <= _POLYPHASE_MAX_PIXELS
    return not (small and k_shape[3] >= _POLYPHASE_MIN_FEATURES)


def conv_transpose_adjoint(
    x: Array, kernel: Array, strides: Sequence[int], winograd_form: bool = False
) -> Array:
    """``lax.conv_transpose(x, kernel, strides, 'SAME')`` as the input gradient of the
    strided convolution it is the adjoint of (:func:`conv_strided`'s ``DX``), so that its
    derivatives are that convolution and its weight gradient.

    Per axis (``k`` taps, stride ``s``, 'before' padding ``pa`` of the transposed
    convolution): ``y[s*q + t - (k-1-pa)] += x[q] * w[k-1-t]``, i.e. the input gradient of
    a stride-``s`` convolution of a ``s*H`` input with the flipped kernel (in/out swapped)
    and padding ``(k-1-pa, k-s-(k-1-pa))``. Exact. What ``impl='auto'`` runs on CPU for all
    but small inputs with many output channels (see ``_adjoint_on_cpu``).

    With ``winograd_form``, the adjoint of that convolution computed as
    :func:`jaxgan.nets.winograd.conv_winograd` of its space-to-depth form (kernels twice
    the stride), taken as its VJP at zero (the convolution is linear in its input; the
    unused forward pass is dead code), so that the custom VJPs of :func:`space_to_depth`
    and of Winograd's input transform give its forward pass. JAX derives its derivatives:
    all matrix products and transforms.
    """
    b, h, w, _ = x.shape
    kh, kw, _, out = kernel.shape
    geo_s = tuple(int(v) for v in strides)
    pads = []
    for k, s_ in zip((kh, kw), geo_s, strict=True):
        lo = k - 1 - _same_pad_before(k, s_)
        pads.append((lo, k - s_ - lo))
    out_shape = (b, h * geo_s[0], w * geo_s[1], out)
    if winograd_form:
        # The strided convolution's kernel is the flipped one with in and out swapped:
        # given as HWOI, that is the flipped kernel itself, and its input gradient's
        # matrix products take the transformed kernel as stored (no transposed copy of the
        # kernel, or of its gradient, before Adam).
        strided = lambda z: winograd.conv_winograd(
            *space_to_depth_operands(z, jnp.flip(kernel, (0, 1)), geo_s, pads, "HWOI"),
            kernel_layout="HWOI",
        )
        # The example primal carries x's shard_map type (varying along x's axes).
        primal = _like_primal(jnp.zeros(out_shape, x.dtype), x)
        return jax.vjp(strided, primal)[1](x)[0]
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)  # (kh, kw, out, in)
    return _conv_dx(x, flipped, (geo_s, tuple(pads)), out_shape)


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(int(a) for a in v)
    if len(t) != 2 or min(t) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {v!r}")
    return t  # type: ignore[return-value]


class ConvTranspose(nn.Module):
    """2-D transposed convolution with 'SAME' padding, equal to ``flax.linen.ConvTranspose``.

    Parameters 'kernel' (kh, kw, in, features) and 'bias' (features,), default
    initialisers (``lecun_normal``, zeros) and output ``(..., H*sh, W*sw, features)`` are
    those of ``flax.linen.ConvTranspose(features, kernel_size, strides, padding='SAME')``
    (``transpose_kernel=False``); parameters can be copied between the two. On CPU the
    layer runs as the adjoint of a strided convolution or as a polyphase convolution
    (module docstring), 11x faster forward + backward than flax for a typical DCGAN layer.

    Attributes:
      features: number of output channels.
      kernel_size: int or (kh, kw).
      strides: int or (sh, sw).
      padding: only 'SAME' is supported.
      use_bias: add a learned bias.
      dtype: computation dtype (default: inferred from inputs and params, as flax).
      param_dtype: dtype of the parameters.
      precision: passed to the convolution.
      kernel_init: kernel initialiser (default ``lecun_normal``, flax's default).
      bias_init: bias initialiser (default zeros).
      impl: 'auto' (on CPU adjoint or polyphase by shape, ``lax.conv_transpose``
        elsewhere), 'polyphase',
        'dilated' or 'adjoint' (:func:`conv_transpose_adjoint`).
    """

    features: int
    kernel_size: int | Sequence[int] = (4, 4)
    strides: int | Sequence[int] = (2, 2)
    padding: str = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    impl: str = "auto"

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        """Map (..., H, W, C) to (..., H*sh, W*sw, features); leading axes are kept."""
        if self.padding != "SAME":
            raise ValueError(f"ConvTranspose supports padding='SAME' only, got {self.padding!r}")
        if inputs.ndim < 3:
            raise ValueError(f"ConvTranspose expects (..., H, W, C) inputs, got {inputs.shape}")
        kh, kw = _pair(self.kernel_size, "kernel_size")
        strides = _pair(self.strides, "strides")

        def conv(x: Array, kernel: Array) -> Array:
            return conv_transpose_same(x, kernel, strides, precision=self.precision, impl=self.impl)

        return _apply_conv_module(self, inputs, kh, kw, conv)


def _apply_conv_module(module: Any, inputs: Array, kh: int, kw: int, conv: Any) -> Array:
    """The body :class:`Conv` and :class:`ConvTranspose` share with flax's: flatten the
    leading axes of (..., H, W, C), create 'kernel' (kh, kw, C, features) and 'bias' as flax
    does, promote dtypes, ``conv(x, kernel)`` (+ bias), restore the leading axes."""
    lead, (h, w, c) = inputs.shape[:-3], inputs.shape[-3:]
    x = inputs.reshape(-1, h, w, c)
    kernel = module.param(
        "kernel", module.kernel_init, (kh, kw, c, module.features), module.param_dtype
    )
    bias = (
        module.param("bias", module.bias_init, (module.features,), module.param_dtype)
        if module.use_bias
        else None
    )
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=module.dtype)
    y = conv(x, kernel)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, *y.shape[1:])


def conv_space_to_depth(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    precision: Any = None,
) -> Array:
    """A strided convolution as a stride-1 one: ``lax.conv_general_dilated(x, kernel,
    strides, padding)`` (NHWC, HWIO) computed exactly on the space-to-depth input (see
    :func:`space_to_depth_operands`)."""
    return conv_valid(*space_to_depth_operands(x, kernel, strides, padding), precision)


def space_to_depth_operands(
    x: Array,
    kernel: Array,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    kernel_layout: str = "HWIO",
) -> tuple[Array, Array]:
    """The input and kernel of the stride-1 'VALID' convolution equal to a strided one.

    Per axis with stride ``s`` and kernel ``k``: output ``o`` reads padded input rows
    ``s*o .. s*o + k - 1``. Cut the padded input into blocks of ``s`` rows (block ``q``,
    phase ``p``: row ``s*q + p``) and the kernel, zero-padded to ``s*ceil(k/s)`` taps, the
    same way: output ``o`` is then a stride-1 correlation over blocks ``o .. o + ceil(k/s) - 1``
    with the phases moved into channels. The forward multiply-adds are those of the strided
    convolution (``(s*ceil(k/s)/k)^2`` times more when ``s`` does not divide ``k``); the
    point is the backward pass: the input gradient of a strided convolution is an
    lhs-dilated convolution and its second derivatives (a gradient penalty) are
    rhs-dilated ones, which XLA on CPU runs up to ~30x slower than plain convolutions; here
    every derivative is a stride-1, undilated convolution.

    The input is rearranged by :func:`space_to_depth`. ``kernel_layout`` 'HWOI': the
    kernel is given, and returned, with its input and output axes swapped.
    """
    winograd.check_kernel_layout(kernel_layout)
    b, h, w, c = x.shape
    kh, kw = kernel.shape[:2]
    sh, sw = (int(s) for s in strides)
    (plh, phh), (plw, phw) = ((int(a), int(b_)) for a, b_ in padding)
    ho = (h + plh + phh - kh) // sh + 1
    wo = (w + plw + phw - kw) // sw + 1
    th, tw = -(-kh // sh), -(-kw // sw)  # kernel taps in blocks
    lh, lw = sh * (ho + th - 1), sw * (wo + tw - 1)  # padded extent actually read
    x = space_to_depth(x, (sh, sw), (plh, plw), (lh // sh, lw // sw))
    k = jnp.pad(kernel, ((0, th * sh - kh), (0, tw * sw - kw), (0, 0), (0, 0)))
    if kernel_layout == "HWIO":
        ci, co = kernel.shape[2:]
        k = k.reshape(th, sh, tw, sw, ci, co).transpose(0, 2, 1, 3, 4, 5)
        return x, k.reshape(th, tw, sh * sw * ci, co)
    co, ci = kernel.shape[2:]
    k = k.reshape(th, sh, tw, sw, co, ci).transpose(0, 2, 4, 1, 3, 5)
    return x, k.reshape(th, tw, co, sh * sw * ci)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _depth_to_space_cropped(
    y: Array, shape: tuple[int, ...], strides: tuple[int, int], lows: tuple[int, int]
) -> Array:
    """The adjoint of :func:`space_to_depth` (a transpose, then the inverse pad). Its
    gradient is :func:`space_to_depth` (phase planes), whose gradient is this: JAX's own,
    the transpose of the transpose, is what a transposed convolution's backward pass (the
    gradient of its forward, this function) would otherwise run, fused by XLA with the
    next BatchNorm's gradient into one slow loop (2.0 ms for a DCGAN 32 generator's 16x16x64
    output on one core). Paired A/B in one process: DCGAN 32 0.987 and 0.999, DCGAN 64
    0.989, WGAN-GP 0.986."""
    return _depth_to_space_plain(y, shape, strides, lows)


def _depth_to_space_fwd(y, shape, strides, lows):
    return _depth_to_space_plain(y, shape, strides, lows), y.shape[1:3]


def _depth_to_space_bwd(shape, strides, lows, blocks, g):
    return (space_to_depth(g, strides, lows, blocks),)


_depth_to_space_cropped.defvjp(_depth_to_space_fwd, _depth_to_space_bwd)


def _depth_to_space_plain(
    y: Array, shape: tuple[int, ...], strides: tuple[int, int], lows: tuple[int, int]
) -> Array:
    b, bh, bw, _ = y.shape
    _, h, w, c = shape
    (sh, sw), (plh, plw) = strides, lows
    y = y.reshape(b, bh, bw, sh, sw, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, bh * sh, bw * sw, c)
    return _zero_pad(y, ((-plh, h + plh - sh * bh), (-plw, w + plw - sw * bw)))


def _phase_rows(n: int, s: int, p: int, low: int, blocks: int) -> tuple[int, int, int]:
    """Along one axis of :func:`space_to_depth`: phase ``p`` of block ``q`` is input row
    ``s*q + p - low``. Returns (first block inside the input, its row, number of such blocks)."""
    q0 = max(0, -(-(low - p) // s))
    last = min(blocks - 1, (n - 1 - p + low) // s)
    return q0, s * q0 + p - low, max(0, last - q0 + 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def space_to_depth(
    x: Array, strides: tuple[int, int], lows: tuple[int, int], blocks: tuple[int, int]
) -> Array:
    """(b, h, w, c) -> (b, bh, bw, sh*sw*c): block ``(Y, X)``, phase ``(py, px)`` (channels
    ordered ``py, px, c``) is input pixel ``(sh*Y + py - low_h, sw*X + px - low_w)``, zero
    outside the input (the strided convolution's padding).

    Written as ``sh*sw`` strided slices (one per phase), each zero-padded to the block grid,
    concatenated along the channels. XLA on CPU runs that up to 3x faster than the pad and
    6-D transpose it replaces, which it fuses with the previous layer's BatchNorm and
    Winograd output transform into one slow loop (a DCGAN 32 critic's 8x8x128 input: 1.15
    against 0.41 ms in isolation; the DCGAN 32 step 2.7% faster, DCGAN 64 4.6%). Its
    gradient is the transpose (:func:`_depth_to_space_cropped`): JAX's own gradient of the
    slices would sum ``sh*sw`` interior-padded arrays, which was slower than the transpose.
    """
    b, h, w, c = x.shape
    (sh, sw), (low_h, low_w), (bh, bw) = strides, lows, blocks
    planes = []
    for py in range(sh):
        qh, rh, nh = _phase_rows(h, sh, py, low_h, bh)
        for px in range(sw):
            qw, rw, nw = _phase_rows(w, sw, px, low_w, bw)
            if nh == 0 or nw == 0:
                planes.append(jnp.zeros((b, bh, bw, c), x.dtype))
                continue
            end = (b, rh + sh * (nh - 1) + 1, rw + sw * (nw - 1) + 1, c)
            plane = jax.lax.slice(x, (0, rh, rw, 0), end, (1, sh, sw, 1))
            planes.append(_zero_pad(plane, ((qh, bh - qh - nh), (qw, bw - qw - nw))))
    return jnp.concatenate(planes, axis=-1)


def _space_to_depth_fwd(x, strides, lows, blocks):
    return space_to_depth(x, strides, lows, blocks), x.shape


def _space_to_depth_bwd(strides, lows, blocks, shape, g):
    return (_depth_to_space_cropped(g, shape, strides, lows),)


space_to_depth.defvjp(_space_to_depth_fwd, _space_to_depth_bwd)


Pads = tuple[tuple[int, int], tuple[int, int]]


def _conv_padded_plain(x: Array, k: Array, pads: Pads, precision: Any) -> Array:
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), pads, dimension_numbers=_NHWC, precision=precision
    )


def _conv_valid_plain(x: Array, k: Array, precision: Any) -> Array:
    return _conv_padded_plain(x, k, ((0, 0), (0, 0)), precision)


def _weight_gradient(
    x: Array, g: Array, pads: Sequence[tuple[int, int]], dilation: Sequence[int], precision: Any
) -> Array:
    """The weight gradient ``dw[i, j, c, o] = sum_{b, y, x} x_padded[b, s*y + i, s*x + j, c]
    g[b, y, x, o]`` of a stride-``s`` convolution (``dilation`` = the strides) as an
    ordinary NHWC/HWIO convolution: x with channels as the batch and the batch as the
    feature, g as the (rhs-dilated) kernel; the form XLA on CPU gives JAX's own weight
    gradient in a straight-line program, but not inside a loop body. ``pads`` must make
    the result exactly the kernel's size."""
    dw_t = jax.lax.conv_general_dilated(
        x.transpose(3, 1, 2, 0),
        g.transpose(1, 2, 0, 3),
        (1, 1),
        pads,
        rhs_dilation=tuple(dilation),
        dimension_numbers=_NHWC,
        precision=precision,
    )
    return dw_t.transpose(1, 2, 0, 3)


def _varying_axes(x: Any) -> frozenset:
    """The ``jax.shard_map`` mesh axes along which ``x`` varies (empty outside one)."""
    manual = getattr(jax.typeof(x), "manual_axis_type", None)
    return frozenset(getattr(manual, "varying", ()))


def _like_primal(ct: Array, primal: Array) -> Array:
    """A custom-VJP cotangent given the ``shard_map`` type of its primal, as JAX requires
    of a backward rule (with ``check_vma``): summed over the axes along which it varies and
    the primal does not (a kernel replicated over a sharded batch gets the whole batch's
    gradient, as JAX's own rules give it), marked varying along those the primal varies
    over. Outside ``shard_map`` it is ``ct``."""
    have, want = _varying_axes(ct), _varying_axes(primal)
    if have - want:
        ct = jax.lax.psum(ct, tuple(sorted(have - want)))
    if want - have:
        ct = jax.lax.pcast(ct, tuple(sorted(want - have)), to="varying")
    return ct


def _defvjp_typed(fn: Any, fwd: Callable, bwd: Callable) -> None:
    """``fn.defvjp(fwd, bwd)`` for this module's rules, whose residuals are the primals
    themselves: each cotangent ``bwd`` returns gets its primal's ``shard_map`` type
    (:func:`_like_primal`)."""

    def typed_bwd(*args: Any) -> tuple[Array, ...]:
        res = args[-2]
        return tuple(_like_primal(c, p) for c, p in zip(bwd(*args), res, strict=True))

    fn.defvjp(fwd, typed_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_valid(x: Array, kernel: Array, precision: Any = None) -> Array:
    """Stride-1 'VALID' convolution (NHWC, HWIO) whose backward pass is written as plain
    NHWC/HWIO forward convolutions, so that its own derivatives are plain too.

    The value is ``lax.conv_general_dilated(x, kernel, (1, 1), 'VALID')``. JAX's built-in
    transpose rules express the input gradient as a convolution with a reversed kernel and
    swapped feature dimensions; differentiating *that* again (the weight gradient of a
    gradient penalty) yields convolutions in layouts XLA on CPU runs ~10x slower than
    ordinary ones. Here the input gradient is ``conv(pad(g, k-1), flip(kernel) with in/out
    swapped)`` and the weight gradient ``conv(x with batch<->channels, g with batch as the
    input feature)``, both ordinary convolutions of transposed arrays, so every higher
    derivative JAX takes of them is ordinary as well. Reverse mode only (``jax.grad`` to
    any order, ``vmap``); forward mode (``jax.jvp``) is not defined for a ``custom_vjp``.
    """
    return _conv_valid_plain(x, kernel, precision)


def _conv_valid_fwd(x: Array, kernel: Array, precision: Any) -> tuple[Array, tuple[Array, Array]]:
    return _conv_valid_plain(x, kernel, precision), (x, kernel)


def _conv_valid_bwd(precision: Any, res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    x, kernel = res
    kh, kw = kernel.shape[:2]
    g_full = jnp.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    dx = _conv_valid_plain(g_full, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), precision)
    # dw[i, j, c, o] = sum_{b, y, x} x[b, y + i, x + j, c] g[b, y, x, o]: one matrix
    # product per tap (XLA on CPU runs this ~3x faster than the equivalent convolution with
    # the batch as its contracted axis when the kernel is small).
    ho, wo = g.shape[1:3]
    taps = [
        jnp.einsum("byxc,byxo->co", x[:, i : i + ho, j : j + wo], g, precision=precision)
        for i in range(kh)
        for j in range(kw)
    ]
    dw = jnp.stack(taps).reshape(kernel.shape)
    return dx.astype(x.dtype), dw.astype(kernel.dtype)


_defvjp_typed(conv_valid, _conv_valid_fwd, _conv_valid_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_padded(x: Array, kernel: Array, pads: Pads, precision: Any = None) -> Array:
    """Stride-1 convolution (NHWC, HWIO) with its zero padding ``pads`` as the
    convolution's attribute, whose input and weight gradients are ordinary NHWC/HWIO
    convolutions of transposed arrays. Each pad must be below its kernel size.

    The value is ``lax.conv_general_dilated(x, kernel, (1, 1), pads)``. JAX's own rules
    give the input gradient a reversed kernel with in/out swapped and the weight gradient
    the batch as its contracted feature axis. XLA on CPU rewrites those into ordinary
    convolutions of transposed operands in a straight-line program, but not inside a
    loop body: there they run on a slow generic path. Four ESRGAN RRDBs under
    ``lax.scan``, forward + backward at batch 4 and 32x32: 7.4 s with JAX's rules, 0.41 s
    with these (0.36 s unrolled). Here the input gradient is ``conv(g, flip(kernel) with
    in/out swapped)`` padded by ``k - 1 - pad`` and the weight gradient
    ``conv(x with batch<->channels, g with batch as the input feature)``, the forms XLA
    itself picks outside loops.
    """
    return _conv_padded_plain(x, kernel, pads, precision)


def _conv_padded_fwd(x: Array, kernel: Array, pads: Pads, precision: Any):
    return _conv_padded_plain(x, kernel, pads, precision), (x, kernel)


def _conv_padded_bwd(pads: Pads, precision: Any, res: tuple[Array, Array], g: Array):
    x, kernel = res
    kh, kw = kernel.shape[:2]
    (pt, pb), (pl, pr) = pads
    dx_pads = ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr))
    k_adj = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv_padded_plain(g, k_adj, dx_pads, precision)
    dw = _weight_gradient(x, g, pads, (1, 1), precision)
    return dx.astype(x.dtype), dw.astype(kernel.dtype)


_defvjp_typed(conv_padded, _conv_padded_fwd, _conv_padded_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_valid_few_outputs(x: Array, kernel: Array, precision: Any = None) -> Array:
    """Stride-1 'VALID' convolution for kernels with few output channels (an RGB output
    layer, a one-logit critic head), fast on CPU.

    XLA's CPU convolution runs a large-window, few-output kernel (7x7, 64 -> 3) ~40x below
    its usual rate. Here the forward pass is one matrix product to ``kh*kw*out`` channels
    (every tap's contribution at every pixel) followed by the sum of the ``kh*kw`` shifted
    slices. The backward pass (differentiating the shifted sums is slow) is
    :func:`conv_taps`'s, matrix products with the output gradient's ``kh*kw*out`` taps,
    from ``_FEW_TAPS_MIN_PIXELS`` output pixels, and below that (a critic's one-logit head
    on a 4x4 map) the ordinary convolution's, written as in :func:`conv_padded`.
    """
    return _tap_products_summed(x, kernel, precision)


def _tap_products_summed(x: Array, kernel: Array, precision: Any) -> Array:
    """The 'VALID' convolution of ``x`` as one matrix product to ``kh*kw*out`` channels
    (every tap's contribution at every pixel) and the sum of the ``kh*kw`` shifted slices."""
    kh, kw, ci, co = kernel.shape
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    k = kernel.transpose(2, 0, 1, 3).reshape(ci, kh * kw, co)
    z = jnp.einsum("byxc,cto->byxto", x, k, precision=precision)
    y = z[:, :ho, :wo, 0]
    for t in range(1, kh * kw):
        i, j = divmod(t, kw)
        y = y + z[:, i : i + ho, j : j + wo, t]
    return y


def _few_fwd(x: Array, kernel: Array, precision: Any) -> tuple[Array, tuple[Array, Array]]:
    return conv_valid_few_outputs(x, kernel, precision), (x, kernel)


def _few_bwd(precision: Any, res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    if math.prod(g.shape[:3]) >= _FEW_TAPS_MIN_PIXELS:
        return _conv_taps_bwd(((0, 0), (0, 0)), precision, res, g)
    return _conv_padded_bwd(((0, 0), (0, 0)), precision, res, g)


_defvjp_typed(conv_valid_few_outputs, _few_fwd, _few_bwd)

# On CPU, a stride-1 convolution whose kh*kw*out is at most this runs as
# conv_valid_few_outputs.
_FEW_OUTPUTS_MAX = 256
# conv_valid_few_outputs' backward pass is conv_taps's (matrix products with the output
# gradient's few taps, split across cores) from this many output pixels (batch * H * W),
# below it XLA's convolutions. Forward + backward, one process, 2 cores: CycleGAN's last
# layer (7x7 64 -> 3) at 256x256 40.6 -> 23.8 ms, at 128x128 11.0 -> 5.9 ms; ESRGAN's
# (3x3 64 -> 3, batch 4 of 128x128) 12.1 -> 6.4 ms; CycleGAN's critic head (4x4 512 -> 1,
# 30x30 outputs) 1.32 -> 0.72 ms; a gradient penalty's second order 4-9x faster
# (432 -> 57 ms for the first); but DCGAN 64's head (4x4 512 -> 1, batch 64 of 1x1
# outputs) 0.49 -> 1.04 ms.
_FEW_TAPS_MIN_PIXELS = 256

# On CPU, a zero-padded 3x3 stride-1 convolution (not Winograd's) with at most
# _TAPS_MAX_FEATURES outputs and at least _TAPS_MIN_IN inputs runs as conv_taps.
_TAPS_MAX_FEATURES = 32
_TAPS_MIN_IN = 32


def use_taps(in_channels: int, features: int) -> bool:
    """Whether ``Conv`` on CPU computes a zero-padded 3x3 stride-1 convolution that
    Winograd's form does not take by :func:`conv_taps` (measurements: its docstring)."""
    return features <= _TAPS_MAX_FEATURES and in_channels >= _TAPS_MIN_IN


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_taps(x: Array, kernel: Array, pads: Pads, precision: Any = None) -> Array:
    """Stride-1 convolution (NHWC, HWIO) with zero padding ``pads`` computed as matrix
    products over the kernel's taps, with the pixels as the long dimension, forward and
    backward: fast on CPU for small images and narrow outputs (ESRGAN's dense layers,
    64..160 -> 32 channels at 32x32), which XLA's own convolution runs on one core.

    The value is ``lax.conv_general_dilated(x, kernel, (1, 1), pads)``, for any pads
    (negative ones crop, as there). Forward: the padded input times the kernel as an
    ``(in, kh*kw*out)`` matrix, one product, then the sum of the ``kh*kw`` shifted slices
    (:func:`conv_valid_few_outputs`' form). Backward: ``taps``, the ``kh*kw`` shifted
    copies of the output gradient on the input's grid (``taps[b, y, x, (i, j), o] =
    g[b, y + pad_top - i, x + pad_left - j, o]``, zero outside), then two products: input
    gradient ``taps @ kernel^T`` over ``(kh*kw*out)`` and weight gradient ``x^T @ taps``
    over the pixels. Each product's long dimension is the pixels or the ``kh*kw*out``
    taps, which XLA's CPU matrix product splits across the cores, whereas its convolution
    of a batch of 32x32 images with 32 or 64 outputs is one tile on one core. The extra
    memory traffic is the ``kh*kw*out``-channel intermediates, small against the
    multiply-adds while ``in`` is large against ``kh*kw``. Derivatives of every order are
    JAX's own of these products and slices.

    ESRGAN's 32-output dense layers, forward + backward at batch 4 of 32x32 on 2 cores:
    280-325 GFLOP/s against 140-191 for XLA's convolution (``python -m
    benchmarks.conv_threads``; ``benchmarks/NOTES.md`` has the trunk and the step).
    """
    return _tap_products_summed(_zero_pad(x, pads), kernel, precision)


def _zero_pad(x: Array, pads: Pads) -> Array:
    """Zero padding of the two spatial axes; a negative pad crops (as ``lax.pad``)."""
    (pt, pb), (pl, pr) = pads
    zero = jnp.zeros((), x.dtype)
    return jax.lax.pad(x, zero, ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))


def _conv_taps_fwd(x: Array, kernel: Array, pads: Pads, precision: Any):
    return conv_taps(x, kernel, pads, precision), (x, kernel)


def _conv_taps_bwd(pads: Pads, precision: Any, res: tuple[Array, Array], g: Array):
    x, kernel = res
    kh, kw, ci, co = kernel.shape
    h, w = x.shape[1:3]
    (pt, pb), (pl, pr) = pads
    gp = _zero_pad(g, ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr)))
    # taps[b, y, x, i*kw + j, o] = g[b, y + pt - i, x + pl - j, o] (zero outside g).
    taps = jnp.stack(
        [
            gp[:, kh - 1 - i : kh - 1 - i + h, kw - 1 - j : kw - 1 - j + w]
            for i in range(kh)
            for j in range(kw)
        ],
        axis=3,
    ).reshape(-1, kh * kw * co)
    k_t = kernel.transpose(0, 1, 3, 2).reshape(kh * kw * co, ci)
    dx = jnp.matmul(taps, k_t, precision=precision).reshape(x.shape)
    dw = jnp.matmul(x.reshape(-1, ci).T, taps, precision=precision)
    dw = dw.reshape(ci, kh, kw, co).transpose(1, 2, 0, 3)
    return dx.astype(x.dtype), dw.astype(kernel.dtype)


_defvjp_typed(conv_taps, _conv_taps_fwd, _conv_taps_bwd)


# A strided convolution F(x, k), its input gradient DX(g, k) and its weight gradient
# DW(x, g) as three custom-VJP functions whose derivatives are each other:
#   F:  dF/dx^T g = DX(g, k)   dF/dk^T g = DW(x, g)
#   DX: dDX/dg^T u = F(u, k)   dDX/dk^T u = DW(u, g)
#   DW: dDW/dx^T v = DX(g, v)  dDW/dg^T v = F(x, v)
# so derivatives of every order are these three computations, each run in the form XLA
# computes fastest (JAX's own rules would turn the second derivatives of a gradient
# penalty into rhs-dilated, reversed-kernel convolutions, ~30x slower on CPU).
_ConvGeometry = tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]


def _strided_plain(x: Array, k: Array, geo: _ConvGeometry) -> Array:
    strides, pads = geo
    return jax.lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_f(x: Array, k: Array, geo: _ConvGeometry) -> Array:
    return _strided_plain(x, k, geo)


# The input gradient of a strided convolution whose input has at least this many pixels,
# and whose kernel size is a multiple of the stride, is computed through the space-to-depth
# form (a stride-1 convolution, then depth-to-space) instead of XLA's lhs-dilated
# convolution: on CPU the DCGAN 64x64 layer 32x32x64 -> 16x16x128 took 67 ms as the latter
# and 26 ms as the former (batch 64; the DCGAN 64 step 1.20 s -> 1.07 s); at 8x8 inputs the
# lhs-dilated form is faster (28 vs 38 ms for 8x8x256 -> 4x4x512). When the stride does not
# divide the kernel, space-to-depth pads the kernel and adds multiply-adds (3x3, stride 2:
# 16 taps for 9), so those keep XLA's form.
_DX_SPACE_TO_DEPTH_MIN_PIXELS = 256
# ... and at least this many input channels: the input gradient of an RGB input layer
# would be a few-output convolution in the space-to-depth form, which XLA:CPU runs slowly
# (the DCGAN 32 step was 8% slower with it). Those (a DCGAN critic's first layer, a DCGAN
# generator's last) run as _conv_dx_taps instead of XLA's lhs-dilated convolution: for
# 32x32x3 <- 16x16x64 at batch 64, 0.72 -> 0.45 ms on two cores, 0.93 -> 0.69 on one.
# Paired A/B of the steps in one process: DCGAN 32 0.991, 0.974 and 0.991, DCGAN 64
# 0.978, but WGAN-GP 1.018, 1.023 and 1.016 (its critic's input gradient feeds the
# penalty; with the form only in the generator's transposed convolution, WGAN-GP 0.985
# and DCGAN 32 1.002). Kept for DCGAN, whose 1.5x target is the one not met.
_DX_SPACE_TO_DEPTH_MIN_CHANNELS = 16


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_dx(g: Array, k: Array, geo: _ConvGeometry, x_shape: tuple[int, ...]) -> Array:
    strides, pads = geo
    divides = k.shape[0] % strides[0] == 0 and k.shape[1] % strides[1] == 0
    large = x_shape[1] * x_shape[2] >= _DX_SPACE_TO_DEPTH_MIN_PIXELS
    if divides and large:
        if x_shape[3] < _DX_SPACE_TO_DEPTH_MIN_CHANNELS:
            return _conv_dx_taps(g, k, geo, x_shape)
        form = lambda x: conv_space_to_depth(x, k, strides, pads)
    else:
        form = lambda x: _strided_plain(x, k, geo)
    zeros = _like_primal(jnp.zeros(x_shape, g.dtype), g)  # varying where g is (shard_map)
    return jax.vjp(form, zeros)[1](g)[0]


def _conv_dx_taps(g: Array, k: Array, geo: _ConvGeometry, x_shape: tuple[int, ...]) -> Array:
    """The input gradient of a strided convolution whose kernel is a multiple of the stride,
    for few input channels: one matrix product of the output gradient with every tap, ``P
    = g @ k^T`` (all ``kh*kw*c`` outputs, a product XLA splits across the cores), then per
    phase of the space-to-depth form the sum of the ``(kh/sh)*(kw/sw)`` taps that land on
    it, shifted, and the depth-to-space rearrangement."""
    (sh, sw), ((plh, _), (plw, _)) = geo
    kh, kw, c, f = k.shape
    mh, mw = kh // sh, kw // sw
    b, ho, wo, _ = g.shape
    # Columns ordered (jy, jx, py, px, c): each tap block's phases are contiguous.
    taps = k.reshape(mh, sh, mw, sw, c, f).transpose(5, 0, 2, 1, 3, 4)
    p = jnp.dot(g.reshape(-1, f), taps.reshape(f, kh * kw * c))
    p = p.reshape(b, ho, wo, mh, mw, sh * sw * c)
    z = None
    for jy in range(mh):
        for jx in range(mw):
            part = p[:, :, :, jy, jx]
            part = jnp.pad(part, ((0, 0), (jy, mh - 1 - jy), (jx, mw - 1 - jx), (0, 0)))
            z = part if z is None else z + part
    return _depth_to_space_cropped(z, tuple(x_shape), (sh, sw), (plh, plw))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_dw(x: Array, g: Array, geo: _ConvGeometry, k_shape: tuple[int, ...]) -> Array:
    # As _weight_gradient, not JAX's own rule: inside a loop body XLA on CPU ran that on a
    # slow generic path (a WGAN-GP step with its critic updates under lax.scan: 1.31-1.35 s
    # against 0.39-0.42 s unrolled; written this way, 0.43 s).
    strides, pads = geo
    # Input rows and columns past the last window (when the stride does not divide the
    # padded extent) are read by no output: drop them from the high padding, or from x.
    pads_used = []
    for axis, (s, (lo, hi)) in enumerate(zip(strides, pads, strict=True)):
        extent, taps, outputs = x.shape[1 + axis], k_shape[axis], g.shape[1 + axis]
        hi -= extent + lo + hi - ((outputs - 1) * s + taps)
        if hi < 0:
            x = jax.lax.slice_in_dim(x, 0, extent + hi, axis=1 + axis)
            hi = 0
        pads_used.append((lo, hi))
    return _weight_gradient(x, g, pads_used, strides, None).astype(g.dtype)


def _conv_f_fwd(x, k, geo):
    return _conv_f(x, k, geo), (x, k)


def _conv_f_bwd(geo, res, g):
    x, k = res
    return _conv_dx(g, k, geo, x.shape), _conv_dw(x, g, geo, k.shape)


def _conv_dx_fwd(g, k, geo, x_shape):
    return _conv_dx(g, k, geo, x_shape), (g, k)


def _conv_dx_bwd(geo, x_shape, res, u):
    g, k = res
    return _conv_f(u, k, geo), _conv_dw(u, g, geo, k.shape)


def _conv_dw_fwd(x, g, geo, k_shape):
    return _conv_dw(x, g, geo, k_shape), (x, g)


def _conv_dw_bwd(geo, k_shape, res, v):
    x, g = res
    return _conv_dx(g, v, geo, x.shape), _conv_f(x, v, geo)


_defvjp_typed(_conv_f, _conv_f_fwd, _conv_f_bwd)
_defvjp_typed(_conv_dx, _conv_dx_fwd, _conv_dx_bwd)
_defvjp_typed(_conv_dw, _conv_dw_fwd, _conv_dw_bwd)


def conv_strided(
    x: Array, kernel: Array, strides: Sequence[int], padding: Sequence[tuple[int, int]]
) -> Array:
    """``lax.conv_general_dilated(x, kernel, strides, padding)`` (NHWC, HWIO) whose
    derivatives of every order are the convolution, its input gradient and its weight
    gradient (see the comment above ``_conv_f``): reverse mode only (``jax.grad``, ``vmap``)."""
    geo = (tuple(int(v) for v in strides), tuple((int(a), int(b)) for a, b in padding))
    return _conv_f(x, kernel, geo)


# On CPU, a stride-1 convolution whose patch matrix (output pixels x kh*kw*in, float32)
# exceeds this many bytes is computed in spatial tiles of at most this size (at 24 MiB the
# ESRGAN step, whose RRDB patch matrices are ~28 MiB, was 3% slower).
_TILE_BYTES = 64 * 2**20


def conv_valid_tiled(x: Array, kernel: Array, precision: Any = None) -> Array:
    """Stride-1 'VALID' convolution (NHWC, HWIO) computed in n x n spatial output tiles when
    its patch matrix is large.

    XLA's CPU convolution slows down several-fold once the patch matrix outgrows the cache:
    a 3x3 256 -> 256 convolution at 64x64 (the CycleGAN residual blocks at 256x256, batch 2)
    took 256 ms forward and 293 ms for its weight gradient, 136 ms and 127 ms as four
    32x32 tiles (each tile reads its ``k - 1`` pixel halo; the input gradient, which JAX
    derives by adding the tiles' gradients, stays as fast). Convolutions whose patch
    matrix is under ``_TILE_BYTES`` run as one.
    """
    b, h, w, ci = x.shape
    kh, kw = kernel.shape[:2]
    ho, wo = h - kh + 1, w - kw + 1
    size = b * ho * wo * kh * kw * ci * x.dtype.itemsize
    n = 1
    while size / (n * n) > _TILE_BYTES and ho // (n + 1) >= 8 and wo // (n + 1) >= 8:
        n += 1
    if n == 1:
        return _conv_valid_plain(x, kernel, precision)
    bounds_h = [ho * i // n for i in range(n + 1)]
    bounds_w = [wo * j // n for j in range(n + 1)]
    rows = []
    for i in range(n):
        h0, h1 = bounds_h[i], bounds_h[i + 1]
        cols = [
            _conv_valid_plain(
                x[:, h0 : h1 + kh - 1, bounds_w[j] : bounds_w[j + 1] + kw - 1], kernel, precision
            )
            for j in range(n)
        ]
        rows.append(jnp.concatenate(cols, axis=2))
    return jnp.concatenate(rows, axis=1)


def _conv_pads(
    padding: str | int | Sequence[Any], h: int, w: int, kh: int, kw: int, sh: int, sw: int
) -> list[tuple[int, int]]:
    """Explicit (lo, hi) pairs for flax-style ``padding`` ('SAME', 'VALID', int, pairs)."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(
                f"Conv padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}"
            )
        return list(jax.lax.padtype_to_pads((h, w), (kh, kw), (sh, sw), padding.upper()))
    if isinstance(padding, int):
        return [(padding, padding), (padding, padding)]
    pads = [(p, p) if isinstance(p, int) else tuple(int(v) for v in p) for p in padding]
    if len(pads) != 2 or any(len(p) != 2 for p in pads):
        raise ValueError(f"Conv padding must give two (lo, hi) pairs, got {padding!r}")
    return pads  # type: ignore[return-value]


def conv_whole_input(x: Array, kernel: Array, precision: Any = None) -> Array:
    """A 'VALID' convolution whose (kh, kw, c, f) kernel is as large as the input (n, kh,
    kw, c): one output pixel, the matrix product of the flattened input and kernel ->
    (n, 1, 1, f). XLA on CPU runs it as a convolution several times slower."""
    n, h, w, c = x.shape
    if kernel.shape[:3] != (h, w, c):
        raise ValueError(f"conv_whole_input: kernel {kernel.shape} does not cover input {x.shape}")
    y = jnp.dot(x.reshape(n, h * w * c), kernel.reshape(h * w * c, -1), precision=precision)
    return y.reshape(n, 1, 1, -1)


class Conv(nn.Module):
    """2-D convolution equal to ``flax.linen.Conv``, with CPU forms for what XLA's CPU
    backend runs slowly.

    Same parameters ('kernel' (kh, kw, in, features), 'bias'), initialisers and outputs as
    ``flax.linen.Conv(features, kernel_size, strides, padding)``; parameters can be copied
    between the two. On CPU (``impl='auto'``):

    * strided with a kernel twice the stride and at least 64 channels in and out (DCGAN's
      4x4 stride-2 layers; :func:`jaxgan.nets.winograd.use_winograd_strided`): Winograd
      F(4x4, 2x2), or F(2x2, 2x2) below 2048 output pixels, of the space-to-depth form
      (:func:`space_to_depth_operands`, :func:`jaxgan.nets.winograd.conv_winograd`), 25/64
      or 9/16 of the multiply-adds (a DCGAN 64 step 1.02 -> 0.75 s with F(2x2, 2x2), 0.66-0.68 s
      with F(4x4, 2x2));
    * other strided: :func:`conv_strided`, whose derivatives of every order are the convolution,
      its input gradient and its weight gradient (a WGAN-GP critic step: 2.6 s -> 0.9 s);
      the input gradient of inputs from 16x16 and 16 channels up, when the stride divides
      the kernel, runs in the space-to-depth form;
    * stride 1 with ``kh*kw*features <= 256`` (an RGB output layer):
      :func:`conv_valid_few_outputs` (the 7x7 64 -> 3 output layer of the CycleGAN
      generator: ~60 ms -> ~2 ms forward);
    * 3x3 stride-1 convolutions with at least 64 input and output channels (see
      :func:`jaxgan.nets.winograd.use_winograd`): Winograd's F(2x2, 3x3),
      :func:`jaxgan.nets.winograd.conv_winograd` of the padded input, 4/9 of the
      multiply-adds (a CycleGAN 128x128 step: 3.36 -> 2.12 s);
    * zero-padded 3x3 stride-1 convolutions with at most 32 outputs from at least 32
      inputs (:func:`use_taps`; ESRGAN's dense layers): :func:`conv_taps`, matrix products
      over the kernel's taps that XLA splits across the cores (a batch of 32x32 images
      with 32 outputs is one tile, one core, for its convolution; the 23-block RRDB trunk,
      forward + backward, 1.66-1.90 -> 1.32-1.41 s);
    * other zero-padded 3x3 stride-1 convolutions: :func:`conv_padded`, the convolution
      with the padding as its attribute (XLA on CPU runs that up to 3x faster than the
      convolution of a padded array), whose gradients are ordinary convolutions also
      inside a loop body (ESRGAN's scanned RRDBs);
    * other stride-1 convolutions: :func:`conv_valid_tiled` of the padded input;
    * a kernel that covers the whole (padded) input, one output pixel (a DCGAN critic's
      last layer): :func:`conv_whole_input`, a matrix product (the DCGAN 32 critic's
      4x4x256 -> 1, forward + both gradients at batch 64, 0.32 -> 0.05 ms);
    * on every other backend, ``lax.conv_general_dilated``.

    Attributes:
      features: number of output channels.
      kernel_size: int or (kh, kw).
      strides: int or (sh, sw).
      padding: 'SAME', 'VALID', an int, or ((lo, hi), (lo, hi)).
      use_bias: add a learned bias.
      dtype, param_dtype, precision, kernel_init, bias_init: as flax.
      impl: 'auto', 'direct' (``lax.conv_general_dilated`` everywhere) or
        'space_to_depth' (strided convolutions as :func:`conv_space_to_depth`; measured
        slower than 'auto' on CPU for DCGAN and WGAN-GP, kept as an alternative).
    """

    features: int
    kernel_size: int | Sequence[int] = (3, 3)
    strides: int | Sequence[int] = (1, 1)
    padding: Any = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    impl: str = "auto"

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        """Map (..., H, W, C) to (..., H', W', features); leading axes are kept."""
        if self.impl not in _CONV_IMPLS:
            raise ValueError(f"Conv impl must be one of {_CONV_IMPLS}, got {self.impl!r}")
        if inputs.ndim < 3:
            raise ValueError(f"Conv expects (..., H, W, C) inputs, got {inputs.shape}")
        kh, kw = _pair(self.kernel_size, "kernel_size")
        sh, sw = _pair(self.strides, "strides")
        h, w = inputs.shape[-3:-1]
        c = inputs.shape[-1]
        pads = _conv_pads(self.padding, h, w, kh, kw, sh, sw)
        padded_shape = (
            math.prod(inputs.shape[:-3]),
            h + sum(pads[0]),
            w + sum(pads[1]),
            c,
        )

        def direct(x: Array, k: Array) -> Array:
            return jax.lax.conv_general_dilated(
                x, k, (sh, sw), pads, dimension_numbers=_NHWC, precision=self.precision
            )

        def padded(x: Array) -> Array:
            return jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))

        def conv(x: Array, k: Array) -> Array:
            if self.impl == "direct":
                return direct(x, k)
            if padded_shape[1:3] == (kh, kw):
                cpu = lambda x, k: conv_whole_input(padded(x), k, self.precision)
            elif (sh, sw) == (1, 1):
                if kh * kw > 1 and kh * kw * self.features <= _FEW_OUTPUTS_MAX:
                    cpu = lambda x, k: conv_valid_few_outputs(padded(x), k, self.precision)
                elif winograd.use_winograd(padded_shape, (kh, kw, c, self.features)):
                    cpu = lambda x, k: winograd.conv_winograd(padded(x), k, self.precision)
                elif (
                    (kh, kw) == (3, 3)
                    and any(p for pair in pads for p in pair)
                    and all(0 <= p < 3 for pair in pads for p in pair)
                ):
                    attr_pads = tuple((int(lo), int(hi)) for lo, hi in pads)
                    if use_taps(c, self.features):
                        cpu = lambda x, k: conv_taps(x, k, attr_pads, self.precision)
                    else:
                        # XLA on CPU runs a convolution with its padding as an attribute up
                        # to 3x faster than the same one on a padded input (3x3 64 -> 64 at
                        # 128x128, batch 4: 24 vs 71 ms forward, 52 vs 149 ms weight
                        # gradient; the ESRGAN step ratio 0.91 -> ~1.0). Only measured for
                        # 3x3 kernels: the CycleGAN discriminator's 4x4 ones looked slower
                        # that way. Its gradients are written as ordinary convolutions,
                        # which XLA also runs fast inside a loop (see conv_padded).
                        cpu = lambda x, k: conv_padded(x, k, attr_pads, self.precision)
                else:
                    cpu = lambda x, k: conv_valid_tiled(padded(x), k, self.precision)
            elif self.impl == "space_to_depth":
                return conv_space_to_depth(x, k, (sh, sw), pads, self.precision)
            elif winograd.use_winograd_strided((kh, kw, c, self.features), (sh, sw)):
                cpu = lambda x, k: winograd.conv_winograd(
                    *space_to_depth_operands(x, k, (sh, sw), pads), self.precision
                )
            else:
                cpu = lambda x, k: conv_strided(x, k, (sh, sw), pads)
            return jax.lax.platform_dependent(x, k, cpu=cpu, default=direct)

        return _apply_conv_module(self, inputs, kh, kw, conv)


def _fused_polyphase(x: Array, kernel: Array, s: int) -> Array:
    """All ``s*s`` phases as ONE stride-1 convolution to ``s*s*out`` channels + shuffle.

    Benchmark variant only (slower on CPU): each phase's sub-kernel is zero-padded to a
    window common to all phases.
    """
    kh, kw, cin, cout = kernel.shape
    plans = []
    for k in (kh, kw):
        phases = _axis_phases(k, s)
        used = [(-lo, n - 1 - lo) for _, n, (lo, _) in phases if n > 0]
        lo, hi = min(a for a, _ in used), max(b for _, b in used)
        plans.append(([(t0, n, -p_lo - lo) for t0, n, (p_lo, _) in phases], hi - lo + 1, (-lo, hi)))
    (ph, wh, pad_h), (pw, ww, pad_w) = plans
    rows = []
    for t0h, nh, oh in ph:
        cols = []
        for t0w, nw, ow in pw:
            sub = kernel[t0h::s, t0w::s]
            cols.append(jnp.pad(sub, ((oh, wh - oh - nh), (ow, ww - ow - nw), (0, 0), (0, 0))))
        rows.append(jnp.stack(cols, axis=-1))  # (Kh, Kw, in, out, sw)
    fused = jnp.stack(rows, axis=-2).reshape(wh, ww, cin, cout * s * s)  # channel c*s*s+i*s+j
    y = jax.lax.conv_general_dilated(x, fused, (1, 1), (pad_h, pad_w), dimension_numbers=_NHWC)
    return pixel_shuffle(y, s)


def _benchmark(batch: int = 64, repeats: int = 7) -> dict[str, float]:
    """Median seconds of jit(value_and_grad wrt kernel and input), 16x16x128 -> 32x32x64."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, 16, 16, 128)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(4, 4, 128, 64)) * 0.02, jnp.float32)
    impls = {
        "lax.conv_transpose (= flax.linen.ConvTranspose)": lambda x, k: jax.lax.conv_transpose(
            x, k, (2, 2), "SAME"
        ),
        "polyphase, one 3x3 conv to 4*64 channels + shuffle": lambda x, k: _fused_polyphase(
            x, k, 2
        ),
        "polyphase, four 2x2 convolutions, interleaved": lambda x, k: conv_transpose_polyphase(
            x, k, (2, 2)
        ),
        "adjoint of a strided convolution": lambda x, k: conv_transpose_adjoint(x, k, (2, 2)),
        "adjoint of the Winograd strided convolution (auto)": lambda x, k: conv_transpose_adjoint(
            x, k, (2, 2), winograd_form=True
        ),
    }
    ref = jax.lax.conv_transpose(x, k, (2, 2), "SAME")
    steps = {}
    for name, f in impls.items():
        np.testing.assert_allclose(np.asarray(f(x, k)), np.asarray(ref), atol=1e-4)
        loss = lambda k, x, f=f: jnp.sum(f(x, k) ** 2)
        steps[name] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    a = jnp.asarray(rng.normal(size=(batch * 256, 512)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(512, 256)), jnp.float32)
    steps["reference: one 4.3 GFLOP matmul (16384x512 @ 512x256)"] = jax.jit(lambda a, b: a @ b)
    results = {}
    for name, step in steps.items():
        args = (a, b) if name.startswith("reference") else (k, x)
        jax.block_until_ready(step(*args))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(step(*args))
            times.append(time.perf_counter() - t)
        results[name] = float(np.median(times))
        print(f"{name:55s} {1e3 * results[name]:8.1f} ms", flush=True)
    return results


if __name__ == "__main__":
    from jaxgan.host import reuse_freed_memory_on_cpu

    reuse_freed_memory_on_cpu()  # as the training loop does: no page faults per call
    _benchmark()
