"""jaxgan.nets.norm.BatchNorm against flax's BatchNorm: values, running averages,
derivatives (first and second order), the statistics' own derivatives, and a batch split
over a named axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxgan.nets.norm import BatchNorm, batch_norm

SHAPE = (6, 3, 5, 4)


def _inputs(seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    # Channels with different means and scales, so the centring matters.
    x = jax.random.normal(k[0], SHAPE) * jnp.array([1.0, 3.0, 0.5, 2.0]) + jnp.array(
        [0.5, -2.0, 1.5, 0.0]
    )
    w = jax.random.normal(k[1], SHAPE)
    return x, w, k[2]


def _pair(momentum=0.9, epsilon=1e-5):
    kw = dict(momentum=momentum, epsilon=epsilon, scale_init=nn.initializers.normal(0.5))
    return BatchNorm(use_running_average=False, **kw), nn.BatchNorm(use_running_average=False, **kw)


def _close(a, b, tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def test_same_variables_values_and_running_averages_as_flax():
    x, _, key = _inputs()
    ours, theirs = _pair()
    v_ours, v_theirs = ours.init(key, x), theirs.init(key, x)
    assert jax.tree.structure(v_ours) == jax.tree.structure(v_theirs)
    _close(v_ours, v_theirs, 0)
    y_ours, s_ours = ours.apply(v_ours, x, mutable=["batch_stats"])
    y_theirs, s_theirs = theirs.apply(v_theirs, x, mutable=["batch_stats"])
    _close(y_ours, y_theirs, 2e-5)
    _close(s_ours, s_theirs, 2e-6)
    # The running averages moved from (0, 1) by 0.1 of the batch's mean and variance.
    mean = np.asarray(x).reshape(-1, 4).mean(0)
    var = np.asarray(x).reshape(-1, 4).var(0)
    _close(s_ours["batch_stats"]["mean"], 0.1 * mean, 1e-5)
    _close(s_ours["batch_stats"]["var"], 0.9 + 0.1 * var, 1e-5)
    # Inference mode normalises with the running averages, as flax's.
    infer = {"params": v_ours["params"], **s_ours}
    y1 = BatchNorm(use_running_average=True, epsilon=1e-5).apply(infer, x)
    y2 = nn.BatchNorm(use_running_average=True, epsilon=1e-5).apply(infer, x)
    _close(y1, y2, 2e-5)


def _loss(module, variables, x, w):
    y, _ = module.apply(variables, x, mutable=["batch_stats"])
    h = nn.leaky_relu(y, 0.2)
    return jnp.sum(h * w) + 0.3 * jnp.sum(h**2)


def test_gradients_equal_flaxs_to_second_order():
    x, w, key = _inputs(1)
    ours, theirs = _pair()
    v = theirs.init(key, x)

    def grads(module):
        return jax.grad(lambda p, x: _loss(module, {**v, "params": p}, x, w), (0, 1))(
            v["params"], x
        )

    _close(grads(ours), grads(theirs), 2e-4)

    # A gradient penalty's shape: the squared input gradient, differentiated again with
    # respect to the parameters (reverse mode through the backward rule).
    def penalty(module):
        def pen(p):
            gx = jax.grad(lambda x: _loss(module, {**v, "params": p}, x, w))(x)
            return jnp.sum(gx**2)

        return jax.grad(pen)(v["params"])

    g2_ours, g2_theirs = penalty(ours), penalty(theirs)
    assert all(float(jnp.abs(g).max()) > 1e-3 for g in jax.tree.leaves(g2_theirs))
    _close(g2_ours, g2_theirs, 2e-3)


def test_statistics_outputs_are_differentiable():
    x, w, _ = _inputs(2)
    scale = jnp.array([1.0, 0.5, 2.0, -1.0])
    bias = jnp.array([0.1, 0.0, -0.3, 0.2])

    def reference(x, scale, bias):
        mean = x.mean((0, 1, 2))
        var = jnp.maximum((x * x).mean((0, 1, 2)) - mean**2, 0.0)
        y = (x - mean) * jax.lax.rsqrt(var + 1e-3) * scale + bias
        return y, mean, var

    def loss(fn):
        def f(x, scale, bias):
            y, mean, var = fn(x, scale, bias)
            return jnp.sum(y * w) + jnp.sum(mean * jnp.arange(4.0)) + jnp.sum(var**2)

        return jax.grad(f, (0, 1, 2))(x, scale, bias)

    ours = loss(lambda x, s, b: batch_norm(x, s, b, 1e-3, None))
    _close(ours, loss(reference), 2e-4)


def test_axis_name_gives_the_whole_batchs_statistics_and_gradients():
    """Two halves of the batch under ``jax.vmap(axis_name='devices')``, each taking its
    own gradients as a data-parallel step does under pmap/shard_map, then summing the
    parameters' over the halves: the whole batch's statistics and gradients."""
    x, w, key = _inputs(3)
    bn = BatchNorm(use_running_average=False, momentum=0.9)
    v = bn.init(key, x)

    def loss(module, p, x, w):
        y, s = module.apply({**v, "params": p}, x, mutable=["batch_stats"])
        return jnp.sum(y * w + y**2), s

    def grads(module, x, w):
        return jax.value_and_grad(lambda p, x: loss(module, p, x, w), (0, 1), has_aux=True)(
            v["params"], x
        )

    (l1, s1), (gp1, gx1) = grads(bn, x, w)
    split = BatchNorm(use_running_average=False, momentum=0.9, axis_name="devices")
    halves = jax.vmap(lambda x, w: grads(split, x, w), axis_name="devices")
    (l2, s2), (gp2, gx2) = halves(x.reshape(2, 3, *SHAPE[1:]), w.reshape(2, 3, *SHAPE[1:]))
    _close(l1, l2.sum(), 1e-4)
    _close(s1, jax.tree.map(lambda a: a[0], s2), 1e-6)
    _close(s1, jax.tree.map(lambda a: a[1], s2), 1e-6)
    _close(gp1, jax.tree.map(lambda a: a.sum(0), gp2), 1e-4)
    _close(gx1, gx2.reshape(SHAPE), 1e-4)
    # Without the axis each half is normalised alone: a different function.
    alone = jax.vmap(lambda x, w: grads(bn, x, w))
    gx3 = alone(x.reshape(2, 3, *SHAPE[1:]), w.reshape(2, 3, *SHAPE[1:]))[1][1]
    assert not np.allclose(np.asarray(gx1), np.asarray(gx3).reshape(SHAPE), atol=1e-2)


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_low_precision_input_keeps_its_dtype_with_float32_statistics(dtype):
    x, w, key = _inputs(4)
    bn = BatchNorm(use_running_average=False)
    v = bn.init(key, x)
    y, s = bn.apply(v, x.astype(dtype), mutable=["batch_stats"])
    assert y.dtype == dtype and s["batch_stats"]["mean"].dtype == jnp.float32
    gx = jax.grad(lambda x: jnp.sum(bn.apply(v, x, mutable=["batch_stats"])[0] * w))(
        x.astype(dtype)
    )
    assert gx.dtype == dtype
    # Against float32 on the same (rounded) input: only the output's rounding differs.
    y32 = bn.apply(v, x.astype(dtype).astype(jnp.float32), mutable=["batch_stats"])[0]
    _close(y.astype(jnp.float32), y32, 2e-2)
