"""Tests for jaxgan.nets.layers, jaxgan.nets.mlp and jaxgan.nets.dcgan (tiny, CPU)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.layers import (
    Conv,
    ConvTranspose,
    conv_padded,
    conv_strided,
    conv_taps,
    conv_transpose_polyphase,
    conv_transpose_same,
    conv_valid_few_outputs,
    count_params,
    pixel_shuffle,
    pixel_unshuffle,
)
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator

# An RBG key: on this CPU, XLA compiles each threefry sampler (the default PRNG, with
# jax_threefry_partitionable on) in seconds, RBG samplers in a fraction of a second.
KEY = jax.random.key(0, impl="rbg")


def _normal(seed: int, shape: tuple[int, ...]) -> jax.Array:
    """Test data from numpy (no PRNG compilation)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _numpy_init(module: nn.Module, *args, **kwargs) -> dict:
    """Variables shaped like ``module.init``'s, DCGAN-style values drawn by numpy.

    Kernels and biases N(0, 0.02^2), BatchNorm scales N(1, 0.02^2), running mean 0 and
    variance 1. Only ``jax.eval_shape`` runs the module: nothing is compiled, which saves
    seconds per test on a busy 2-core CPU (the real initialisers are tested on their own).
    """
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = path[-1].key
        if name == "var":
            return jnp.ones(leaf.shape, leaf.dtype)
        if name == "mean":
            return jnp.zeros(leaf.shape, leaf.dtype)
        value = 0.02 * rng.standard_normal(leaf.shape) + (name == "scale")
        return jnp.asarray(value, leaf.dtype)

    shapes = jax.eval_shape(lambda: module.init(KEY, *args, **kwargs))
    return jax.tree_util.tree_map_with_path(fill, shapes)


# ----------------------------------------------------------------------------- ConvTranspose


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize(
    ("hw", "cin", "cout", "use_bias"),
    [((1, 1), 3, 2, True), ((3, 5), 2, 5, False), ((4, 4), 4, 3, True), ((5, 2), 1, 1, False)],
)
def test_conv_transpose_matches_flax_values_and_grads(k, hw, cin, cout, use_bias):
    ours = ConvTranspose(cout, (k, k), (2, 2), use_bias=use_bias)
    ref = nn.ConvTranspose(cout, (k, k), strides=(2, 2), padding="SAME", use_bias=use_bias)
    x = _normal(1, (2, *hw, cin))
    # Same parameter names and shapes: flax's variables work in our module unchanged.
    shapes = jax.eval_shape(ref.init, KEY, x)
    assert jax.tree.map(jnp.shape, jax.eval_shape(ours.init, KEY, x)) == jax.tree.map(
        jnp.shape, shapes
    )
    variables = jax.tree.map(lambda a: _normal(a.size, a.shape), shapes)  # non-zero bias too
    cot = _normal(3, (2, 2 * hw[0], 2 * hw[1], cout))  # gradients of <y, cot>

    @jax.jit
    def outputs_and_grads(variables, x):
        def run(module):
            loss = lambda v, x: jnp.sum(module.apply(v, x) * cot)
            return module.apply(variables, x), jax.grad(loss, argnums=(0, 1))(variables, x)

        return run(ours), run(ref)

    (y, (g_v, g_x)), (y_ref, (g_v_ref, g_x_ref)) = outputs_and_grads(variables, x)
    assert y.shape == cot.shape
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    assert float(jnp.abs(y).max()) > 0.1
    np.testing.assert_allclose(g_v["params"]["kernel"], g_v_ref["params"]["kernel"], atol=1e-5)
    np.testing.assert_allclose(g_x, g_x_ref, atol=1e-5)
    if use_bias:
        np.testing.assert_allclose(g_v["params"]["bias"], cot.sum((0, 1, 2)), atol=1e-4)


def test_polyphase_equals_lax_conv_transpose_for_general_kernels_and_strides():
    # Includes k < s (phases that see no tap), s = 1, s = 3 and rectangular strides.
    x = _normal(4, (1, 3, 4, 2))
    cases = [(k, s) for k in (1, 2, 3, 4, 5) for s in ((1, 1), (2, 2), (3, 3), (2, 3))]
    kernels = [_normal(5 + k, (k, k, 2, 3)) for k, _ in cases]

    @jax.jit
    def forms(x, kernels):
        return [
            (
                jax.lax.conv_transpose(x, w, s, "SAME"),
                conv_transpose_polyphase(x, w, s),
                conv_transpose_same(x, w, s, impl="adjoint"),
                conv_transpose_same(x, w, s),  # 'auto'
            )
            for w, (_, s) in zip(kernels, cases, strict=True)
        ]

    for (k, s), (y_ref, *ys) in zip(cases, forms(x, kernels), strict=True):
        assert y_ref.shape == (1, 3 * s[0], 4 * s[1], 3)
        for y in ys:
            np.testing.assert_allclose(y, y_ref, atol=1e-5, err_msg=f"k={k} s={s}")


def test_conv_transpose_impls_agree_and_polyphase_avoids_dilated_conv():
    x, kernel = _normal(10, (2, 3, 3, 4)), _normal(11, (4, 4, 4, 2))
    impls = ("auto", "polyphase", "adjoint", "dilated")
    outs = jax.jit(lambda x, k: [conv_transpose_same(x, k, (2, 2), impl=i) for i in impls])(
        x, kernel
    )
    for out in outs[:3]:
        np.testing.assert_allclose(out, outs[3], atol=1e-5)

    # Gradient-penalty-like second derivatives agree too.
    def gp(impl):
        def f(k):
            gx = jax.grad(
                lambda x: jnp.sum(jnp.tanh(conv_transpose_same(x, k, (2, 2), impl=impl)))
            )(x)
            return jnp.sum(gx**2)

        return jax.grad(f)(kernel)

    np.testing.assert_allclose(gp("adjoint"), gp("dilated"), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gp("polyphase"), gp("dilated"), rtol=1e-4, atol=1e-4)
    # The polyphase form lowers to stride-1 convolutions only (no lhs dilation), also in grad.
    for impl, n_dilated in (("polyphase", 0), ("dilated", 2)):
        loss = lambda k, impl=impl: jnp.sum(conv_transpose_same(x, k, (2, 2), impl=impl) ** 2)
        hlo = jax.jit(jax.grad(loss)).lower(kernel).as_text()
        assert "convolution" in hlo and hlo.count("lhs_dilate = [2, 2]") == n_dilated
    with pytest.raises(ValueError, match="impl"):
        conv_transpose_same(x, kernel, (2, 2), impl="fft")


