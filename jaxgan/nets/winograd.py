"""Convolutions by Winograd's minimal filtering: F(2x2, 3x3) for 3x3 stride-1 layers and
F(4x4, 2x2) for 4x4 stride-2 ones (after space-to-depth).

A 'VALID' 3x3 convolution of an (n, h, w, c) input computes each 2x2 block of outputs from
a 4x4 block of inputs. Winograd's algorithm does it with 16 products instead of 36
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015): per 1-D axis,
with the input transform ``BT`` (4x4), the kernel transform ``G`` (4x3) and the output
transform ``AT`` (2x4) below, the two outputs of a 3-tap correlation of four inputs ``d``
with taps ``g`` are ``AT @ ((G @ g) * (BT @ d))``; in 2-D the transforms act on both axes.
Across channels the 16 elementwise products become 16 independent matrix products,
``(tiles, c) @ (c, features)``, one per position in the 4x4 transformed block. So the
convolution is

1. the input transform: overlapping 4x4 blocks at stride 2, taken with strided slices and
   combined with the +-1 coefficients of ``BT`` (additions only), giving ``V`` of shape
   (16, n * tiles, c);
2. the kernel transform ``G g G^T``: (3, 3, c, features) -> (16, c, features);
3. one batched matrix product, 4/9 of the multiply-adds of the direct convolution;
4. the output transform ``AT M A`` (one matrix product) and interleaving the 2x2 blocks.

Every step is an ordinary JAX operation, so JAX derives gradients of every order; the
input gradient and weight gradient it derives are themselves a batched matrix product
between transforms, with the same 4/9 saving. The forms were chosen for run time and for
XLA's compile time, which grows with the number of fused kernels (each Winograd
convolution adds its own to a train step): the input transform as sums of strided slices
(as one matrix product with ``kron(BT, BT)`` over 16 gathered slices it ran 2-4x slower),
the kernel and output transforms as one matrix product each (as sums of slices, the
forward and backward of one 256 -> 256 layer compiled in 0.64 s into 24 fused kernels,
now 0.24-0.32 s and 11 kernels, at the same speed). Written as a three-operand
``jnp.einsum``, the kernel transform of a 3x3x256x256 kernel took 10 ms on CPU.

Accuracy: the coefficients are 0, +-1 and +-1/2, so rounding stays at the level of the
direct convolution in float32 (largest gradient difference from ``lax.conv_general_dilated``
~1e-6 relative in the measurements below). The larger F(4x4, 3x3) tile saves more
multiply-adds but its coefficients (up to 8 and 1/24) raised the difference to ~1e-5;
it is not used.

Speed: ``python -m jaxgan.nets.winograd`` (forward + input and weight gradients of
``sum(y**2)``, jit, median of 7, float32; 2-core CPU, jax 0.10.2, 2026-11-23 22:30 UTC)
against XLA's convolution as ``Conv`` ran it before (zero padding as its attribute)::

    shape (batch, output HxW, c -> features)      XLA       Winograd
    CycleGAN residual, 1, 32x32, 256 -> 256        21.8 ms   12.8 ms
    CycleGAN residual, 1, 64x64, 256 -> 256        86.5 ms   45.8 ms
    ESRGAN trunk, 4, 32x32, 64 -> 64               9.6 ms    5.1 ms
    VGG19 conv2, 4, 64x64, 128 -> 128              81.5 ms   55.3 ms
    VGG19 conv4, 4, 16x16, 512 -> 512              78.0 ms   41.5 ms
    ESRGAN critic, 4, 64x64, 64 -> 128             53.1 ms   29.9 ms
    VGG19 conv1_2, 4, 128x128, 64 -> 64            87.4 ms   83.3 ms  (not used)

Earlier measurements (transforms as sums of slices): ESRGAN dense block, 4, 32x32,
192 -> 32: 15 -> 8.5 ms (not used, below); VGG19 conv1_2 86 -> 99 ms; ESRGAN's first
layer, 4, 128x128, 3 -> 64: 15 -> 40 ms.

Strided convolutions whose kernel is twice the stride (DCGAN's and the PatchGAN's 4x4
stride-2 layers) are, in space-to-depth form (``layers.space_to_depth_operands``), 2x2
stride-1 convolutions over 4x the channels. ``ConvTranspose`` with such a kernel runs as the
adjoint (its VJP at zero) of that strided convolution. Two tiles:

* F(4x4, 2x2) computes each 4x4 block of outputs from a 5x5 block of inputs with 25
  products instead of 64 (Toom-Cook at the points 0, 1, -1, 2 and infinity; BT and AT
  have integer coefficients up to 8, G fractions down to 1/6). Against float64 its error
  is 5-8x that of XLA's float32 convolution in RMS, 9-14x at the largest (a few 1e-6 of
  the output's scale on DCGAN's layers; tested), far below what training notices.
* F(2x2, 2x2): each 2x2 block from a 3x3 block with 9 products instead of 16 (coefficients
  0 and +-1 only). Used below 2048 output pixels (batch * H * W, :func:`transforms`):
  there F(4x4, 2x2)'s 25 transformed kernel matrices cost more than its products save.
  (The threshold was 1024 until 2026-12-07; at 2048 DCGAN's 4x4-output layers at batch 64
  take F(2x2, 2x2): paired step ratios 0.959-0.985 for DCGAN 32, 0.985 for DCGAN 64,
  0.944 for WGAN-GP, ESRGAN within its noise.)

Forward + both gradients (a ``/tmp`` script, jit, median of 7; XLA's form is
``layers.conv_strided``), F(2x2, 2x2) -> F(4x4, 2x2): DCGAN 64's critic, batch 64,
32x32x64 -> 16x16x128 72 -> 49 ms, 16x16x128 -> 8x8x256 62 -> 47 ms, 8x8x256 -> 4x4x512
56 -> 53 ms; ESRGAN's critic, batch 8: 128x128x64 -> 64x64x64 90 -> 65 ms (XLA 127),
64x64x128 -> 32x32x128 67 -> 49 ms, 32x32x256 -> 16x16x256 54 -> 50 ms, but 16x16x512 ->
8x8x512 56 -> 60 ms and 8x8x512 -> 4x4x512 26 -> 38 ms (512 and 128 output pixels: the
rule keeps F(2x2, 2x2) there). Whole steps, one fresh process per variant, alternated
twice: DCGAN 64 735-760 -> 658-680 ms, WGAN-GP 699-844 -> 635-670 ms, DCGAN 32 (134-142
ms), CycleGAN 128 (2.18-2.22 s) and ESRGAN (2.06-2.11 s) unchanged. F(2x2, 2x2) against
XLA's forms before it (``Conv``/``ConvTranspose``): critic 16x16x128 -> 8x8x256 91 -> 53
ms; generator 8x8x256 -> 16x16x128 90 -> 65 ms; DCGAN 64 step 1021 -> 741-762 ms, DCGAN 32
169-173 -> 137-146 ms, WGAN-GP 818-858 -> 711-736 ms (its penalty's second derivatives
are derived by JAX through the same matrix products), ESRGAN 2.16 -> 2.00 s.

Not kept: reading the space-to-depth form straight from the input in the input transform
(strided slices of the original layout, so the rearranged copy is never written): DCGAN
64 step 717-745 ms against 658-679 ms with the copy, fresh processes alternated twice.

The transforms move about four times the input through memory, so few channels over a
large image favour XLA's own convolution; :func:`use_winograd` holds the rule. Whole train
steps (``benchmarks/run.py`` configs, one fresh process per variant): CycleGAN 128x128
3.36 -> 2.12 s; ESRGAN 2.66 -> 2.16 s. Layers with fewer than 64 channels stay XLA's: in
the ESRGAN step, also taking its 32-output dense-block layers gave no further speed and
3 s more compile time.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Per-axis transforms of F(2, 3) (Lavin & Gray 2015, section 4.1).
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
# F(4, 2), for 2x2 kernels (the space-to-depth form of 4x4 stride-2 convolutions): the four
# outputs of a 2-tap correlation of five inputs from 5 products instead of 8, by
# evaluating at the points 0, 1, -1, 2 and infinity (Toom-Cook; BT and AT integer, the
# fractions in G, which transforms the kernel once per step).
BT4 = np.array(
    [
        [2, -1, -2, 1, 0],
        [0, -2, -1, 1, 0],
        [0, 2, -3, 1, 0],
        [0, -1, 0, 1, 0],
        [0, 2, -1, -2, 1],
    ],
    np.float64,
)
G4 = np.array([[1 / 2, 0], [-1 / 2, -1 / 2], [-1 / 6, 1 / 6], [1 / 6, 1 / 3], [0, 1]], np.float64)
AT4 = np.array([[1, 1, 1, 1, 0], [0, 1, -1, 2, 0], [0, 1, 1, 4, 0], [0, 1, -1, 8, 1]], np.float64)
# F(2, 2): 3 products instead of 4, (d0 - d1) g0, d1 (g0 + g1), (d2 - d1) g1.
BT2 = np.array([[1, -1, 0], [0, 1, 0], [0, -1, 1]], np.float64)
G2 = np.array([[1, 0], [1, 1], [0, 1]], np.float64)
AT2 = np.array([[1, 1, 0], [0, 1, 1]], np.float64)
# (BT, G, AT); AT's rows are the outputs per tile and axis.
F2_3, F2_2, F4_2 = (BT, G, AT), (BT2, G2, AT2), (BT4, G4, AT4)
# 2x2 kernels with fewer output pixels (batch * H * W) than this take F(2x2, 2x2): there
# F(4x4, 2x2)'s 25 transformed kernel matrices (against 9) cost more than its products save.
# DCGAN's 4x4-output layers at batch 64 (1024 pixels) are below it: their transformed
# kernels (25 x 512 x 256 floats in DCGAN 32's critic, 13 MB, read by every product)
# outweigh the products' 25/36 of F(2x2, 2x2)'s multiply-adds.
_F4_MIN_PIXELS = 2048

# The rule (see the table above): both channel counts at least _MIN_CHANNELS, and, when
# neither exceeds _FEW_CHANNELS, at most _MAX_PIXELS output pixels (batch * H * W).
# ESRGAN step (python -m benchmarks.run's config) with 32 as the minimum: 2.18 s, compile
# 21 s; with 64 (its dense layers' 32-output convolutions stay XLA's): 2.16 s, 17.9 s;
# without Winograd: 2.66 s, 13.4 s.
_MIN_CHANNELS = 64
_FEW_CHANNELS = 64
_MAX_PIXELS = 32768


def use_winograd(x_shape: Sequence[int], k_shape: Sequence[int]) -> bool:
    """Whether ``Conv`` on CPU computes a stride-1 convolution of an (n, h, w, c) input
    (already padded) with an (kh, kw, c, features) kernel by :func:`conv_winograd`."""
    kh, kw, c, f = k_shape
    if (kh, kw) != (3, 3) or min(c, f) < _MIN_CHANNELS:
        return False
    n, h, w = x_shape[:3]
    return max(c, f) > _FEW_CHANNELS or n * (h - 2) * (w - 2) <= _MAX_PIXELS


def use_winograd_strided(k_shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether ``Conv`` (and, for its adjoint, ``ConvTranspose``) on CPU computes a strided
    convolution with an (kh, kw, c, features) kernel as :func:`conv_winograd` of its
    space-to-depth form: kernels twice the stride (a 2x2 kernel after space-to-depth, as
    DCGAN's 4x4 stride-2 layers) and at least _MIN_CHANNELS channels in and out."""
    kh, kw, c, f = k_shape
    sh, sw = strides
    return (kh, kw) == (2 * sh, 2 * sw) and min(c, f) >= _MIN_CHANNELS


