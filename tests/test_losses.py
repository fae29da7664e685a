"""Tests of jaxgan.losses: values against numpy formulas, stability, gradients, jit, vmap."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxgan import losses as L

RNG = np.random.default_rng(0)
REAL = RNG.normal(size=(6,)).astype(np.float32) + 0.5
FAKE = RNG.normal(size=(5,)).astype(np.float32) - 0.5


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol, atol)


# ---------------------------------------------------------------------------------------
# Unconditional losses: values from the formulas
# ---------------------------------------------------------------------------------------


def test_minimax_family_values():
    r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
    d_expected = -np.mean(np.log(np_sigmoid(r))) - np.mean(np.log(1.0 - np_sigmoid(f)))
    close(L.minimax_discriminator_loss(REAL, FAKE), d_expected)
    close(L.minimax_generator_loss(FAKE), np.mean(np.log(1.0 - np_sigmoid(f))))
    close(L.non_saturating_generator_loss(FAKE), -np.mean(np.log(np_sigmoid(f))))


def test_wasserstein_values():
    close(L.wasserstein_critic_loss(REAL, FAKE), FAKE.mean() - REAL.mean())
    close(L.wasserstein_generator_loss(FAKE), -FAKE.mean())


@pytest.mark.parametrize("coding", ["01", "-11"])
def test_least_squares_codings(coding):
    a, b, c = L.LSGAN_CODINGS[coding]
    r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
    d_expected = 0.5 * np.mean((r - b) ** 2) + 0.5 * np.mean((f - a) ** 2)
    close(L.least_squares_discriminator_loss(REAL, FAKE, a=a, b=b), d_expected)
    close(L.least_squares_generator_loss(FAKE, c=c), 0.5 * np.mean((f - c) ** 2))
    # Optima: D is perfect when it outputs b on reals and a on fakes; G when D says c.
    close(L.least_squares_discriminator_loss(jnp.full(4, b), jnp.full(3, a), a=a, b=b), 0.0)
    close(L.least_squares_generator_loss(jnp.full(3, c), c=c), 0.0)


def test_lsgan_codings_are_the_papers():
    assert L.LSGAN_CODINGS["01"] == (0.0, 1.0, 1.0)
    a, b, c = L.LSGAN_CODINGS["-11"]
    assert (a, b, c) == (-1.0, 1.0, 0.0)
    assert b - c == 1 and b - a == 2  # the Pearson chi^2 conditions of Mao et al.


def test_least_squares_defaults_are_01_coding():
    close(
        L.least_squares_discriminator_loss(REAL, FAKE),
        L.least_squares_discriminator_loss(REAL, FAKE, a=0.0, b=1.0),
    )
    close(L.least_squares_generator_loss(FAKE), 0.5 * np.mean((FAKE - 1.0) ** 2))


def test_relativistic_average_ls_values():
    r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
    d_expected = np.mean((r - f.mean() - 1) ** 2) + np.mean((f - r.mean() + 1) ** 2)
    g_expected = np.mean((f - r.mean() - 1) ** 2) + np.mean((r - f.mean() + 1) ** 2)
    close(L.relativistic_average_ls_discriminator_loss(REAL, FAKE), d_expected)
    close(L.relativistic_average_ls_generator_loss(REAL, FAKE), g_expected)


def test_relativistic_average_bce_values():
    r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
    d_ra_real = np_sigmoid(r - f.mean())  # D_Ra(x_r, x_f)
    d_ra_fake = np_sigmoid(f - r.mean())  # D_Ra(x_f, x_r)
    d_expected = -np.mean(np.log(d_ra_real)) - np.mean(np.log(1 - d_ra_fake))
    g_expected = -np.mean(np.log(1 - d_ra_real)) - np.mean(np.log(d_ra_fake))
    close(L.relativistic_average_discriminator_loss(REAL, FAKE), d_expected)
    close(L.relativistic_average_generator_loss(REAL, FAKE), g_expected)


def test_losses_average_over_extra_axes():
    # A PatchGAN-like (B, H, W, 1) output: the mean over every element.
    r = RNG.normal(size=(2, 3, 3, 1)).astype(np.float32)
    f = RNG.normal(size=(2, 3, 3, 1)).astype(np.float32)
    r64, f64 = r.astype(np.float64), f.astype(np.float64)
    close(
        L.least_squares_discriminator_loss(r, f),
        0.5 * np.sum((r64 - 1) ** 2) / r.size + 0.5 * np.sum(f64**2) / f.size,
    )
    close(
        L.relativistic_average_ls_discriminator_loss(r, f),
        np.sum((r64 - f64.mean() - 1) ** 2) / r.size + np.sum((f64 - r64.mean() + 1) ** 2) / f.size,
    )


# ---------------------------------------------------------------------------------------
# Numerical stability at extreme logits
# ---------------------------------------------------------------------------------------

BIG = 100.0


def test_bce_losses_finite_with_right_limits_at_extreme_logits():
    hi, lo = jnp.full((4,), BIG), jnp.full((4,), -BIG)
    # Perfect discriminator: loss -> 0; completely wrong one: loss -> 2 * 100.
    close(L.minimax_discriminator_loss(hi, lo), 0.0, atol=1e-30)
    close(L.minimax_discriminator_loss(lo, hi), 2 * BIG)
    # Non-saturating G: -log D = 100 when D rejects the fakes, 0 when fooled.
    close(L.non_saturating_generator_loss(lo), BIG)
    close(L.non_saturating_generator_loss(hi), 0.0, atol=1e-30)
    # Saturating G: log(1 - D) = -100 when D is fooled, 0 when D rejects.
    close(L.minimax_generator_loss(hi), -BIG)
    close(L.minimax_generator_loss(lo), 0.0, atol=1e-30)
    # Relativistic BCE: reals far above fakes.
    close(L.relativistic_average_discriminator_loss(hi, lo), 0.0, atol=1e-30)
    close(L.relativistic_average_generator_loss(hi, lo), 2 * 2 * BIG)


@pytest.mark.parametrize(
    "fn",
    [
        lambda r, f: L.minimax_discriminator_loss(r, f),
        lambda r, f: L.minimax_generator_loss(f),
        lambda r, f: L.non_saturating_generator_loss(f),
        L.relativistic_average_discriminator_loss,
        L.relativistic_average_generator_loss,
    ],
)
def test_bce_gradients_finite_at_extreme_logits(fn):
    for r, f in [(BIG, -BIG), (-BIG, BIG), (BIG, BIG)]:
        gr, gf = jax.grad(fn, argnums=(0, 1))(jnp.full((3,), r), jnp.full((3,), f))
        assert np.all(np.isfinite(gr)) and np.all(np.isfinite(gf))
        assert np.all(np.abs(gr) <= 1.0) and np.all(np.abs(gf) <= 1.0)


def test_saturating_vs_non_saturating_gradient_at_rejected_fakes():
    # When D confidently rejects the fakes, the saturating loss has (almost) no gradient,
    # the non-saturating one a gradient of magnitude 1 per sample (divided by the batch).
    f = jnp.full((4,), -20.0)
    g_sat = jax.grad(L.minimax_generator_loss)(f)
    g_ns = jax.grad(L.non_saturating_generator_loss)(f)
    assert np.all(np.abs(g_sat) < 1e-8)
    close(g_ns, -0.25 * np.ones(4), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# Gradients (check_grads), jit, vmap
# ---------------------------------------------------------------------------------------

PAIR_LOSSES = {
    "minimax_d": L.minimax_discriminator_loss,
    "minimax_g": lambda r, f: L.minimax_generator_loss(f),
    "non_saturating_g": lambda r, f: L.non_saturating_generator_loss(f),
    "wgan_c": L.wasserstein_critic_loss,
    "wgan_g": lambda r, f: L.wasserstein_generator_loss(f),
    "ls_d": functools.partial(L.least_squares_discriminator_loss, a=-1.0, b=1.0),
    "ls_g": lambda r, f: L.least_squares_generator_loss(f, c=0.0),
    "rals_d": L.relativistic_average_ls_discriminator_loss,
    "rals_g": L.relativistic_average_ls_generator_loss,
    "ra_d": L.relativistic_average_discriminator_loss,
    "ra_g": L.relativistic_average_generator_loss,
}


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_pair_losses_grads_jit_vmap(name):
    fn = PAIR_LOSSES[name]
    r, f = jnp.asarray(REAL), jnp.asarray(FAKE)
    # Second order only where the Hessian is not trivially constant (cheaper suite).
    order = 2 if name in ("minimax_d", "ra_g", "rals_d") else 1
    check_grads(fn, (r, f), order=order, modes=["rev"], eps=1e-2, atol=2e-2, rtol=2e-2)
    close(jax.jit(fn)(r, f), fn(r, f))
    rs = RNG.normal(size=(3, 6)).astype(np.float32)
    fs = RNG.normal(size=(3, 5)).astype(np.float32)
    batched = jax.vmap(fn)(jnp.asarray(rs), jnp.asarray(fs))
    assert batched.shape == (3,)
    close(batched, [fn(rs[i], fs[i]) for i in range(3)])


# ---------------------------------------------------------------------------------------
# Gradient penalty, R1, weight clipping
# ---------------------------------------------------------------------------------------


def linear_critic(w):
    return lambda x: jnp.sum(x * w, axis=tuple(range(1, x.ndim)))


# The penalties are used under jit (the train steps); compiling them whole is also much
# cheaper than running their nested gradients op by op. The critic is a static argument.
GP = jax.jit(L.gradient_penalty, static_argnums=0)
R1 = jax.jit(L.r1_penalty, static_argnums=0)


def f32(*shape, shift=0.0):
    return jnp.asarray(RNG.normal(size=shape) + shift, jnp.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_penalty_linear_critic_is_exact_and_key_independent(seed):
    w, real, fake = f32(4, 4, 3), f32(4, 4, 4, 3), f32(4, 4, 4, 3)
    norm_w = np.linalg.norm(np.asarray(w, np.float64))
    critic = linear_critic(w)
    close(GP(critic, real, fake, jax.random.key(seed)), (norm_w - 1.0) ** 2, rtol=1e-5)
    close(GP(critic, real, fake, jax.random.key(seed), 2.0), (norm_w - 2.0) ** 2, rtol=1e-5)


def test_gradient_penalty_norm_critic_has_unit_gradients():
    # f(x) = ||x||_2 has gradient x / ||x||: unit norm everywhere (away from 0).
    real, fake = f32(4, 6, shift=3.0), f32(4, 6, shift=3.0)

    def critic(x):
        return jnp.linalg.norm(x, axis=1)

    key = jax.random.key(3)
    close(GP(critic, real, fake, key), 0.0, atol=1e-10)
    close(GP(critic, real, fake, key, 0.0), 1.0, rtol=1e-5)
    # A critic with (B, 1) outputs, as Flax Dense(1) heads give, works the same.
    column = functools.partial(jnp.linalg.norm, axis=1, keepdims=True)
    close(GP(column, real, fake, key, 0.0), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        L.gradient_penalty(critic, real, fake[:3], key)


def test_gradient_penalty_quadratic_critic_when_real_equals_fake():
    # f(x) = 1/2 ||x||^2 has gradient x; with real == fake, x_hat = real whatever alpha is.
    real = f32(4, 4, 4, 3)

    def critic(x):
        return 0.5 * jnp.sum(x**2, axis=(1, 2, 3))

    norms = np.linalg.norm(np.asarray(real, np.float64).reshape(4, -1), axis=1)
    close(GP(critic, real, real, jax.random.key(0)), np.mean((norms - 1) ** 2))


def test_gradient_penalty_alpha_is_uniform_per_sample():
    # f(x) = 1/2 ||x||^2 on x_hat = alpha * e_1 (real = e_1, fake = 0): ||grad|| = alpha_i.
    # With target 0 the penalty is mean(alpha^2) -> 1/3, with target 1 mean((1-alpha)^2)
    # -> 1/3; a single alpha shared by the batch cannot give 1/3 for both.
    n = 4096
    real = jnp.asarray(np.tile([1.0, 0.0], (n, 1)), jnp.float32)
    fake = jnp.zeros((n, 2))

    def critic(x):
        return 0.5 * jnp.sum(x**2, axis=1)

    key = jax.random.key(7)
    gp0 = float(GP(critic, real, fake, key, 0.0))
    gp1 = float(GP(critic, real, fake, key, 1.0))
    assert abs(gp0 - 1 / 3) < 0.03 and abs(gp1 - 1 / 3) < 0.03
    # Deterministic for a key, different for another.
    assert float(GP(critic, real, fake, key, 0.0)) == gp0
    assert float(GP(critic, real, fake, jax.random.key(8), 0.0)) != gp0


def test_gradient_penalty_zero_gradient_is_not_nan():
    # A constant critic has zero input gradients: GP = target^2 and a finite gradient.
    real, fake = jnp.ones((4, 2)), jnp.zeros((4, 2))

    def loss(scale):
        return L.gradient_penalty(
            lambda x: scale * jnp.sum(x, axis=1), real, fake, jax.random.key(0)
        )

    value, grad = jax.jit(jax.value_and_grad(loss))(0.0)
    close(value, 1.0)
    assert np.isfinite(grad)


def test_gradient_penalty_double_backward_linear_critic():
    # GP(w) = (||w|| - 1)^2  =>  dGP/dw = 2 (||w|| - 1) w / ||w||.
    w = jnp.asarray([0.3, -1.2, 2.0], jnp.float32)
    real, fake = f32(4, 3), f32(4, 3)

    def loss(w):
        return L.gradient_penalty(linear_critic(w), real, fake, jax.random.key(1))

    wn = np.asarray(w, np.float64)
    nw = np.linalg.norm(wn)
    close(jax.jit(jax.grad(loss))(w), 2 * (nw - 1) * wn / nw, rtol=1e-5)


def test_gradient_penalty_double_backward_matches_finite_differences():
    params = {"w": f32(3, 5) * 0.7, "v": f32(5)}
    real, fake = f32(4, 3), f32(4, 3)
    key = jax.random.key(2)

    @jax.jit
    def penalty(p):
        def critic(x):
            return jnp.tanh(x @ p["w"]) @ p["v"]

        return L.gradient_penalty(critic, real, fake, key)

    grads = jax.jit(jax.grad(penalty))(params)
    eps = 1e-2
    for name in ("w", "v"):
        flat = np.asarray(params[name]).ravel()
        for i in range(flat.size):
            up, down = flat.copy(), flat.copy()
            up[i] += eps
            down[i] -= eps
            f_up = penalty({**params, name: jnp.asarray(up.reshape(params[name].shape))})
            f_dn = penalty({**params, name: jnp.asarray(down.reshape(params[name].shape))})
            fd = (float(f_up) - float(f_dn)) / (2 * eps)
            assert abs(fd - float(grads[name].ravel()[i])) < 2e-3 + 1e-2 * abs(fd), (name, i)


def test_gradient_penalty_vmap_equals_loop():
    w = f32(3)

    def critic(x):
        return jnp.sin(x) @ w

    reals, fakes = f32(2, 4, 3), f32(2, 4, 3)
    keys = jax.random.split(jax.random.key(5), 2)
    batched = jax.jit(jax.vmap(functools.partial(L.gradient_penalty, critic)))(reals, fakes, keys)
    close(batched, [GP(critic, reals[i], fakes[i], keys[i]) for i in range(2)], rtol=1e-5)


def test_r1_penalty_values_and_double_backward():
    w, real = f32(2, 3), f32(5, 2, 3)
    # Linear critic: ||grad||^2 = ||w||^2 for every sample.
    close(R1(linear_critic(w), real), np.sum(np.asarray(w, np.float64) ** 2))
    # Quadratic critic 1/2 ||x||^2: grad = x, so R1 = mean ||x_i||^2.
    r64 = np.asarray(real, np.float64).reshape(5, -1)
    close(
        R1(lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2)), real),
        np.mean(np.sum(r64**2, axis=1)),
    )
    # d/dw ||w||^2 = 2 w through the nested gradient.
    grad = jax.jit(jax.grad(lambda w: L.r1_penalty(linear_critic(w), real)))(w)
    close(grad, 2 * np.asarray(w))


def test_clip_weights_bounds_every_leaf_and_keeps_small_ones():
    params = {
        "dense": {"kernel": jnp.asarray([[0.5, -0.02], [0.005, 3.0]]), "bias": jnp.asarray([-7.0])},
        "out": [jnp.asarray([0.001, -0.009]), jnp.asarray(0.2)],
    }
    clipped = L.clip_weights(params, 0.01)
    assert jax.tree.structure(clipped) == jax.tree.structure(params)
    for leaf in jax.tree.leaves(clipped):
        assert np.all(np.abs(np.asarray(leaf)) <= 0.01 + 1e-9)
    close(clipped["dense"]["kernel"], [[0.01, -0.01], [0.005, 0.01]])
    close(clipped["dense"]["bias"], [-0.01])
    close(clipped["out"][0], [0.001, -0.009])  # small leaves untouched
    close(clipped["out"][1], 0.01)
    close(jax.jit(L.clip_weights, static_argnums=1)(params, 0.01)["out"][0], [0.001, -0.009])


# ---------------------------------------------------------------------------------------
# Conditional GANs and InfoGAN
# ---------------------------------------------------------------------------------------

LOGITS = np.asarray(
    [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 1.0], [0.0, 0.0, 0.0]], np.float32
)
CODES = np.asarray([0, 2, 1, 1])


def np_cross_entropy(logits, codes):
    logits = np.asarray(logits, np.float64)
    log_z = np.log(np.sum(np.exp(logits), axis=-1))
    return -(logits[np.arange(len(codes)), codes] - log_z)


def test_categorical_code_loss_values():
    close(L.categorical_code_loss(LOGITS, CODES), np.mean(np_cross_entropy(LOGITS, CODES)))
    close(L.auxiliary_classifier_loss(LOGITS, CODES), np.mean(np_cross_entropy(LOGITS, CODES)))
    # Uniform logits: log K.
    close(L.categorical_code_loss(np.zeros((4, 3), np.float32), CODES), np.log(3))
    # Stable for huge logits: NLLs 0, 2000, 0 and 1000.
    big = np.asarray([[1000.0, -1000.0, 0.0]] * 4, np.float32)
    close(L.categorical_code_loss(big, np.asarray([0, 1, 0, 2])), 750.0)
    close(L.categorical_code_loss(big[:1], np.asarray([0])), 0.0, atol=1e-6)


def test_categorical_code_loss_several_codes_sum_per_sample():
    logits = np.stack([LOGITS, LOGITS[::-1]], axis=1)  # (4, 2, 3)
    codes = np.stack([CODES, CODES[::-1]], axis=1)  # (4, 2)
    per_sample = np_cross_entropy(LOGITS, CODES) + np_cross_entropy(LOGITS[::-1], CODES[::-1])
    close(L.categorical_code_loss(logits, codes), np.mean(per_sample))
    with pytest.raises(ValueError):
        L.categorical_code_loss(LOGITS, CODES[:, None])


MEAN = np.asarray([[0.1, -0.5], [1.0, 0.3], [-0.2, 0.0]], np.float32)
CONT = np.asarray([[0.0, 0.5], [0.8, -1.0], [0.4, 0.2]], np.float32)
LOG_STD = np.asarray([[0.2, -0.3], [0.0, 0.5], [-0.1, 0.1]], np.float32)


def np_gauss_nll(mean, codes, log_std):
    mean, codes, log_std = (np.asarray(a, np.float64) for a in (mean, codes, log_std))
    sigma = np.exp(log_std)
    # -log of the normal density, summed over code dims, averaged over the batch.
    density = np.exp(-0.5 * ((codes - mean) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return np.mean(np.sum(-np.log(density), axis=1))


def test_continuous_code_loss_values():
    close(L.continuous_code_loss(MEAN, CONT, LOG_STD), np_gauss_nll(MEAN, CONT, LOG_STD))
    unit = np_gauss_nll(MEAN, CONT, np.zeros_like(MEAN))
    close(L.continuous_code_loss(MEAN, CONT), unit)
    # Unit variance: half squared error plus D/2 log(2 pi).
    half_se = np.mean(np.sum(0.5 * (CONT.astype(np.float64) - MEAN) ** 2, axis=1))
    close(unit, half_se + np.log(2 * np.pi))  # D = 2
    # A log_std shared by all samples broadcasts.
    shared = np.asarray([0.3, -0.2], np.float32)
    close(
        L.continuous_code_loss(MEAN, CONT, shared),
        np_gauss_nll(MEAN, CONT, np.broadcast_to(shared, MEAN.shape)),
    )


def test_infogan_mutual_information_loss_values():
    cat = np.mean(np_cross_entropy(LOGITS[:3], CODES[:3]))
    cont = np_gauss_nll(MEAN, CONT, LOG_STD)
    got = L.infogan_mutual_information_loss(
        LOGITS[:3], CODES[:3], MEAN, CONT, LOG_STD, lambda_cat=1.0, lambda_cont=0.1
    )
    close(got, cat + 0.1 * cont)
    close(L.infogan_mutual_information_loss(LOGITS[:3], CODES[:3], None, None), cat)
    close(
        L.infogan_mutual_information_loss(None, None, MEAN, CONT, lambda_cont=2.0),
        2.0 * np_gauss_nll(MEAN, CONT, np.zeros_like(MEAN)),
    )
    with pytest.raises(ValueError):
        L.infogan_mutual_information_loss(None, None, None, None)
    with pytest.raises(ValueError):
        L.infogan_mutual_information_loss(LOGITS, None, MEAN, CONT)


def test_infogan_lower_bound_is_below_entropy():
    # -loss + H(c) = L_I <= H(c): the cross-entropy is never negative for categorical codes,
    # and it reaches its minimum 0 for a perfect Q.
    perfect = 50.0 * jax.nn.one_hot(jnp.asarray(CODES), 3)
    close(L.infogan_mutual_information_loss(perfect, CODES, None, None), 0.0, atol=1e-6)
    assert float(L.infogan_mutual_information_loss(LOGITS, CODES, None, None)) > 0


def test_code_losses_grads_jit_vmap():
    def info(lg, m, s):
        return L.infogan_mutual_information_loss(lg, CODES[:3], m, CONT, s, 1.0, 0.5)

    args = (jnp.asarray(LOGITS[:3]), jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    check_grads(jax.jit(info), args, order=1, modes=["rev"], eps=1e-2, atol=2e-2, rtol=2e-2)
    close(jax.jit(info)(*args), info(*args))
    stacked = [np.stack([a, a[::-1] * 0.5]) for a in (LOGITS[:3], MEAN, LOG_STD)]
    close(jax.vmap(info)(*stacked), [info(*(s[i] for s in stacked)) for i in range(2)])


# ---------------------------------------------------------------------------------------
# CycleGAN
# ---------------------------------------------------------------------------------------


def images(*shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


X, X_REC, F_X = images(2, 4, 4, 3, seed=1), images(2, 4, 4, 3, seed=2), images(2, 4, 4, 3, seed=3)
Y, Y_REC, G_Y = images(2, 4, 4, 3, seed=4), images(2, 4, 4, 3, seed=5), images(2, 4, 4, 3, seed=6)
D_Y_FAKE, D_X_FAKE = images(2, 2, 2, 1, seed=7), images(2, 2, 2, 1, seed=8)


def test_cycle_and_identity_losses_values():
    cyc = np.mean(np.abs(X_REC - X)) + np.mean(np.abs(Y_REC - Y))
    idt = np.mean(np.abs(G_Y - Y)) + np.mean(np.abs(F_X - X))
    close(L.cycle_consistency_loss(X, X_REC, Y, Y_REC), cyc)
    close(L.identity_loss(X, F_X, Y, G_Y), idt)
    close(L.cycle_consistency_loss(X, X, Y, Y), 0.0)
    with pytest.raises(ValueError):
        L.cycle_consistency_loss(X, X_REC[:1], Y, Y_REC)


def test_cyclegan_generator_loss_lsgan_total_is_the_weighted_sum():
    adv_g = np.mean((D_Y_FAKE.astype(np.float64) - 1) ** 2)  # torch MSELoss: no 1/2
    adv_f = np.mean((D_X_FAKE.astype(np.float64) - 1) ** 2)
    cyc = np.mean(np.abs(X_REC - X)) + np.mean(np.abs(Y_REC - Y))
    idt = np.mean(np.abs(G_Y - Y)) + np.mean(np.abs(F_X - X))
    total, parts = L.cyclegan_generator_loss(
        D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, g_y=G_Y, f_x=F_X
    )
    close(total, adv_g + adv_f + 10.0 * cyc + 10.0 * 0.5 * idt)
    close(parts["adv_g"], adv_g)
    close(parts["adv_f"], adv_f)
    close(parts["cycle"], cyc)
    close(parts["identity"], idt)
    total2, parts2 = L.cyclegan_generator_loss(
        D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, lambda_cycle=3.0, lambda_identity=0.0
    )
    close(total2, adv_g + adv_f + 3.0 * cyc)
    assert "identity" not in parts2


def test_cyclegan_generator_loss_bce_and_errors():
    adv = np.mean(-np.log(np_sigmoid(D_Y_FAKE))) + np.mean(-np.log(np_sigmoid(D_X_FAKE)))
    cyc = np.mean(np.abs(X_REC - X)) + np.mean(np.abs(Y_REC - Y))
    total, _ = L.cyclegan_generator_loss(
        D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, lambda_identity=0.0, adversarial="bce"
    )
    close(total, adv + 10.0 * cyc)
    with pytest.raises(ValueError, match="lambda_identity"):
        L.cyclegan_generator_loss(D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC)
    with pytest.raises(ValueError, match="both"):
        L.cyclegan_generator_loss(D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, g_y=G_Y)
    with pytest.raises(ValueError, match="adversarial"):
        L.cyclegan_generator_loss(
            D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, lambda_identity=0.0, adversarial="wgan"
        )


def test_cyclegan_discriminator_loss_values():
    r, f = D_Y_FAKE.astype(np.float64), D_X_FAKE.astype(np.float64)
    close(L.cyclegan_discriminator_loss(r, f), 0.5 * (np.mean((r - 1) ** 2) + np.mean(f**2)))
    bce = 0.5 * (np.mean(-np.log(np_sigmoid(r))) + np.mean(-np.log(1 - np_sigmoid(f))))
    close(L.cyclegan_discriminator_loss(r, f, adversarial="bce"), bce)
    close(L.cyclegan_discriminator_loss(jnp.ones(3), jnp.zeros(3)), 0.0)


def test_cyclegan_losses_grads_jit_vmap():
    def gen(dy, dx, xr, yr, gy, fx):
        return L.cyclegan_generator_loss(dy, dx, X, xr, Y, yr, g_y=gy, f_x=fx)[0]

    # Keep |difference| away from 0 so that L1 is smooth at the finite-difference scale.
    args = tuple(
        jnp.asarray(a)
        for a in (
            D_Y_FAKE,
            D_X_FAKE,
            X + 0.2 * np.sign(X_REC - X),
            Y + 0.2 * np.sign(Y_REC - Y),
            Y + 0.2 * np.sign(G_Y - Y),
            X + 0.2 * np.sign(F_X - X),
        )
    )
    check_grads(jax.jit(gen), args, order=1, modes=["rev"], eps=1e-3, atol=1e-2, rtol=1e-2)
    disc = functools.partial(L.cyclegan_discriminator_loss, adversarial="bce")
    check_grads(disc, (args[0], args[1]), order=1, modes=["rev"], eps=1e-2, atol=2e-2, rtol=2e-2)
    jitted = jax.jit(L.cyclegan_generator_loss, static_argnames="adversarial")
    total, parts = jitted(D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, G_Y, F_X, adversarial="bce")
    ref_total, ref_parts = L.cyclegan_generator_loss(
        D_Y_FAKE, D_X_FAKE, X, X_REC, Y, Y_REC, G_Y, F_X, adversarial="bce"
    )
    close(total, ref_total)
    assert set(parts) == set(ref_parts)
    pair = (np.stack([D_Y_FAKE, -D_Y_FAKE]), np.stack([D_X_FAKE, 2 * D_X_FAKE]))
    close(
        jax.vmap(L.cyclegan_discriminator_loss)(*pair),
        [L.cyclegan_discriminator_loss(pair[0][i], pair[1][i]) for i in range(2)],
    )


# ---------------------------------------------------------------------------------------
# Super-resolution
# ---------------------------------------------------------------------------------------

SR, HR = images(2, 6, 6, 3, seed=11), images(2, 6, 6, 3, seed=12)
REAL_L, FAKE_L = images(2, 1, seed=13) * 3, images(2, 1, seed=14) * 3
PROJ = images(3, 4, seed=15)


def feature_fn(x):
    """A tiny 'network' with two feature maps: a projection and its ReLU."""
    h = jnp.asarray(x) @ PROJ
    return (h, jax.nn.relu(h))


def np_features(x):
    h = np.asarray(x, np.float64) @ PROJ.astype(np.float64)
    return (h, np.maximum(h, 0))


def test_pixel_loss_values():
    d = SR.astype(np.float64) - HR
    close(L.pixel_loss(SR, HR), np.mean(np.abs(d)))
    close(L.pixel_loss(SR, HR, kind="l2"), np.mean(d**2))
    with pytest.raises(ValueError):
        L.pixel_loss(SR, HR, kind="l3")
    with pytest.raises(ValueError):
        L.pixel_loss(SR, HR[:, :3])


def test_perceptual_loss_values():
    (a0, a1), (b0, b1) = np_features(SR), np_features(HR)
    close(
        L.perceptual_loss(feature_fn, SR, HR), np.mean(np.abs(a0 - b0)) + np.mean(np.abs(a1 - b1))
    )
    close(
        L.perceptual_loss(feature_fn, SR, HR, kind="l2", weights=(0.25, 2.0)),
        0.25 * np.mean((a0 - b0) ** 2) + 2.0 * np.mean((a1 - b1) ** 2),
    )
    single = L.perceptual_loss(lambda x: feature_fn(x)[0], SR, HR, kind="l2")
    close(single, np.mean((a0 - b0) ** 2))
    with pytest.raises(ValueError):
        L.perceptual_loss(feature_fn, SR, HR, weights=(1.0,))


def test_srgan_generator_loss_values():
    adv = np.mean(-np.log(np_sigmoid(FAKE_L)))
    (a0, a1), (b0, b1) = np_features(SR), np_features(HR)
    vgg = np.mean((a0 - b0) ** 2) + np.mean((a1 - b1) ** 2)
    total, parts = L.srgan_generator_loss(SR, HR, FAKE_L, feature_fn=feature_fn)
    close(total, vgg + 1e-3 * adv)
    close(parts["content"], vgg)
    close(parts["adversarial"], adv)
    mse = np.mean((SR.astype(np.float64) - HR) ** 2)
    total, parts = L.srgan_generator_loss(SR, HR, FAKE_L, adversarial_weight=0.1)
    close(total, mse + 0.1 * adv)


def test_esrgan_generator_loss_values():
    r, f = REAL_L.astype(np.float64), FAKE_L.astype(np.float64)
    ra_g = -np.mean(np.log(1 - np_sigmoid(r - f.mean()))) - np.mean(
        np.log(np_sigmoid(f - r.mean()))
    )
    (a0, a1), (b0, b1) = np_features(SR), np_features(HR)
    percep = np.mean(np.abs(a0 - b0)) + np.mean(np.abs(a1 - b1))
    l1 = np.mean(np.abs(SR.astype(np.float64) - HR))
    total, parts = L.esrgan_generator_loss(SR, HR, REAL_L, FAKE_L, feature_fn=feature_fn)
    close(total, percep + 5e-3 * ra_g + 1e-2 * l1)
    close(parts["perceptual"], percep)
    close(parts["adversarial"], ra_g)
    close(parts["pixel"], l1)
    total, parts = L.esrgan_generator_loss(
        SR, HR, REAL_L, FAKE_L, adversarial_weight=0.0, pixel_weight=1.0
    )
    close(total, l1)
    assert "perceptual" not in parts


def test_sr_losses_grads_jit_vmap():
    def esr(sr, fake):
        return L.esrgan_generator_loss(sr, HR, REAL_L, fake, feature_fn=feature_fn)[0]

    def sr_l2(sr, fake):
        return L.srgan_generator_loss(sr, HR, fake, feature_fn=feature_fn)[0]

    # Move SR away from HR so that |SR - HR| is smooth at the finite-difference scale (the
    # fixed inputs cross no ReLU kink of feature_fn within eps either).
    sr = jnp.asarray(HR + 0.3 * np.where(SR > HR, 1.0, -1.0), jnp.float32)
    args = (sr, jnp.asarray(FAKE_L))
    check_grads(jax.jit(sr_l2), args, order=1, modes=["rev"], eps=1e-3, atol=1e-2, rtol=1e-2)
    g_pix = jax.grad(lambda s: L.pixel_loss(s, HR, kind="l2"))(sr)
    close(g_pix, 2 * (np.asarray(sr, np.float64) - HR) / HR.size, rtol=1e-5)
    g_l1 = jax.grad(lambda s: L.pixel_loss(s, HR))(sr)
    close(g_l1, np.sign(np.asarray(sr) - HR) / HR.size, rtol=1e-5)
    close(jax.jit(esr)(*args), esr(*args))
    stacked = (np.stack([sr, -sr]), np.stack([FAKE_L, -FAKE_L]))
    close(jax.vmap(esr)(*stacked), [esr(stacked[0][i], stacked[1][i]) for i in range(2)], rtol=1e-5)