CONV_CASES = [
    # kernel, strides, padding, features: strided (space-to-depth, also when the stride does
    # not divide the kernel), few outputs (one matrix product + shifted sums), zero-padded
    # 3x3 (the padding as a convolution attribute), padded or unpadded (tiled when large).
    ((4, 4), (2, 2), ((1, 1), (1, 1)), 5),
    ((3, 3), (2, 2), "SAME", 4),
    ((7, 5), (3, 2), ((2, 0), (3, 1)), 3),
    ((7, 7), (1, 1), "VALID", 3),
    ((4, 4), (1, 1), ((1, 2), (1, 2)), 1),
    ((3, 3), (1, 1), 1, 40),
    ((4, 4), (1, 1), 1, 20),
    ((3, 3), (1, 1), "VALID", 30),
    # a kernel as large as the (padded) input: one output pixel, a matrix product
    ((13, 11), (1, 1), "VALID", 3),
    ((15, 12), (2, 3), ((1, 1), (0, 1)), 2),
]


@pytest.mark.parametrize("kernel_size, strides, padding, features", CONV_CASES)
def test_conv_equals_flax_conv_values_grads_and_gradient_penalty(
    kernel_size, strides, padding, features
):
    _check_conv_against_flax(kernel_size, strides, padding, features)


@pytest.mark.parametrize(
    "kernel_size, strides, padding, features",
    [CONV_CASES[0], ((6, 4), (3, 2), ((2, 1), (0, 3)), 3)],
)
def test_strided_conv_with_space_to_depth_input_gradient_equals_flax(
    monkeypatch, kernel_size, strides, padding, features
):
    """Large inputs (``_DX_SPACE_TO_DEPTH_MIN_PIXELS``, ``_DX_SPACE_TO_DEPTH_MIN_CHANNELS``;
    kernels a multiple of the stride) take the input gradient, and so the penalty's second
    derivatives, through the space-to-depth form."""
    from jaxgan.nets import layers

    x, kernel = _normal(26, (2, 13, 11, 6)), _normal(27, (*kernel_size, 6, features))
    pads = padding  # both cases give explicit (lo, hi) pairs

    def lhs_dilated_input_gradient() -> bool:
        loss = lambda x: jnp.sum(jnp.sin(conv_strided(x, kernel, strides, pads)))
        hlo = jax.jit(jax.grad(loss)).lower(x).as_text()
        return any(d != ("1", "1") for d in re.findall(r"lhs_dilate = \[(\d+), (\d+)\]", hlo))

    assert lhs_dilated_input_gradient()  # a small input: XLA's lhs-dilated form
    monkeypatch.setattr(layers, "_DX_SPACE_TO_DEPTH_MIN_PIXELS", 0)
    monkeypatch.setattr(layers, "_DX_SPACE_TO_DEPTH_MIN_CHANNELS", 0)
    assert not lhs_dilated_input_gradient()
    _check_conv_against_flax(kernel_size, strides, padding, features)