def _combine(mat: np.ndarray, xs: Sequence[Array]) -> list[Array]:
    """``[sum_j mat[i, j] * xs[j] for i]`` with zero terms skipped and +-1 as add/subtract."""
    out = []
    for row in mat:
        acc = None
        for coef, x in zip(row, xs, strict=True):
            if coef == 0:
                continue
            term = x if coef == 1 else -x if coef == -1 else x * float(coef)
            acc = term if acc is None else acc + term
        out.append(acc)
    return out


def transforms(r: int, pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BT, G, AT) for an r x r kernel and ``pixels`` output pixels (batch * H * W): F(2, 3)
    for 3x3; for 2x2, F(4, 2), or F(2, 2) below _F4_MIN_PIXELS."""
    if r == 3:
        return F2_3
    return F4_2 if pixels >= _F4_MIN_PIXELS else F2_2


def transform_kernel(kernel: Array, g: np.ndarray) -> Array:
    """``G g G^T`` for each (in, out) pair of an r x r kernel: (r, r, c, f) -> (a * a, c, f)
    with a = len(G), as one matrix product with ``kron(G, G)``."""
    r, _, c, f = kernel.shape
    gg = jnp.asarray(np.kron(g, g), kernel.dtype)
    return (gg @ kernel.reshape(r * r, c * f)).reshape(-1, c, f)


def _transform_input(x: Array, bt: np.ndarray, m: int, th: int, tw: int) -> Array:
    """``BT d B`` for the th x tw overlapping a x a blocks of x (n, m*th + a - m,
    m*tw + a - m, c) at stride m: -> (a * a, n * th * tw, c)."""
    return _transform_input_vjp(x, tuple(map(tuple, bt.tolist())), m, th, tw)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _transform_input_vjp(x: Array, bt: tuple, m: int, th: int, tw: int) -> Array:
    bt_ = np.array(bt)
    a = len(bt_)
    rows = jnp.stack(_combine(bt_, [x[:, i : i + m * th : m] for i in range(a)]))
    cols = _combine(bt_, [rows[:, :, :, j : j + m * tw : m] for j in range(a)])
    return jnp.stack(cols, axis=1).reshape(a * a, -1, x.shape[-1])


def _scatter_windows(pieces: Sequence[Array], axis: int, m: int, extent: int) -> Array:
    """The adjoint of taking, along ``axis``, the rows ``m*i + j`` (i = 0 .. blocks-1) of an
    ``extent``-row array as ``pieces[j]`` (j = 0 .. a-1, windows overlapping by a - m <= m
    rows): pieces ``j < m`` tile the rows without overlap (a stack and a reshape), pieces
    ``j >= m`` land on the first rows of the next block (the same, shifted by one block)."""
    a, blocks = len(pieces), pieces[0].shape[axis]

    def tiled(ps: Sequence[Array]) -> Array:
        t = jnp.stack(ps, axis=axis + 1)
        if len(ps) < m:
            widths = [(0, 0)] * t.ndim
            widths[axis + 1] = (0, m - len(ps))
            t = jnp.pad(t, widths)
        return t.reshape(t.shape[:axis] + (blocks * m,) + t.shape[axis + 2 :])

    out = tiled(pieces[:m])
    if a > m:
        widths = [(0, 0)] * out.ndim
        widths[axis] = (0, m)
        out = jnp.pad(out, widths)
        widths[axis] = (m, 0)
        out = out + jnp.pad(tiled(pieces[m:]), widths)
    return jax.lax.slice_in_dim(out, 0, extent, axis=axis)


def _transform_input_fwd(x, bt, m, th, tw):
    return _transform_input_vjp(x, bt, m, th, tw), x.shape


def _transform_input_bwd(bt, m, th, tw, shape, dv):
    return (_transform_input_adjoint(dv, bt, m, th, tw, tuple(shape)),)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _transform_input_adjoint(dv, bt, m, th, tw, shape):
    """The input transform's transpose (:func:`_transform_input_adjoint_plain`), whose
    gradient is the transform itself (:func:`_transform_input_vjp`). It is the forward pass
    of a transposed convolution in Winograd form and part of every input gradient, so its
    own gradient runs in a generator's backward pass and in a gradient penalty's second
    derivatives; JAX's, the transpose of the column combinations, summed five padded
    copies of the tiles (1.5 ms on one core in a DCGAN 32 generator's 8x8 -> 16x16 layer).
    Paired A/B in one process: DCGAN 32 0.990 and 0.991, DCGAN 64 0.980, WGAN-GP 0.969."""
    return _transform_input_adjoint_plain(dv, bt, m, th, tw, shape)


def _transform_input_adjoint_fwd(dv, bt, m, th, tw, shape):
    return _transform_input_adjoint_plain(dv, bt, m, th, tw, shape), None


def _transform_input_adjoint_bwd(bt, m, th, tw, shape, _, g):
    return (_transform_input_vjp(g, bt, m, th, tw),)


_transform_input_adjoint.defvjp(_transform_input_adjoint_fwd, _transform_input_adjoint_bwd)


def _transform_input_adjoint_plain(dv, bt, m, th, tw, shape):
    """The transform's transpose, written so that XLA on CPU emits it as block copies and
    one add per axis: JAX's own (pads of the strided slices, summed) was the slowest loop
    of a DCGAN generator's transposed convolutions, and of the critics' input gradients."""
    bt_ = np.array(bt)
    a = len(bt_)
    n, h, w, c = shape
    d = dv.reshape(a, a, n, th, tw, c)
    cols = _combine(bt_.T, [d[:, j] for j in range(a)])  # column slice j: (a, n, th, tw, c)
    rows = _scatter_windows(cols, 3, m, w)  # (a, n, th, w, c)
    return _scatter_windows(_combine(bt_.T, list(rows)), 1, m, h)


_transform_input_vjp.defvjp(_transform_input_fwd, _transform_input_bwd)


def _transform_output(m: Array, at: np.ndarray, n: int, th: int, tw: int) -> Array:
    """``AT M A`` for each block, as one matrix product with ``kron(AT, AT)``, and the
    t x t blocks interleaved (t outputs per tile and axis): (a * a, n * th * tw, f) ->
    (n, t th, t tw, f)."""
    f, t = m.shape[-1], len(at)
    aa = jnp.asarray(np.kron(at, at), m.dtype)
    y = (aa @ m.reshape(aa.shape[1], -1)).reshape(t, t, n, th, tw, f)
    if t != _TILES_VJP_T:
        return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, t * th, t * tw, f)
    return _tiles_to_image(y)


# The output tiles' rearrangement gets the custom VJP below for F(4x4, 2x2) (4x4 output
# tiles, DCGAN's strided layers): paired A/B in one process, DCGAN 32 0.977x the step
# time, DCGAN 64 0.972x, but WGAN-GP 1.016x (its penalty's second derivatives). For the
# 2x2 tiles of F(2x2, 3x3) and F(2x2, 2x2) it was slower in ESRGAN's step (1.021-1.041x;
# CycleGAN 128 0.990x), so those keep JAX's transpose.
_TILES_VJP_T = 4


@jax.custom_vjp
def _tiles_to_image(y: Array) -> Array:
    """(t, t, n, th, tw, f) output tiles -> (n, t*th, t*tw, f): a transpose. Its gradient
    is :func:`_image_to_tiles` (strided slices), and that one's is this. JAX's own gradient,
    the transpose of the transpose, is fused by XLA with the BatchNorm and activation
    gradients before it (in isolation, with an elementwise producer, 0.23 against 0.20 ms
    at DCGAN 32's 8x8x128; the steps in the comment on _TILES_VJP_T); and JAX's transpose
    of strided slices (a gradient penalty's second derivatives) would be interior padding."""
    t, _, n, th, tw, f = y.shape
    return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, t * th, t * tw, f)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _image_to_tiles(x: Array, t: int) -> Array:
    """(n, t*th, t*tw, f) -> (t, t, n, th, tw, f): the adjoint (and inverse) of
    :func:`_tiles_to_image`, as ``t`` strided row slices, each rearranged, stacked. (In a
    DCGAN step XLA fuses each slice with the BatchNorm and activation gradients before
    it. Paired A/B against ``t*t`` strided slices, the earlier form: DCGAN 32 0.978 and
    0.991, DCGAN 64 0.990, WGAN-GP 0.992; a single transpose was 1.013, the row slices
    stacked before one transpose 1.041, column slices 1.009 against the row slices.)"""
    n, h, w, f = x.shape
    rows = [x[:, u::t].reshape(n, h // t, w // t, t, f) for u in range(t)]
    return jnp.stack([r.transpose(3, 0, 1, 2, 4) for r in rows])


def _tiles_to_image_fwd(y):
    return _tiles_to_image(y), y.shape[0]


def _tiles_to_image_bwd(t, g):
    return (_image_to_tiles(g, t),)


def _image_to_tiles_fwd(x, t):
    return _image_to_tiles(x, t), None


def _image_to_tiles_bwd(t, _, g):
    return (_tiles_to_image(g),)


_tiles_to_image.defvjp(_tiles_to_image_fwd, _tiles_to_image_bwd)
_image_to_tiles.defvjp(_image_to_tiles_fwd, _image_to_tiles_bwd)


def check_kernel_layout(kernel_layout: str) -> None:
    """Raise unless ``kernel_layout`` is 'HWIO' or 'HWOI' (in and out axes swapped)."""
    if kernel_layout not in ("HWIO", "HWOI"):
        raise ValueError(f"kernel_layout must be 'HWIO' or 'HWOI', got {kernel_layout!r}")


@functools.partial(jax.jit, static_argnames=("precision", "kernel_layout"))
def conv_winograd(
    x: Array, kernel: Array, precision: Any = None, kernel_layout: str = "HWIO"
) -> Array:
    """'VALID' stride-1 convolution of x (n, h, w, c) with a (3, 3, c, f) or (2, 2, c, f)
    kernel (HWIO, cross-correlation like ``lax.conv_general_dilated``) -> (n, h - r + 1,
    w - r + 1, f), by F(2x2, 3x3) or F(4x4, 2x2).

    ``kernel_layout`` 'HWOI': the kernel is (r, r, f, c), and the matrix products take
    its transform as (f, c) matrices. For the adjoint of a convolution (a transposed
    convolution, ``layers.conv_transpose_adjoint``), whose input gradient then multiplies
    by those matrices as stored.

    Jitted so that JAX traces and differentiates it once per shape, not once per layer:
    tracing a CycleGAN generator's gradient (18 such convolutions) took 2.8 s without,
    0.5 s with (as long as with XLA's convolution). Inside another jit it is inlined.
    """
    r = kernel.shape[0]
    check_kernel_layout(kernel_layout)
    c_axis = 2 if kernel_layout == "HWIO" else 3
    if (
        x.ndim != 4
        or kernel.shape[:2] not in ((3, 3), (2, 2))
        or kernel.shape[c_axis] != x.shape[3]
    ):
        raise ValueError(
            "conv_winograd expects (n, h, w, c) and a (3, 3, c, f) or (2, 2, c, f) kernel "
            f"({kernel_layout}), got {x.shape} and {kernel.shape}"
        )
    n, h, w, _ = x.shape
    ho, wo = h - r + 1, w - r + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"conv_winograd needs an input of at least {r}x{r}, got {x.shape}")
    bt, g, at = transforms(r, n * ho * wo)
    t = len(at)  # outputs per tile and axis
    th, tw = -(-ho // t), -(-wo // t)
    # An output size that is not a multiple of t gets rows/columns of zeros, cropped at the end.
    x = jnp.pad(x, ((0, 0), (0, t * th + r - 1 - h), (0, t * tw + r - 1 - w), (0, 0)))
    v = _transform_input(x, bt, t, th, tw)
    spec = "tpc,tcf->tpf" if kernel_layout == "HWIO" else "tpc,tfc->tpf"
    m = jnp.einsum(spec, v, transform_kernel(kernel, g), precision=precision)
    return _transform_output(m, at, n, th, tw)[:, :ho, :wo]


_NHWC = ("NHWC", "HWIO", "NHWC")
# (batch, output H, W, in, out, padded with zeros): the table in the module docstring.
_BENCH_SHAPES = {
    "CycleGAN residual": (1, 32, 32, 256, 256, False),
    "CycleGAN residual 256": (1, 64, 64, 256, 256, False),
    "ESRGAN trunk": (4, 32, 32, 64, 64, True),
    "VGG19 conv2": (4, 64, 64, 128, 128, True),
    "VGG19 conv4": (4, 16, 16, 512, 512, True),
    "ESRGAN critic": (4, 64, 64, 64, 128, True),
    "VGG19 conv1_2": (4, 128, 128, 64, 64, True),
}


def _benchmark(repeats: int = 7) -> dict[str, tuple[float, float]]:
    """Median seconds of jit(value_and_grad of sum(y**2) wrt input and kernel) for XLA's
    convolution (padding as its attribute when zero-padded, as ``Conv`` runs them) and
    :func:`conv_winograd` of the padded input."""
    rng = np.random.default_rng(0)
    results = {}
    for name, (n, h, w, c, f, zero_padded) in _BENCH_SHAPES.items():
        x = jnp.asarray(rng.normal(size=(n, h + 2, w + 2, c)), jnp.float32)
        k = jnp.asarray(rng.normal(size=(3, 3, c, f)) / np.sqrt(9 * c), jnp.float32)
        if zero_padded:  # the same function as a convolution of the zero-padded input
            x = jnp.pad(x[:, 1:-1, 1:-1], ((0, 0), (1, 1), (1, 1), (0, 0)))
            xla = lambda x, k: jax.lax.conv_general_dilated(
                x[:, 1:-1, 1:-1], k, (1, 1), "SAME", dimension_numbers=_NHWC
            )
        else:
            xla = lambda x, k: jax.lax.conv_general_dilated(
                x, k, (1, 1), "VALID", dimension_numbers=_NHWC
            )
        times = []
        for conv in (xla, conv_winograd):
            loss = lambda x, k, conv=conv: jnp.sum(conv(x, k) ** 2)
            step = jax.jit(jax.value_and_grad(loss, (0, 1)))
            jax.block_until_ready(step(x, k))
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                jax.block_until_ready(step(x, k))
                ts.append(time.perf_counter() - t)
            times.append(float(np.median(ts)))
        results[name] = (times[0], times[1])
        shape = f"{n}, {h}x{w}, {c} -> {f}"
        print(
            f"{name:22s} {shape:22s} XLA {1e3 * times[0]:7.1f} ms  Winograd "
            f"{1e3 * times[1]:7.1f} ms  used: {use_winograd(x.shape, k.shape)}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    from jaxgan.host import reuse_freed_memory_on_cpu

    reuse_freed_memory_on_cpu()  # as the training loop does: no page faults per call
    _benchmark()
