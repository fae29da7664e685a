"""Tests for jaxgan.nets.winograd and the Conv layers that use it on CPU (tiny, CPU)."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.nets import winograd
from jaxgan.nets.layers import Conv, conv_transpose_same


def _normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _lax_conv(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _numpy_conv64(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The 'VALID' cross-correlation in float64, from its definition."""
    x, k = x.astype(np.float64), k.astype(np.float64)
    n, h, w, _ = x.shape
    r = k.shape[0]
    y = np.zeros((n, h - r + 1, w - r + 1, k.shape[3]))
    for i in range(r):
        for j in range(r):
            y += np.einsum("nhwc,cf->nhwf", x[:, i : i + h - r + 1, j : j + w - r + 1], k[i, j])
    return y


def _penalised(conv):
    """jit(value_and_grad) over (params, x) of ``sum(sin(conv(params, x)))`` plus the squared
    input gradient of ``sum(tanh(conv(params, x)))``: a WGAN-GP-like objective whose
    parameter gradient is a second derivative of the convolution."""

    def f(p, x):
        gx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(p, x))))(x)
        return jnp.sum(jnp.sin(conv(p, x))) + jnp.sum(gx**2)

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))


def _assert_same_penalised(ours, ref, p, x):
    (val, grads), (val_ref, grads_ref) = _penalised(ours)(p, x), _penalised(ref)(p, x)
    np.testing.assert_allclose(val, val_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_transforms_give_the_minimal_filtering_identity():
    # Per axis, AT ((G g) * (BT d)) is the m-output, r-tap correlation of m + r - 1 inputs:
    # F(2, 3) for 3x3 kernels, F(4, 2) and F(2, 2) for 2x2 ones.
    rng = np.random.default_rng(0)
    for bt, g_, at in (winograd.F2_3, winograd.F4_2, winograd.F2_2):
        m, taps = at.shape[0], g_.shape[1]
        assert bt.shape == (m + taps - 1, m + taps - 1) and g_.shape[0] == m + taps - 1
        for _ in range(5):
            d, g = rng.standard_normal(m + taps - 1), rng.standard_normal(taps)
            expected = [d[i : i + taps] @ g for i in range(m)]
            np.testing.assert_allclose(at @ ((g_ @ g) * (bt @ d)), expected, atol=1e-12)
    # The kernel transform is G g G^T per channel pair.
    k = _normal(1, (3, 3, 2, 5))
    u = np.asarray(winograd.transform_kernel(jnp.asarray(k), winograd.G)).reshape(4, 4, 2, 5)
    np.testing.assert_allclose(
        u, np.einsum("ai,ijxy,bj->abxy", winograd.G, k, winograd.G), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    "shape, features, r",
    [
        ((2, 10, 12, 5), 7, 3),
        ((1, 9, 6, 3), 4, 3),
        ((3, 3, 3, 2), 2, 3),
        ((1, 4, 7, 1), 1, 3),
        ((2, 9, 8, 6), 5, 2),
        ((1, 7, 4, 3), 2, 2),
        ((1, 2, 3, 2), 3, 2),
        ((11, 16, 14, 2), 3, 2),  # >= 2048 output pixels: F(4x4, 2x2), sizes 15 and 13
        ((4, 17, 17, 3), 2, 2),
    ],
)
def test_conv_winograd_equals_the_convolution_with_its_derivatives(shape, features, r):
    """3x3 and 2x2 kernels (F(2x2, 2x2) and F(4x4, 2x2)); output sizes that are and are
    not multiples of the tile (padded to whole tiles and cropped), a 1-pixel output;
    values, both first derivatives and a gradient penalty's second derivatives."""
    x, k = jnp.asarray(_normal(2, shape)), jnp.asarray(_normal(3, (r, r, shape[3], features)))
    np.testing.assert_allclose(winograd.conv_winograd(x, k), _lax_conv(x, k), atol=2e-5)
    ours = lambda k, x: winograd.conv_winograd(x, k)
    _assert_same_penalised(ours, lambda k, x: _lax_conv(x, k), k, x)


@pytest.mark.parametrize("transform", ["F2_3", "F4_2", "F2_2"])
def test_input_transform_gradient_is_the_transpose_without_strided_pads(transform):
    """The input transform's custom VJP (block copies, one add per axis) equals JAX's
    derivative of the same strided slices, first and second order, and its lowered
    gradient has no interior-padded (strided-scatter) pad, which JAX's own has."""
    bt, _, at = getattr(winograd, transform)
    a, m = len(bt), len(at)
    th, tw = 3, 2
    x = jnp.asarray(_normal(30, (2, m * th + a - m, m * tw + a - m, 3)))
    g = jnp.asarray(_normal(31, (a * a, 2 * th * tw, 3)))

    def plain(x):  # the forward formula, differentiated by JAX
        rows = jnp.stack(winograd._combine(bt, [x[:, i : i + m * th : m] for i in range(a)]))
        cols = winograd._combine(bt, [rows[:, :, :, j : j + m * tw : m] for j in range(a)])
        return jnp.stack(cols, axis=1).reshape(a * a, -1, 3)

    ours = lambda x: winograd._transform_input(x, bt, m, th, tw)
    np.testing.assert_array_equal(ours(x), plain(x))
    grad = lambda f: jax.grad(lambda x: jnp.sum(jnp.sin(f(x)) * g))
    np.testing.assert_allclose(grad(ours)(x), grad(plain)(x), rtol=1e-5, atol=1e-5)
    second = lambda f: jax.grad(lambda x: jnp.sum(grad(f)(x) ** 2))(x)
    np.testing.assert_allclose(second(ours), second(plain), rtol=1e-4, atol=1e-4)

    def strided_pads(f) -> int:
        hlo = jax.jit(lambda dv: jax.vjp(f, x)[1](dv)[0]).lower(g).as_text()
        interiors = re.findall(r"stablehlo\.pad .*interior = \[([\d, ]*)\]", hlo)
        return sum(any(int(v) for v in i.split(",")) for i in interiors)

    assert strided_pads(plain) > 0
    assert strided_pads(ours) == 0

    # The transpose's own gradient (a transposed convolution's backward pass) is the
    # transform again: strided slices, not pads of the tiles summed.
    adjoint = lambda dv: jax.vjp(ours, x)[1](dv)[0]
    x2 = jnp.asarray(_normal(32, x.shape))
    np.testing.assert_allclose(jax.vjp(adjoint, g)[1](x2)[0], ours(x2), rtol=1e-6, atol=1e-6)
    back = jax.vjp(adjoint, g)[1]
    assert "stablehlo.pad" not in jax.jit(back).lower(x2).as_text()


def test_hwoi_kernel_layout_equals_hwio_with_derivatives():
    """``kernel_layout='HWOI'`` (the transposed convolutions' adjoint form) computes the
    convolution of the kernel with in and out swapped, with the same derivatives; and
    ``space_to_depth_operands`` rearranges an HWOI kernel as the HWIO one, swapped."""
    from jaxgan.nets.layers import space_to_depth_operands

    x, k = jnp.asarray(_normal(32, (2, 9, 7, 4))), jnp.asarray(_normal(33, (2, 2, 4, 3)))
    k_oi = k.transpose(0, 1, 3, 2)
    np.testing.assert_allclose(
        winograd.conv_winograd(x, k_oi, kernel_layout="HWOI"), winograd.conv_winograd(x, k)
    )
    ours = lambda k, x: winograd.conv_winograd(x, k.transpose(0, 1, 3, 2), kernel_layout="HWOI")
    _assert_same_penalised(ours, lambda k, x: _lax_conv(x, k), k, x)
    big = jnp.asarray(_normal(34, (4, 4, 4, 3)))
    xs, ks = space_to_depth_operands(x, big, (2, 2), ((1, 1), (1, 1)))
    xs_oi, ks_oi = space_to_depth_operands(
        x, big.transpose(0, 1, 3, 2), (2, 2), ((1, 1), (1, 1)), kernel_layout="HWOI"
    )
    np.testing.assert_array_equal(xs_oi, xs)
    np.testing.assert_array_equal(ks_oi, ks.transpose(0, 1, 3, 2))
    with pytest.raises(ValueError, match="kernel_layout"):
        winograd.conv_winograd(x, k, kernel_layout="OIHW")


def test_output_tiles_rearrangement_custom_vjps_equal_the_transpose():
    """``_tiles_to_image`` (a transpose) and ``_image_to_tiles`` (strided slices) are each
    other's inverse and adjoint: values, gradients and a squared gradient's gradient equal
    JAX's derivatives of the plain transpose."""
    y = jnp.asarray(_normal(35, (4, 4, 2, 3, 2, 5)))
    plain = lambda y: y.transpose(2, 3, 0, 4, 1, 5).reshape(2, 12, 8, 5)
    ours = winograd._tiles_to_image
    np.testing.assert_array_equal(ours(y), plain(y))
    np.testing.assert_array_equal(winograd._image_to_tiles(plain(y), 4), y)
    g = jnp.asarray(_normal(36, (2, 12, 8, 5)))
    grad = lambda f: jax.grad(lambda y: jnp.sum(jnp.sin(f(y)) * g))
    np.testing.assert_allclose(grad(ours)(y), grad(plain)(y), rtol=1e-6)
    second = lambda f: jax.grad(lambda y: jnp.sum(jnp.cos(grad(f)(y))))(y)
    np.testing.assert_allclose(second(ours), second(plain), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("r, max_factor, rms_factor", [(3, 4, 4), (2, 16, 12)])
def test_conv_winograd_accuracy_against_float64(r, max_factor, rms_factor):
    """Against a float64 reference, the float32 Winograd forms stay within a stated factor
    of the error of XLA's float32 convolution: F(2x2, 3x3) within 4x; F(4x4, 2x2) (the
    space-to-depth form of a 4x4 stride-2 layer) within 16x at the largest error and 12x in
    RMS (measured 9-14x and 5-8x on DCGAN's layers: a few 1e-6 of the output's scale)."""
    c, n, hw = (128, 2, 16) if r == 3 else (256, 8, 17)  # 2x2: 2048 outputs, F(4x4, 2x2)
    x, k = _normal(4, (n, hw, hw, c)), _normal(5, (r, r, c, 64)) / np.sqrt(r * r * c)
    assert winograd.transforms(r, n * (hw - r + 1) ** 2)[0].shape == ((4, 4) if r == 3 else (5, 5))
    exact = _numpy_conv64(x, k)

    def errors(y):
        e = np.asarray(y, np.float64) - exact
        return np.abs(e).max() / np.abs(exact).max(), np.sqrt(np.mean(e**2) / np.mean(exact**2))

    direct_max, direct_rms = errors(_lax_conv(jnp.asarray(x), jnp.asarray(k)))
    ours_max, ours_rms = errors(winograd.conv_winograd(jnp.asarray(x), jnp.asarray(k)))
    assert direct_max < 1e-5 and ours_max < max_factor * direct_max, (ours_max, direct_max)
    assert ours_rms < rms_factor * direct_rms, (ours_rms, direct_rms)
    assert ours_max < 2e-5


def test_transforms_rule():
    assert winograd.transforms(3, 10**6) is winograd.F2_3
    assert winograd.transforms(2, 2048) is winograd.F4_2
    assert winograd.transforms(2, 4096) is winograd.F4_2  # DCGAN 32's 8x8 outputs, batch 64
    assert winograd.transforms(2, 2047) is winograd.F2_2
    assert winograd.transforms(2, 1024) is winograd.F2_2  # DCGAN's 4x4 outputs, batch 64


def test_use_winograd_strided_rule():
    rule = winograd.use_winograd_strided
    assert rule((4, 4, 64, 128), (2, 2))  # DCGAN critic layer
    assert not rule((4, 4, 3, 64), (2, 2))  # its RGB input layer
    assert not rule((4, 4, 64, 32), (2, 2))  # few outputs
    assert not rule((3, 3, 64, 128), (2, 2))  # CycleGAN's 3x3 stride-2 layers
    assert rule((6, 4, 64, 64), (3, 2))  # any kernel twice the stride


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
def test_strided_conv_routes_through_winograd_and_equals_flax_with_penalty():
    """A 4x4 stride-2 Conv with 64 channels runs as Winograd F(2x2, 2x2) of its
    space-to-depth form (no convolution left, derivatives included); it equals flax's
    ``nn.Conv`` in values, gradients and a WGAN-GP-like penalty's second derivatives."""
    x = jnp.asarray(_normal(8, (2, 9, 8, 64)))
    ours = Conv(64, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
    ref = nn.Conv(64, (4, 4), (2, 2), padding=((1, 1), (1, 1)))
    variables = ref.init(jax.random.PRNGKey(0), x)
    assert _conv_ops(ours, variables, x)[0] == 0
    assert _conv_ops(ref, variables, x)[0] == 3

    expected = ref.apply(variables, x)
    atol = 1e-5 * float(jnp.abs(expected).max())
    np.testing.assert_allclose(ours.apply(variables, x), expected, atol=atol)
    _assert_same_penalised(ours.apply, ref.apply, variables, x)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
@pytest.mark.parametrize("hw", [(4, 4), (5, 6)])
def test_conv_transpose_routes_through_winograd_and_equals_lax(hw):
    """A 4x4 stride-2 ConvTranspose with 64 channels runs as the adjoint of the Winograd
    strided convolution: no convolution in it or its derivatives, the values and first and
    second derivatives of ``lax.conv_transpose``."""
    x = jnp.asarray(_normal(9, (2, *hw, 64)))
    k = jnp.asarray(_normal(10, (4, 4, 64, 64)) / 30)
    ours = lambda k, x: conv_transpose_same(x, k, (2, 2))
    ref = lambda k, x: jax.lax.conv_transpose(
        x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    assert "stablehlo.convolution" not in _penalised(ours).lower(k, x).as_text()
    assert "stablehlo.convolution" in _penalised(ref).lower(k, x).as_text()
    np.testing.assert_allclose(ours(k, x), ref(k, x), atol=2e-5)
    _assert_same_penalised(ours, ref, k, x)


def test_conv_winograd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="kernel"):
        winograd.conv_winograd(jnp.zeros((1, 8, 8, 4)), jnp.zeros((5, 5, 4, 2)))
    with pytest.raises(ValueError, match="kernel"):
        winograd.conv_winograd(jnp.zeros((1, 8, 8, 4)), jnp.zeros((3, 3, 3, 2)))
    with pytest.raises(ValueError, match="at least 3x3"):
        winograd.conv_winograd(jnp.zeros((1, 2, 8, 4)), jnp.zeros((3, 3, 4, 2)))


def test_use_winograd_rule():
    rule = winograd.use_winograd
    assert rule((1, 34, 34, 256), (3, 3, 256, 256))  # CycleGAN residual block
    assert rule((4, 34, 34, 192), (3, 3, 192, 64))  # ESRGAN dense block, last layer
    assert not rule((4, 34, 34, 192), (3, 3, 192, 32))  # the other dense-block layers
    assert rule((4, 66, 66, 64), (3, 3, 64, 64))  # 64 channels, 16384 output pixels
    assert not rule((4, 130, 130, 64), (3, 3, 64, 64))  # 64 channels, 65536 pixels
    assert rule((4, 130, 130, 64), (3, 3, 64, 128))  # more than 64 channels: any size
    assert not rule((4, 130, 130, 3), (3, 3, 3, 64))  # an RGB input layer
    assert not rule((4, 34, 34, 64), (5, 5, 64, 64))  # not 3x3


def _conv_ops(module, variables, x) -> tuple[int, int]:
    """(convolutions, batched matrix products) in the gradient of ``module``'s output."""
    loss = lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))
    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(variables, x).as_text()
    return hlo.count("stablehlo.convolution"), hlo.count("batching_dims = [0] x [0]")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
@pytest.mark.parametrize("padding", [1, "VALID", "SAME"])
def test_conv_routes_wide_3x3_layers_through_winograd_and_equals_flax(padding):
    x = jnp.asarray(_normal(6, (2, 7, 8, 64)))
    ours, ref = Conv(64, (3, 3), padding=padding), nn.Conv(64, (3, 3), padding=padding)
    variables = ref.init(jax.random.PRNGKey(0), x)
    # Forward, input gradient and weight gradient: batched matrix products, no convolution.
    n_conv, n_batched = _conv_ops(ours, variables, x)
    assert n_conv == 0 and n_batched == 3
    assert _conv_ops(ref, variables, x)[0] == 3
    np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=2e-5)
    grad = lambda m: jax.grad(lambda v: jnp.sum(jnp.sin(m.apply(v, x))))(variables)
    for a, b in zip(jax.tree.leaves(grad(ours)), jax.tree.leaves(grad(ref)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))
    # Below the channel threshold the layer is not Winograd's: a convolution, or, zero
    # padded with 32 outputs, conv_taps's plain matrix products.
    narrow = Conv(32, (3, 3), padding=padding)
    n_conv, n_batched = _conv_ops(narrow, narrow.init(jax.random.PRNGKey(0), x), x)
    assert n_batched == 0 and (n_conv == 0) == (padding != "VALID")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="routing of impl='auto' on CPU")