@pytest.mark.parametrize(
    "shape, strides, padding",
    [
        ((2, 8, 8, 3), (2, 2), ((1, 1), (1, 1))),  # DCGAN's 4x4 stride-2 layers
        ((1, 13, 11, 2), (3, 2), ((2, 1), (0, 3))),  # unequal strides, rows past the last window
        ((1, 4, 4, 2), (2, 2), ((3, 3), (0, 5))),  # pads beyond the input: all-zero phases
    ],
)
def test_space_to_depth_equals_pad_and_transpose_to_second_order(shape, strides, padding):
    """``space_to_depth`` (phase planes, custom VJP) is the pad + 6-D transpose it
    replaces: values, gradient (its adjoint, the cropped depth-to-space) and the gradient of
    a squared input gradient, for the operands of 4x4 and 6x4 strided kernels."""
    from jaxgan.nets.layers import space_to_depth_operands

    kh, kw = 2 * strides[0], 2 * strides[1]
    x, kernel = _normal(40, shape), _normal(41, (kh, kw, shape[-1], 3))
    b, h, w, c = shape
    (sh, sw), ((plh, phh), (plw, phw)) = strides, padding
    ho, wo = (h + plh + phh - kh) // sh + 1, (w + plw + phw - kw) // sw + 1
    lh, lw = sh * (ho + 1), sw * (wo + 1)  # rows and columns the windows read

    def reference(x):
        pads = ((0, 0), (plh, max(0, lh - h - plh)), (plw, max(0, lw - w - plw)), (0, 0))
        x = jnp.pad(x, pads)[:, :lh, :lw].reshape(b, lh // sh, sh, lw // sw, sw, c)
        return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, lh // sh, lw // sw, sh * sw * c)

    ours = lambda x: space_to_depth_operands(x, kernel, strides, padding)[0]
    want = reference(x)
    np.testing.assert_array_equal(ours(x), want)
    g = _normal(42, want.shape)
    np.testing.assert_array_equal(jax.vjp(ours, x)[1](g)[0], jax.vjp(reference, x)[1](g)[0])
    # The adjoint's own gradient (a transposed convolution's backward pass) is
    # space_to_depth again, phase planes without a transpose.
    adjoint = lambda g: jax.vjp(ours, x)[1](g)[0]
    x2 = _normal(43, shape)
    np.testing.assert_array_equal(jax.vjp(adjoint, g)[1](x2)[0], want_of_x2 := reference(x2))
    hlo = jax.jit(lambda g: jax.vjp(adjoint, g)[1](x2)[0]).lower(g).as_text()
    assert "stablehlo.transpose" not in hlo and want_of_x2.shape == g.shape

    def penalty(f):
        grad = jax.grad(lambda v: jnp.sum(jnp.sin(f(v)) * g))
        return jax.grad(lambda v: jnp.sum(grad(v) ** 2))(x)

    np.testing.assert_allclose(penalty(ours), penalty(reference), rtol=1e-5, atol=1e-6)


def _check_conv_against_flax(kernel_size, strides, padding, features):
    x = _normal(20, (2, 13, 11, 6))
    ours = Conv(features, kernel_size, strides, padding=padding)
    ref = nn.Conv(features, kernel_size, strides, padding=padding)
    variables = ref.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(ours.init(jax.random.PRNGKey(0), x)) == jax.tree.structure(variables)

    def penalised(module):
        # A WGAN-GP-like objective: the output and the squared input gradient, whose
        # parameter gradient is a second derivative of the convolution.
        def f(v, x):
            y = module.apply(v, x)
            gx = jax.grad(lambda x: jnp.sum(jnp.tanh(module.apply(v, x))))(x)
            return jnp.sum(jnp.sin(y)) + jnp.sum(gx**2)

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

    (val, grads), (val_ref, grads_ref) = penalised(ours)(variables, x), penalised(ref)(variables, x)
    np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=2e-5)
    np.testing.assert_allclose(val, val_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
def test_conv_transpose_auto_picks_polyphase_only_for_small_wide_layers_on_cpu():
    # A DCGAN generator's first upsampling (4x4 input, >= 128 outputs): polyphase; a larger
    # input, or fewer output channels: the adjoint of a strided convolution.
    def forms(x_shape, k_shape, impl):
        x, k = jnp.zeros(x_shape), jnp.zeros(k_shape)
        loss = lambda x, k: jnp.sum(conv_transpose_same(x, k, (2, 2), impl=impl) ** 2)
        return _convolution_forms(jax.jit(jax.grad(loss, (0, 1))).lower(x, k).as_text())

    cases = [
        ((2, 4, 4, 8), (4, 4, 8, 128), "polyphase"),
        ((2, 16, 16, 8), (4, 4, 8, 128), "adjoint"),
        ((2, 4, 4, 8), (4, 4, 8, 64), "adjoint"),
    ]
    for x_shape, k_shape, expected in cases:
        auto = forms(x_shape, k_shape, "auto")
        other = "adjoint" if expected == "polyphase" else "polyphase"
        assert auto == forms(x_shape, k_shape, expected), (x_shape, k_shape)
        assert auto != forms(x_shape, k_shape, other), (x_shape, k_shape)


def _convolution_forms(hlo: str) -> set[str]:
    """(dimension numbers, window) of every convolution in a StableHLO text."""
    forms = set()
    for line in hlo.splitlines():
        if "stablehlo.convolution" in line:
            dims = re.search(r"dim_numbers = (.*?), window", line).group(1)
            forms.add(dims + " " + re.search(r"window = \{[^}]*\}", line).group(0))
    return forms


def test_conv_strided_second_derivatives_use_only_its_three_forms():
    """A gradient penalty's parameter gradient through ``conv_strided`` runs only the
    forward convolution, its input gradient and its weight gradient (in the forms of a
    first-order backward pass); through ``lax.conv_general_dilated`` it needs a fourth,
    transposed form (the one XLA on CPU runs ~30x slower)."""
    x, kernel = _normal(21, (2, 8, 8, 3)), _normal(22, (4, 4, 3, 4))
    pads = ((1, 1), (1, 1))
    direct = lambda x, k: jax.lax.conv_general_dilated(
        x, k, (2, 2), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    trio = lambda x, k: conv_strided(x, k, (2, 2), pads)

    def first_order(conv):
        loss = lambda x, k: jnp.sum(jnp.tanh(conv(x, k)))
        return jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, kernel).as_text()

    def penalty(conv):
        def gp(k):
            gx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, k))))(x)
            return jnp.sum(gx**2)

        return jax.jit(jax.grad(gp)).lower(kernel).as_text()

    three = _convolution_forms(first_order(trio))
    assert len(three) == 3
    assert _convolution_forms(penalty(trio)) <= three
    assert len(_convolution_forms(first_order(direct))) == 3
    assert not _convolution_forms(penalty(direct)) <= _convolution_forms(first_order(direct))
    with pytest.raises(ValueError, match="impl"):
        Conv(2, impl="fft").init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="padding"):
        Conv(2, padding="FULL").init(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize(
    "x_hw, k_hw, strides, pads",
    [
        ((8, 8), (4, 4), (2, 2), ((1, 1), (1, 1))),  # DCGAN's layers
        ((9, 7), (3, 3), (2, 2), ((1, 1), (1, 1))),  # 2 does not divide 9 + 2 - 3
        ((13, 6), (2, 3), (3, 2), ((0, 2), (2, 0))),  # rows past the last window dropped
    ],
)
def test_conv_strided_weight_gradient_is_an_ordinary_convolution(x_hw, k_hw, strides, pads):
    """``conv_strided``'s weight gradient equals JAX's and is written as an NHWC/HWIO
    convolution with an rhs dilation, channels as the batch: the form XLA on CPU runs fast
    also inside a loop body. JAX's own is not in that form (a WGAN-GP step with its critic
    updates under ``lax.scan`` took 1.31-1.35 s, 0.43 s with this form)."""
    x, kernel = _normal(23, (2, *x_hw, 3)), _normal(24, (*k_hw, 3, 5))
    direct = lambda x, k: jax.lax.conv_general_dilated(
        x, k, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    mine = lambda x, k: conv_strided(x, k, strides, pads)
    loss = lambda f: lambda k: jnp.sum(jnp.sin(f(x, k)))
    want = jax.grad(loss(direct))(kernel)
    np.testing.assert_allclose(jax.grad(loss(mine))(kernel), want, rtol=1e-5, atol=1e-5)

    def dims_in_a_loop(f):
        def body(k, _):
            return k - 1e-3 * jax.grad(loss(f))(k), None

        scanned = lambda k: jax.lax.scan(body, k, None, length=2)[0]
        return _conv_dims(jax.jit(scanned).lower(kernel).as_text())

    assert dims_in_a_loop(mine) == [_ORDINARY, _ORDINARY]  # forward, weight gradient
    assert dims_in_a_loop(direct)[1] != _ORDINARY


def test_zero_padded_3x3_conv_keeps_the_padding_as_a_convolution_attribute():
    """On CPU a zero-padded 3x3 stride-1 Conv is one convolution with its padding as the
    attribute (no padded copy of the input), forward and backward; other kernels pad."""
    x = _normal(28, (2, 9, 9, 4))

    def hlo(kernel_size):
        conv = Conv(32, kernel_size, padding=1)  # 32 outputs: not the few-output form
        v = conv.init(jax.random.PRNGKey(0), x)
        loss = lambda v, x: jnp.sum(jnp.sin(conv.apply(v, x)))
        return jax.jit(jax.grad(loss, argnums=(0, 1))).lower(v, x).as_text()

    three = hlo((3, 3))
    assert "stablehlo.pad" not in three and "pad = [[1, 1], [1, 1]]" in three
    assert "stablehlo.pad" in hlo((4, 4))


_ORDINARY = "[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]"


def _conv_dims(hlo: str) -> list[str]:
    return re.findall(r"dim_numbers = (\[[^\]]*\]x\[[^\]]*\]->\[[^\]]*\])", hlo)


def _lax_conv(pads):
    return lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _sin_loss_grads(f):
    """``(x, k) -> (d/dx, d/dk) sum(sin(f(x, k)))``."""
    return jax.grad(lambda x, k: jnp.sum(jnp.sin(f(x, k))), argnums=(0, 1))


def _assert_equals_lax_conv_to_second_order(mine, pads, x, kernel, value_atol):
    """``mine(x, kernel)`` equals the stride-1 ``lax`` convolution with ``pads``: values,
    both first derivatives, and a gradient penalty's second derivatives (kernel)."""
    plain = _lax_conv(pads)
    np.testing.assert_allclose(mine(x, kernel), plain(x, kernel), atol=value_atol)
    for a, b in zip(
        _sin_loss_grads(mine)(x, kernel), _sin_loss_grads(plain)(x, kernel), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    input_grad = lambda f, k: jax.grad(lambda x: jnp.sum(jnp.sin(f(x, k))))(x)
    penalty = lambda f: jax.grad(lambda k: jnp.sum(input_grad(f, k) ** 2))
    np.testing.assert_allclose(penalty(mine)(kernel), penalty(plain)(kernel), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((0, 2), (2, 1))])
def test_conv_padded_equals_lax_conv_to_second_order_with_ordinary_gradients(pads):
    x, kernel = _normal(40, (2, 7, 6, 5)), _normal(41, (3, 3, 5, 4))
    mine = lambda x, k: conv_padded(x, k, pads)
    _assert_equals_lax_conv_to_second_order(mine, pads, x, kernel, 1e-5)
    # Forward, input and weight gradients are all ordinary NHWC/HWIO convolutions; JAX's
    # own rules are not (XLA on CPU runs those slowly inside a loop body).
    lowered = lambda f: jax.jit(_sin_loss_grads(f)).lower(x, kernel).as_text()
    plain = _lax_conv(pads)
    assert _conv_dims(lowered(mine)) == [_ORDINARY] * 3
    assert set(_conv_dims(lowered(plain))) != {_ORDINARY}


@pytest.mark.parametrize(
    "k_hw, pads",
    [
        ((3, 3), ((1, 1), (1, 1))),
        ((3, 3), ((0, 2), (2, 1))),
        ((2, 4), ((1, 0), (3, 2))),
        ((3, 3), ((3, -1), (0, 4))),  # pads at or beyond the kernel's size, and a crop
    ],
)
def test_conv_taps_equals_lax_conv_to_second_order_as_matrix_products(k_hw, pads):
    x, kernel = _normal(42, (2, 7, 6, 5)), _normal(43, (*k_hw, 5, 4))
    mine = lambda x, k: conv_taps(x, k, pads)
    _assert_equals_lax_conv_to_second_order(mine, pads, x, kernel, 1e-5)
    # No convolution at all, forward or backward: three matrix products.
    hlo = jax.jit(_sin_loss_grads(mine)).lower(x, kernel).as_text()
    assert "convolution" not in hlo and hlo.count("stablehlo.dot_general") == 3


@pytest.mark.parametrize("x_shape, taps", [((2, 20, 17, 6), True), ((3, 6, 5, 6), False)])
def test_conv_valid_few_outputs_equals_lax_conv_to_second_order(x_shape, taps):
    """Its backward pass is conv_taps's matrix products from _FEW_TAPS_MIN_PIXELS output
    pixels (here 2 x 16 x 12 = 384), XLA's convolutions below (3 x 2 x 1 = 6)."""
    x, kernel = _normal(45, x_shape), _normal(46, (5, 5, 6, 3))
    valid = ((0, 0), (0, 0))
    _assert_equals_lax_conv_to_second_order(conv_valid_few_outputs, valid, x, kernel, 1e-4)
    hlo = jax.jit(_sin_loss_grads(conv_valid_few_outputs)).lower(x, kernel).as_text()
    assert ("stablehlo.convolution" in hlo) == (not taps)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
def test_conv_routes_narrow_outputs_of_wide_inputs_to_conv_taps_and_equals_flax():
    """ESRGAN's dense layers (a 3x3 zero-padded Conv with 32 outputs of at least 32 input
    channels) run as conv_taps on CPU: matrix products only, equal to flax's Conv."""
    from jaxgan.nets.layers import use_taps

    assert use_taps(64, 32) and use_taps(160, 32) and not use_taps(16, 32)
    assert not use_taps(192, 64)  # Winograd's, above 32 outputs
    x = _normal(44, (2, 9, 8, 40))
    ours, ref = Conv(32, (3, 3), padding=1), nn.Conv(32, (3, 3), padding=1)
    variables = ref.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=2e-5)
    loss = lambda m: lambda v, x: jnp.sum(jnp.sin(m.apply(v, x)))
    grads = lambda m: jax.grad(loss(m), argnums=(0, 1))
    got, want = grads(ours)(variables, x), grads(ref)(variables, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    hlo = jax.jit(grads(ours)).lower(variables, x).as_text()
    assert "stablehlo.convolution" not in hlo and "stablehlo.dot_general" in hlo


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
@pytest.mark.parametrize("transposed", [False, True])
def test_rgb_layers_input_gradient_is_a_matrix_product_and_equals_flax(transposed):
    """A DCGAN critic's RGB input layer (4x4 stride 2 from 3 channels) and a generator's
    RGB output layer: the gradient into the 3-channel side is one matrix product over the
    taps plus shifted sums (``_conv_dx_taps``), no lhs-dilated convolution; values,
    gradients and a penalty's second derivatives equal flax's."""
    if transposed:
        x = _normal(46, (2, 8, 9, 6))
        ours = ConvTranspose(3, (4, 4), (2, 2))
        ref = nn.ConvTranspose(3, (4, 4), (2, 2), padding="SAME")
    else:
        x = _normal(46, (2, 16, 18, 3))
        ours = Conv(6, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
        ref = nn.Conv(6, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
    v = ref.init(jax.random.PRNGKey(0), x)

    def penalised(module):
        def f(v, x):
            y = module.apply(v, x)
            gx = jax.grad(lambda x: jnp.sum(jnp.tanh(module.apply(v, x))))(x)
            return jnp.sum(jnp.sin(y)) + jnp.sum(gx**2)

        return jax.value_and_grad(f, argnums=(0, 1))

    np.testing.assert_allclose(ours.apply(v, x), ref.apply(v, x), rtol=1e-5, atol=2e-5)
    (val, grads), (val_ref, grads_ref) = penalised(ours)(v, x), penalised(ref)(v, x)
    np.testing.assert_allclose(val, val_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))
    if transposed:  # the forward pass writes the 3-channel side
        rgb_side = lambda v, x: ours.apply(v, x)
    else:  # the input gradient does
        rgb_side = lambda v, x: jax.grad(lambda x: jnp.sum(jnp.sin(ours.apply(v, x))))(x)
    hlo = jax.jit(rgb_side).lower(v, x).as_text()
    assert "stablehlo.dot_general" in hlo
    assert not re.search(r"lhs_dilate = \[(?!1, 1\])", hlo)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
def test_conv_whose_kernel_covers_the_input_is_one_matrix_product():
    """A DCGAN critic's last layer (4x4 'VALID' on a 4x4 map): a matrix product, no
    convolution, forward and backward; a kernel one pixel smaller stays a convolution."""
    from jaxgan.nets.layers import conv_whole_input

    x = _normal(45, (3, 4, 4, 16))
    for size, expect_conv in ((4, False), (3, True)):
        m = Conv(1, (size, size), padding="VALID")
        v = m.init(jax.random.PRNGKey(0), x)
        loss = lambda v, x, m=m: jnp.sum(jnp.sin(m.apply(v, x)))
        hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(v, x).as_text()
        assert ("stablehlo.convolution" in hlo) == expect_conv
        assert expect_conv or "stablehlo.dot_general" in hlo
    with pytest.raises(ValueError, match="does not cover"):
        conv_whole_input(x, jnp.zeros((3, 4, 16, 1)))


def test_conv_valid_tiled_equals_one_convolution(monkeypatch):
    from jaxgan.nets import layers

    monkeypatch.setattr(layers, "_TILE_BYTES", 4096)  # force 3 x 3 tiles on a small input
    x, kernel = _normal(24, (2, 28, 30, 5)), _normal(25, (3, 3, 5, 4))
    plain = lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(layers.conv_valid_tiled(x, kernel), plain(x, kernel), atol=1e-5)
    grads = lambda f: jax.grad(lambda x, k: jnp.sum(jnp.sin(f(x, k))), argnums=(0, 1))(x, kernel)
    for a, b in zip(grads(layers.conv_valid_tiled), grads(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    hlo = jax.jit(layers.conv_valid_tiled).lower(x, kernel).as_text()
    assert hlo.count("stablehlo.convolution") == 9


@pytest.mark.parametrize("impl", ["direct", "space_to_depth"])
def test_conv_other_impls_equal_auto(impl):
    x = _normal(23, (2, 9, 9, 5))
    auto, other = Conv(6, (4, 4), (2, 2), padding=1), Conv(6, (4, 4), (2, 2), padding=1, impl=impl)
    variables = auto.init(jax.random.PRNGKey(0), x)
    loss = lambda m: jax.grad(lambda v: jnp.sum(jnp.sin(m.apply(v, x))))(variables)
    for a, b in zip(jax.tree.leaves(loss(auto)), jax.tree.leaves(loss(other)), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_conv_transpose_default_init_equals_flax_and_custom_init_is_used():
    x = jnp.zeros((1, 2, 2, 8))
    modules = (
        ConvTranspose(16, (4, 4), (2, 2)),
        nn.ConvTranspose(16, (4, 4), strides=(2, 2)),
        ConvTranspose(16, 4, 2, kernel_init=nn.initializers.normal(0.02)),
    )
    ours, ref, custom = jax.jit(lambda key: [m.init(key, x)["params"] for m in modules])(KEY)
    np.testing.assert_array_equal(ours["kernel"], ref["kernel"])  # lecun_normal, same rng
    np.testing.assert_array_equal(ours["bias"], np.zeros(16))
    assert abs(float(jnp.std(custom["kernel"])) - 0.02) < 0.003
    assert abs(float(jnp.std(ours["kernel"])) - 1 / np.sqrt(4 * 4 * 8)) < 0.01  # lecun


def test_conv_transpose_dtypes_batch_dims_and_bad_padding():
    x = _normal(12, (2, 3, 2, 2, 3))  # two leading batch axes
    layer = ConvTranspose(4, 3, 2, dtype=jnp.bfloat16, param_dtype=jnp.float32)
    shapes = jax.eval_shape(layer.init, KEY, x)
    assert shapes["params"]["kernel"].dtype == jnp.float32
    variables = jax.tree.map(lambda a: _normal(a.size, a.shape), shapes)
    ref = nn.ConvTranspose(4, (3, 3), strides=(2, 2))
    y, y32, y_ref = jax.jit(
        lambda v, x: [m.apply(v, x) for m in (layer, ConvTranspose(4, 3, 2), ref)]
    )(variables, x)
    assert y.dtype == jnp.bfloat16 and y.shape == (2, 3, 4, 4, 4)
    np.testing.assert_allclose(y.astype(jnp.float32), y32, atol=0.1, rtol=0.02)
    assert float(jnp.abs(y.astype(jnp.float32) - y32).max()) > 0  # really computed in bf16
    np.testing.assert_allclose(y32, y_ref, atol=1e-5)
    p16 = jax.eval_shape(ConvTranspose(4, 3, 2, param_dtype=jnp.bfloat16).init, KEY, x)
    assert p16["params"]["kernel"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="SAME"):
        ConvTranspose(4, 3, 2, padding="VALID").init(KEY, x)


# ----------------------------------------------------------------------------- pixel shuffle


def test_pixel_shuffle_hand_checked_example():
    # One pixel, 2 output channels, r = 2: out[0, i, j, c] = x[0, 0, 0, 4c + 2i + j].
    x = jnp.arange(8.0).reshape(1, 1, 1, 8)
    y = pixel_shuffle(x, 2)
    assert y.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(y[0, :, :, 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(y[0, :, :, 1], [[4, 5], [6, 7]])
    # Two pixels side by side: the second one's block lands at columns 2..3.
    x2 = jnp.arange(8.0).reshape(1, 1, 2, 4)
    np.testing.assert_array_equal(pixel_shuffle(x2, 2)[0, :, :, 0], [[0, 1, 4, 5], [2, 3, 6, 7]])
    np.testing.assert_array_equal(pixel_unshuffle(y, 2), x)


def test_pixel_shuffle_formula_and_round_trip():
    r, c = 3, 2
    x = _normal(20, (2, 2, 3, c * r * r))
    y = np.asarray(pixel_shuffle(x, r))
    xn = np.asarray(x)
    expected = np.empty((2, 6, 9, c), np.float32)
    for h in range(2):
        for w in range(3):
            for i in range(r):
                for j in range(r):
                    for ch in range(c):
                        expected[:, h * r + i, w * r + j, ch] = xn[:, h, w, ch * r * r + i * r + j]
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(pixel_unshuffle(pixel_shuffle(x, r), r), x)
    z = _normal(21, (1, 4, 6, 3))
    np.testing.assert_array_equal(pixel_shuffle(pixel_unshuffle(z, 2), 2), z)
    with pytest.raises(ValueError, match="divisible"):
        pixel_shuffle(jnp.zeros((1, 2, 2, 3)), 2)
    with pytest.raises(ValueError, match="divisible"):
        pixel_unshuffle(jnp.zeros((1, 3, 2, 1)), 2)


# ----------------------------------------------------------------------------- MLP


def test_mlp_generator_shapes_and_output_modes():
    z = 3.0 * _normal(30, (4, 5))
    g_tanh = MLPGenerator(out_shape=(3, 3, 1), hidden=(8, 8))
    g_lin = MLPGenerator(out_shape=(3, 3, 1), hidden=(8, 8), output="linear")
    points = MLPGenerator(out_shape=(2,), hidden=(8,), output="linear")

    @jax.jit
    def run(key, z):
        params = g_tanh.init(key, z)
        y_points = points.apply(points.init(key, z), z, train=False)
        return g_tanh.apply(params, z), g_lin.apply(params, z), y_points

    y, y_lin, y_points = run(KEY, z)
    assert y.shape == (4, 3, 3, 1) and float(jnp.max(jnp.abs(y))) <= 1.0
    # The linear head is the same network without the tanh, and leaves [-1, 1].
    np.testing.assert_allclose(y, jnp.tanh(y_lin), atol=1e-6)
    assert float(jnp.max(jnp.abs(y_lin))) > 1.0
    assert y_points.shape == (4, 2)
    with pytest.raises(ValueError, match="output"):
        MLPGenerator(out_shape=(2,), output="sigmoid").init(KEY, z)


def test_mlp_discriminator_flattens_and_counts_params():
    d = MLPDiscriminator(hidden=(8,))
    lin = MLPDiscriminator(hidden=(8,), negative_slope=1.0)  # LeakyReLU(slope 1) = identity
    x = _normal(31, (3, 2, 2, 1))
    a, b = x[:1], x[1:2]

    @jax.jit
    def run(key, x):
        params = d.init(key, x)
        f, g = (lambda x: lin.apply(params, x)), (lambda x: d.apply(params, x))
        affine = (f(a + b) - f(b), f(a) - f(0 * a))
        leaky = (g(a + b) - g(b), g(a) - g(0 * a))
        return params, g(x), g(x.reshape(3, 4)), affine, leaky

    params, logits, logits_flat, affine, leaky = run(KEY, x)
    assert logits.shape == (3,)
    np.testing.assert_allclose(logits_flat, logits, atol=1e-6)
    assert count_params(params) == 4 * 8 + 8 + 8 + 1  # Dense(4 -> 8) + Dense(8 -> 1)
    np.testing.assert_allclose(*affine, atol=1e-5)  # slope 1: affine in x
    assert not np.allclose(*leaky, atol=1e-5)  # slope 0.2: not affine


# ----------------------------------------------------------------------------- DCGAN


@pytest.mark.parametrize(("resolution", "base"), [(8, 8), (16, 4), (32, 4), (64, 2)])
def test_dcgan_shapes_and_tanh_range(resolution, base):
    z = 5.0 * _normal(40, (2, 6))
    g = DCGANGenerator(resolution=resolution, channels=3, base_features=base)
    d = DCGANDiscriminator(resolution, channels=3, base_features=base)
    last = f"ConvTranspose_{resolution.bit_length() - 4}"

    g_vars = _numpy_init(g, z, train=False)
    # A final layer 1e4 times larger saturates the tanh: outputs stay in [-1, 1].
    big = jax.tree.map(lambda a: a, g_vars)
    big["params"][last]["kernel"] = 1e4 * big["params"][last]["kernel"]
    x_shape = (2, resolution, resolution, 3)
    d_vars = _numpy_init(d, jnp.zeros(x_shape), train=False)

    @jax.jit
    def run(g_vars, d_vars, z):
        x, _ = g.apply(g_vars, z, train=True, mutable=["batch_stats"])
        logits, _ = d.apply(d_vars, x, train=True, mutable=["batch_stats"])
        return x, logits

    x, logits = run(big, d_vars, z)
    assert x.shape == x_shape and logits.shape == (2,)
    assert float(jnp.max(jnp.abs(x))) <= 1.0
    assert float(jnp.max(x)) > 0.999 and float(jnp.min(x)) < -0.999
    assert bool(jnp.all(jnp.isfinite(logits))) and float(jnp.abs(logits).max()) > 0
    # Eval mode, and the critics without BatchNorm: shapes only (no compilation).
    x_eval = jax.eval_shape(lambda: g.apply(g_vars, z, train=False))
    assert x_eval.shape == x_shape and x_eval.dtype == jnp.float32
    for norm in ("batch", "layer", "none"):
        critic = DCGANDiscriminator(resolution, channels=3, base_features=base, norm=norm)
        c_vars = _numpy_init(critic, x, train=False)
        assert jax.eval_shape(lambda c=critic, v=c_vars: c.apply(v, x, train=False)).shape == (2,)


def test_dcgan_feature_widths_follow_the_paper():
    g = DCGANGenerator(resolution=64, channels=3, base_features=64)
    shapes = jax.eval_shape(lambda: g.init(KEY, jnp.zeros((1, 100)), train=False))["params"]
    assert shapes["Dense_0"]["kernel"].shape == (100, 4 * 4 * 512)
    widths = [shapes[f"ConvTranspose_{i}"]["kernel"].shape[-1] for i in range(4)]
    assert widths == [256, 128, 64, 3]
    assert "bias" not in shapes["ConvTranspose_0"] and "bias" in shapes["ConvTranspose_3"]
    d = DCGANDiscriminator(resolution=64, channels=3, base_features=64)
    shapes = jax.eval_shape(lambda: d.init(KEY, jnp.zeros((1, 64, 64, 3)), train=False))
    widths = [shapes["params"][f"Conv_{i}"]["kernel"].shape[-1] for i in range(5)]
    assert widths == [64, 128, 256, 512, 1]
    assert count_params(shapes["params"]) == (
        16 * 3 * 64 + 64 + 16 * (64 * 128 + 128 * 256 + 256 * 512) + 2 * (128 + 256 + 512)
    ) + (16 * 512 + 1)


def test_dcgan_init_statistics():
    g = DCGANGenerator(resolution=8, channels=3, base_features=256)
    variables = jax.jit(lambda key: g.init(key, jnp.zeros((1, 8)), train=False))(KEY)
    params = variables["params"]
    # BatchNorm running statistics start at mean 0, variance 1.
    assert set(variables) == {"params", "batch_stats"}
    np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["mean"], np.zeros(256))
    np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["var"], np.ones(256))
    for kernel in (params["Dense_0"]["kernel"], params["ConvTranspose_0"]["kernel"]):
        assert kernel.size >= 4 * 4 * 256 * 3
        assert abs(float(jnp.mean(kernel))) < 0.002 and abs(float(jnp.std(kernel)) - 0.02) < 0.002
    scale = params["BatchNorm_0"]["scale"]  # 256 values
    assert abs(float(jnp.mean(scale)) - 1.0) < 0.01 and 0.015 < float(jnp.std(scale)) < 0.025
    np.testing.assert_array_equal(params["BatchNorm_0"]["bias"], 0.0)
    np.testing.assert_array_equal(params["ConvTranspose_0"]["bias"], 0.0)


def test_dcgan_batch_norm_stats_are_collected_and_updated():
    g = DCGANGenerator(resolution=16, channels=1, base_features=4)
    z = _normal(50, (4, 3))
    z2 = z.at[1:].multiply(3.0)  # same first sample, different rest of the batch
    variables = _numpy_init(g, z, train=False)
    assert jax.tree.map(jnp.shape, variables["batch_stats"]) == {
        "BatchNorm_0": {"mean": (8,), "var": (8,)},  # after the Dense: 4x4x8
        "BatchNorm_1": {"mean": (4,), "var": (4,)},  # after the first ConvTranspose: 8x8x4
    }

    @jax.jit
    def run(variables, z, z2):
        (x, mutated), (x2, _) = [
            g.apply(variables, zz, train=True, mutable=["batch_stats"]) for zz in (z, z2)
        ]
        _, inter = g.apply(
            variables, z, train=False, capture_intermediates=True, mutable=["intermediates"]
        )
        dense_out = inter["intermediates"]["Dense_0"]["__call__"][0]
        evals = g.apply(variables, z, train=False), g.apply(variables, z2, train=False)
        return mutated, dense_out, (x, x2), evals

    mutated, dense_out, (x, x2), (e, e2) = run(variables, z, z2)
    # Momentum 0.9: running = 0.9 * old + 0.1 * batch statistic of the Dense output.
    h = dense_out.reshape(4, 4, 4, 8)
    new = mutated["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(new["mean"], 0.1 * h.mean((0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * h.var((0, 1, 2)), rtol=1e-4)
    new1 = mutated["batch_stats"]["BatchNorm_1"]
    assert float(jnp.abs(new1["mean"]).min()) > 0 and not np.allclose(new1["var"], 1.0)
    # Train mode mixes the batch; eval mode treats every sample on its own.
    assert not np.allclose(x[0], x2[0], atol=1e-4)
    np.testing.assert_allclose(e[0], e2[0], atol=1e-6)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_dcgan_critic_without_batch_norm_is_per_sample(norm):
    d = DCGANDiscriminator(resolution=16, channels=1, base_features=4, norm=norm)
    x = _normal(60, (3, 16, 16, 1))

    variables = _numpy_init(d, x)

    @jax.jit
    def run(variables, x):
        logits2 = d.apply(variables, x.at[1:].set(0.0))
        grad = jax.grad(lambda x: d.apply(variables, x).sum())(x)
        return d.apply(variables, x), logits2, grad

    logits, logits2, grad = run(variables, x)
    assert "batch_stats" not in variables
    assert ("LayerNorm_0" in variables["params"]) == (norm == "layer")
    np.testing.assert_allclose(logits[0], logits2[0], atol=1e-6)
    assert not np.allclose(logits[1:], logits2[1:], atol=1e-4)
    # A per-sample input gradient, as WGAN-GP needs, is finite and non-zero.
    assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad[0]).sum()) > 0


@pytest.mark.parametrize("resolution", [4, 12, 128, 32.0])
def test_dcgan_invalid_resolution(resolution):
    with pytest.raises(ValueError, match="resolution must be a power of two"):
        DCGANGenerator(resolution=resolution, channels=3).init(KEY, jnp.zeros((1, 8)))
    with pytest.raises(ValueError, match="resolution must be a power of two"):
        DCGANDiscriminator(resolution=resolution, channels=3).init(KEY, jnp.zeros((1, 8, 8, 3)))


def test_dcgan_discriminator_rejects_wrong_input_shape_and_norm():
    d = DCGANDiscriminator(resolution=8, channels=3, base_features=4)
    for bad in [(2, 16, 16, 3), (2, 8, 8, 1), (2, 3, 8, 8), (8, 8, 3)]:
        with pytest.raises(ValueError, match=r"expects images of shape \(batch, 8, 8, 3\)"):
            d.init(KEY, jnp.zeros(bad))
    with pytest.raises(ValueError, match="norm"):
        DCGANDiscriminator(resolution=8, channels=3, norm="instance").init(
            KEY, jnp.zeros((1, 8, 8, 3))
        )


def test_custom_gradients_work_under_shard_map_and_equal_one_device():
    """Inside ``jax.shard_map`` (with its type checks on), the custom-VJP convolutions
    (``conv_padded``, ``conv_taps``, ``conv_strided``, ``conv_valid``,
    ``conv_valid_few_outputs``, ``space_to_depth``) and
    the networks built on them (DCGAN's Winograd and transposed layers, the scanned RRDBs)
    give a kernel replicated over a sharded batch the gradient of the whole batch, first
    and second order (a gradient penalty), equal to one device's."""
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import PartitionSpec as P
        from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
        from jaxgan.nets.esrgan import RRDBNet
        from jaxgan.nets.layers import (
            conv_padded, conv_strided, conv_taps, conv_valid, conv_valid_few_outputs,
            space_to_depth_operands)

        mesh = jax.make_mesh((2,), ("b",), axis_types=(jax.sharding.AxisType.Auto,))
        rng = np.random.default_rng(0)
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        x = jnp.asarray(rng.standard_normal((4, 8, 8, 5)), jnp.float32)
        convs = {
            "padded": (lambda x, k: conv_padded(x, k, ((1, 1), (1, 1))), 3),
            "taps": (lambda x, k: conv_taps(x, k, ((1, 1), (1, 1))), 3),
            "strided": (lambda x, k: conv_strided(x, k, (2, 2), ((1, 1), (1, 1))), 4),
            "valid": (conv_valid, 3),
            "few": (lambda x, k: conv_valid_few_outputs(x, k[..., :2]), 3),
            "space_to_depth": (
                lambda x, k: conv_valid(*space_to_depth_operands(x, k, (2, 2), ((1, 1), (1, 1)))),
                4,
            ),
        }
        for name, (f, t) in convs.items():
            k = jnp.asarray(rng.standard_normal((t, t, 5, 6)), jnp.float32)
            loss = lambda k, x, f=f: jnp.sum(jnp.sin(f(x, k)))
            penalty = lambda k, x, loss=loss: jnp.sum(jax.grad(loss, argnums=1)(k, x) ** 2)
            both = lambda k, x, loss=loss, penalty=penalty: (
                *jax.grad(loss, argnums=(0, 1))(k, x), jax.grad(penalty)(k, x))
            sharded = jax.shard_map(
                both, mesh=mesh, in_specs=(P(), P("b")), out_specs=(P(), P("b"), P()))
            for a, b in zip(jax.jit(sharded)(k, x), both(k, x), strict=True):
                close(a, b)
            print(name, "ok")
        nets = {
            "dcgan_d": (DCGANDiscriminator(16, 3, 64, norm="none"), (4, 16, 16, 3)),
            "dcgan_g": (DCGANGenerator(16, 3, 64), (4, 100)),
            "rrdbnet": (RRDBNet(scale=2, features=8, growth=4, n_blocks=2), (4, 8, 8, 3)),
        }
        for name, (net, shape) in nets.items():
            z = jnp.asarray(rng.standard_normal(shape), jnp.float32)
            v = net.init(jax.random.key(0), z)
            loss = lambda p, z, net=net, v=v: jnp.sum(
                jnp.sin(net.apply({**v, "params": p}, z, train=False)))
            sharded = jax.shard_map(
                jax.grad(loss), mesh=mesh, in_specs=(P(), P("b")), out_specs=P())
            got, want = jax.jit(sharded)(v["params"], z), jax.grad(loss)(v["params"], z)
            jax.tree.map(close, got, want)
            print(name, "ok")
        print("OK")
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout + res.stderr[-3000:]