def test_cyclegan_generator_with_winograd_residual_blocks_equals_it_without(monkeypatch):
    """A CycleGAN generator whose residual blocks reach 64 channels (features 16, two
    downsamplings) takes them through Winograd on CPU; its output and parameter gradients
    equal those of the same network with the rule switched off."""
    from jaxgan.nets.cyclegan import ResnetGenerator

    gen = ResnetGenerator(channels=3, features=16, n_blocks=1)
    x = jnp.asarray(_normal(7, (1, 16, 16, 3)))
    variables = gen.init(jax.random.PRNGKey(0), x)
    calls = []
    original = winograd.conv_winograd

    def recorded(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    def run():
        loss = lambda v: jnp.sum(jnp.sin(3 * gen.apply(v, x)))
        return jax.jit(jax.value_and_grad(loss))(variables)

    monkeypatch.setattr(winograd, "conv_winograd", recorded)
    with_winograd = run()
    assert calls == [(1, 6, 6, 64), (1, 6, 6, 64)]  # the block's two reflection-padded convs
    monkeypatch.setattr(winograd, "use_winograd", lambda *shapes: False)
    without = run()
    assert len(calls) == 2
    np.testing.assert_allclose(with_winograd[0], without[0], rtol=1e-5)
    # Biases ahead of instance normalisation get gradients of rounding size only: compare
    # every leaf against the scale of the largest gradient.
    scale = max(float(jnp.abs(b).max()) for b in jax.tree.leaves(without[1]))
    for a, b in zip(jax.tree.leaves(with_winograd[1]), jax.tree.leaves(without[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * scale)
