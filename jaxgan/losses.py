"""Every loss and penalty of jaxgan as a pure function of arrays.

Conventions shared by the whole module:

* Discriminator outputs are **raw logits** (or unbounded critic scores). Sigmoid-based losses
  use the stable identities ``-log(sigmoid(x)) = softplus(-x)`` and
  ``-log(1 - sigmoid(x)) = softplus(x)``, so they stay finite for logits of any size.
* Every loss returns a scalar: the mean over the batch (and over any further positions of a
  discriminator output, e.g. the patches of a PatchGAN, which equals the mean over the batch
  of per-sample means when all samples have the same shape).
* Nothing here holds state: every function can be ``jax.jit``-ed, differentiated and
  ``jax.vmap``-ed. String choices (``kind``, ``adversarial``) are Python-level and must be
  static under ``jax.jit`` (bind them with ``functools.partial``).
* ``E[.]`` in the docstrings is the sample mean over the batch, ``D(x) = sigmoid(logit)``.

Sections: unconditional GANs, penalties and constraints, conditional GANs and InfoGAN,
CycleGAN, super-resolution (SRGAN, ESRGAN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "LSGAN_CODINGS",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "relativistic_average_ls_discriminator_loss",
    "relativistic_average_ls_generator_loss",
    "relativistic_average_discriminator_loss",
    "relativistic_average_generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "clip_weights",
    "categorical_code_loss",
    "continuous_code_loss",
    "infogan_mutual_information_loss",
    "auxiliary_classifier_loss",
    "cycle_consistency_loss",
    "identity_loss",
    "cyclegan_generator_loss",
    "cyclegan_discriminator_loss",
    "pixel_loss",
    "perceptual_loss",
    "srgan_generator_loss",
    "esrgan_generator_loss",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _mean(x: ArrayLike) -> jax.Array:
    return jnp.mean(jnp.asarray(x))


def _same_shape(name_a: str, a: ArrayLike, name_b: str, b: ArrayLike) -> None:
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {jnp.shape(a)} and {jnp.shape(b)}"
        )


# ---------------------------------------------------------------------------------------
# Unconditional GANs: minimax / non-saturating, Wasserstein, least squares, relativistic
# ---------------------------------------------------------------------------------------


def minimax_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
    """Discriminator loss of the original GAN (Goodfellow et al. 2014, "Generative
    Adversarial Nets").

    L_D = -E[log D(x)] - E[log(1 - D(G(z)))]
        = E[softplus(-real_logits)] + E[softplus(fake_logits)]

    i.e. binary cross-entropy with label 1 for real and 0 for fake samples.
    """
    return _mean(jax.nn.softplus(-jnp.asarray(real_logits))) + _mean(
        jax.nn.softplus(jnp.asarray(fake_logits))
    )


def minimax_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Saturating generator loss of the minimax game (Goodfellow et al. 2014), to minimise.

    L_G = E[log(1 - D(G(z)))] = -E[softplus(fake_logits)]

    Its gradient vanishes when D confidently rejects the fakes (fake_logits -> -inf); that
    is why the paper recommends :func:`non_saturating_generator_loss` in practice.
    """
    return -_mean(jax.nn.softplus(jnp.asarray(fake_logits)))


def non_saturating_generator_loss(fake_logits: ArrayLike) -> jax.Array:
    """Non-saturating generator loss (Goodfellow et al. 2014, section 3).

    L_G = -E[log D(G(z))] = E[softplus(-fake_logits)]
    """
    return _mean(jax.nn.softplus(-jnp.asarray(fake_logits)))


def wasserstein_critic_loss(real_scores: ArrayLike, fake_scores: ArrayLike) -> jax.Array:
    """Critic loss of WGAN (Arjovsky et al. 2017, "Wasserstein GAN").

    L_C = E[f(G(z))] - E[f(x)]

    (minimising it maximises the critic's estimate E[f(x)] - E[f(G(z))] of the Wasserstein-1
    distance). The Lipschitz constraint comes separately: :func:`clip_weights` (WGAN) or
    :func:`gradient_penalty` (WGAN-GP).
    """
    return _mean(fake_scores) - _mean(real_scores)


def wasserstein_generator_loss(fake_scores: ArrayLike) -> jax.Array:
    """Generator loss of WGAN (Arjovsky et al. 2017).

    L_G = -E[f(G(z))]
    """
    return -_mean(fake_scores)


# (a, b, c) of Mao et al. 2017, "Least Squares Generative Adversarial Networks":
# a = D's target for fakes, b = D's target for reals, c = the value G wants D to believe.
# "-11": b - c = 1 and b - a = 2, the choice under which minimising the objective minimises
# the Pearson chi^2 divergence (section 3.2.1); "01": the 0-1 binary coding (section 3.2.2).
LSGAN_CODINGS: dict[str, tuple[float, float, float]] = {
    "01": (0.0, 1.0, 1.0),
    "-11": (-1.0, 1.0, 0.0),
}


def least_squares_discriminator_loss(
    real: ArrayLike, fake: ArrayLike, a: float = 0.0, b: float = 1.0
) -> jax.Array:
    """Discriminator loss of LSGAN (Mao et al. 2017), on raw outputs.

    L_D = 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]

    See :data:`LSGAN_CODINGS` for the paper's two (a, b, c) codings.
    """
    return 0.5 * _mean(jnp.square(jnp.asarray(real) - b)) + 0.5 * _mean(
        jnp.square(jnp.asarray(fake) - a)
    )


def least_squares_generator_loss(fake: ArrayLike, c: float = 1.0) -> jax.Array:
    """Generator loss of LSGAN (Mao et al. 2017), on raw outputs.

    L_G = 1/2 E[(D(G(z)) - c)^2]
    """
    return 0.5 * _mean(jnp.square(jnp.asarray(fake) - c))


def relativistic_average_ls_discriminator_loss(real: ArrayLike, fake: ArrayLike) -> jax.Array:
    """Discriminator loss of RaLSGAN (Jolicoeur-Martineau 2018, "The relativistic
    discriminator: a key element missing from standard GAN"), on raw critic outputs C.

    L_D = E_x[(C(x) - E C(G(z)) - 1)^2] + E_z[(C(G(z)) - E C(x) + 1)^2]

    This is the paper's equation, without a 1/2 factor. The author's reference code divides
    the sum by 2; the factor only rescales the gradient (under Adam it is essentially
    invisible), so the paper's form is kept.
    """
    real = jnp.asarray(real)
    fake = jnp.asarray(fake)
    return _mean(jnp.square(real - jnp.mean(fake) - 1.0)) + _mean(
        jnp.square(fake - jnp.mean(real) + 1.0)
    )


def relativistic_average_ls_generator_loss(real: ArrayLike, fake: ArrayLike) -> jax.Array:
    """Generator loss of RaLSGAN (Jolicoeur-Martineau 2018), on raw critic outputs C.

    L_G = E_z[(C(G(z)) - E C(x) - 1)^2] + E_x[(C(x) - E C(G(z)) + 1)^2]

    The paper's form, without the 1/2 of the reference code (see
    :func:`relativistic_average_ls_discriminator_loss`).
    """
    real = jnp.asarray(real)
    fake = jnp.asarray(fake)
    return _mean(jnp.square(fake - jnp.mean(real) - 1.0)) + _mean(
        jnp.square(real - jnp.mean(fake) + 1.0)
    )


def relativistic_average_discriminator_loss(
    real_logits: ArrayLike, fake_logits: ArrayLike
) -> jax.Array:
    """Discriminator loss of the relativistic average standard GAN, RaSGAN
    (Jolicoeur-Martineau 2018), in the form ESRGAN uses (Wang et al. 2018, eq. 2).

    D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)])
    L_D = -E_{x_r}[log D_Ra(x_r, x_f)] - E_{x_f}[log(1 - D_Ra(x_f, x_r))]
        = E[softplus(-(C(x_r) - E C(x_f)))] + E[softplus(C(x_f) - E C(x_r))]

    The papers' form, without a 1/2 factor; the reference implementations of both papers
    halve the sum (a constant rescaling of the gradient).
    """
    real_logits = jnp.asarray(real_logits)
    fake_logits = jnp.asarray(fake_logits)
    real_rel = real_logits - jnp.mean(fake_logits)
    fake_rel = fake_logits - jnp.mean(real_logits)
    return _mean(jax.nn.softplus(-real_rel)) + _mean(jax.nn.softplus(fake_rel))


def relativistic_average_generator_loss(
    real_logits: ArrayLike, fake_logits: ArrayLike
) -> jax.Array:
    """Generator loss of RaSGAN, the symmetric counterpart of
    :func:`relativistic_average_discriminator_loss` (Wang et al. 2018, eq. 3).

    L_G = -E_{x_r}[log(1 - D_Ra(x_r, x_f))] - E_{x_f}[log D_Ra(x_f, x_r)]
        = E[softplus(C(x_r) - E C(x_f))] + E[softplus(-(C(x_f) - E C(x_r)))]

    The generator gets gradients from both terms (through the fakes in each).
    """
    real_logits = jnp.asarray(real_logits)
    fake_logits = jnp.asarray(fake_logits)
    real_rel = real_logits - jnp.mean(fake_logits)
    fake_rel = fake_logits - jnp.mean(real_logits)
    return _mean(jax.nn.softplus(real_rel)) + _mean(jax.nn.softplus(-fake_rel))


# ---------------------------------------------------------------------------------------
# Penalties and constraints: gradient penalty (WGAN-GP), R1, weight clipping (WGAN)
# ---------------------------------------------------------------------------------------


def _per_sample_sq_norm(g: jax.Array) -> jax.Array:
    """Squared L2 norm of each sample of a batch (all axes but the first)."""
    return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)


def _safe_sqrt(s: jax.Array) -> jax.Array:
    """sqrt with gradient 0 (not NaN) at 0: the gradient of the critic can vanish."""
    positive = s > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1.0)), 0.0)


def _input_gradients(critic_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    # The critic scores samples independently, so the gradient of the summed scores with
    # respect to the batch holds each sample's own gradient.
    return jax.grad(lambda v: jnp.sum(critic_fn(v)))(x)


def gradient_penalty(
    critic_fn: Callable[[jax.Array], jax.Array],
    real: ArrayLike,
    fake: ArrayLike,
    key: jax.Array,
    target: float = 1.0,
) -> jax.Array:
    """Two-sided gradient penalty of WGAN-GP (Gulrajani et al. 2017, "Improved Training of
    Wasserstein GANs", Algorithm 1).

    alpha_i ~ U[0, 1] per sample,  x_hat_i = alpha_i x_i + (1 - alpha_i) x~_i
    GP = E_i[(||grad_x C(x_hat_i)||_2 - target)^2]

    ``critic_fn`` maps a batch (B, ...) to scores of shape (B,) (or (B, 1), anything whose sum
    is the sum of per-sample scores). The per-sample gradients come from one ``jax.grad`` of
    the summed scores, which is exact when the critic treats samples independently, as the
    paper requires (no BatchNorm in the critic). alpha is drawn as
    ``jax.random.uniform(key, (B, 1, ..., 1))``. The result is differentiable with respect to
    whatever ``critic_fn`` closes over (double backward); multiply it by lambda (10 in the
    paper) in the critic's loss. ``target`` is the norm the gradients are pushed to.
    """
    real = jnp.asarray(real)
    fake = jnp.asarray(fake)
    _same_shape("real", real, "fake", fake)
    if real.ndim < 1:
        raise ValueError("gradient_penalty needs a batch axis")
    alpha_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    dtype = real.dtype if jnp.issubdtype(real.dtype, jnp.floating) else jnp.float32
    alpha = jax.random.uniform(key, alpha_shape, dtype=dtype)
    x_hat = alpha * real + (1.0 - alpha) * fake
    norms = _safe_sqrt(_per_sample_sq_norm(_input_gradients(critic_fn, x_hat)))
    return jnp.mean(jnp.square(norms - target))


def r1_penalty(critic_fn: Callable[[jax.Array], jax.Array], real: ArrayLike) -> jax.Array:
    """R1 regulariser (Mescheder et al. 2018, "Which Training Methods for GANs do actually
    Converge?").

    R1 = E_x[||grad_x D(x)||_2^2]   on real data, D given as raw logits

    The paper's regulariser is gamma/2 * R1: the caller multiplies by gamma / 2. Same
    per-sample gradient convention as :func:`gradient_penalty`.
    """
    real = jnp.asarray(real)
    return jnp.mean(_per_sample_sq_norm(_input_gradients(critic_fn, real)))


def clip_weights(params: Any, c: float) -> Any:
    """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1): every leaf of ``params``
    clipped to [-c, c]. Returns a pytree of the same structure."""
    return jax.tree.map(lambda p: jnp.clip(p, -c, c), params)


# ---------------------------------------------------------------------------------------
# Conditional GANs and InfoGAN
# ---------------------------------------------------------------------------------------


def categorical_code_loss(code_logits: ArrayLike, codes: ArrayLike) -> jax.Array:
    """Cross-entropy of integer codes under softmax(code_logits).

    CE = E_i[ sum_j -log softmax(logits_ij)[c_ij] ]

    ``code_logits`` is (B, ..., K) and ``codes`` (B, ...) integers in [0, K). With one code
    per sample ((B, K) and (B,)) this is the usual mean cross-entropy; with several
    categorical codes per sample ((B, n, K) and (B, n)) their negative log-likelihoods are
    summed per sample, as in :func:`continuous_code_loss`, and averaged over the batch.
    """
    code_logits = jnp.asarray(code_logits)
    codes = jnp.asarray(codes)
    if code_logits.shape[:-1] != codes.shape:
        raise ValueError(
            f"code_logits (B, ..., K) and codes (B, ...) disagree: {code_logits.shape} vs "
            f"{codes.shape}"
        )
    log_p = jax.nn.log_softmax(code_logits, axis=-1)
    nll = -jnp.take_along_axis(log_p, codes[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return jnp.mean(jnp.sum(nll.reshape(nll.shape[0], -1), axis=1))


def continuous_code_loss(
    mean: ArrayLike, codes: ArrayLike, log_std: ArrayLike | None = None
) -> jax.Array:
    """Gaussian negative log-likelihood of continuous codes (InfoGAN's factored Gaussian Q).

    NLL_i = sum_d [ 1/2 log(2 pi) + log_std_id + 1/2 ((c_id - mean_id) / exp(log_std_id))^2 ]
    loss  = E_i[NLL_i]

    With ``log_std=None`` the standard deviation is fixed to 1 and this is
    sum_d 1/2 (c_id - mean_id)^2 + D/2 log(2 pi): half the squared error plus the constant
    D/2 log(2 pi), kept so that the value is a true NLL (the constant has no gradient).
    ``mean`` and ``codes`` are (B, D) (any (B, ...) works; all non-batch axes are summed).
    """
    mean = jnp.asarray(mean)
    codes = jnp.asarray(codes)
    _same_shape("mean", mean, "codes", codes)
    if log_std is None:
        nll = _HALF_LOG_2PI + 0.5 * jnp.square(codes - mean)
    else:
        log_std = jnp.broadcast_to(jnp.asarray(log_std), mean.shape)
        z = (codes - mean) * jnp.exp(-log_std)
        nll = _HALF_LOG_2PI + log_std + 0.5 * jnp.square(z)
    return jnp.mean(jnp.sum(nll.reshape(nll.shape[0], -1), axis=1))


def infogan_mutual_information_loss(
    cat_logits: ArrayLike | None,
    cat_codes: ArrayLike | None,
    cont_mean: ArrayLike | None,
    cont_codes: ArrayLike | None,
    cont_log_std: ArrayLike | None = None,
    lambda_cat: float = 1.0,
    lambda_cont: float = 1.0,
) -> jax.Array:
    """Negative variational lower bound of the mutual information (Chen et al. 2016,
    "InfoGAN", eq. 4-5), to add to both G's and Q's losses.

    L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)}[log Q(c | x)] + H(c)  <=  I(c; G(z, c))
    loss = lambda_cat * E[-log Q(c_cat | x)] + lambda_cont * E[-log Q(c_cont | x)]
         = -L_I + H(c)     (for lambda_cat = lambda_cont = 1)

    The entropy H(c) of the fixed code prior is a constant and is left out. The categorical
    part is :func:`categorical_code_loss`, the continuous part :func:`continuous_code_loss`
    (a true Gaussian NLL). Pass ``None`` for the logits/codes of a kind of code the model
    does not have. The paper uses lambda = 1 for discrete codes and a smaller one for
    continuous codes in some experiments.
    """
    if (cat_logits is None) != (cat_codes is None):
        raise ValueError("give both cat_logits and cat_codes, or neither")
    if (cont_mean is None) != (cont_codes is None):
        raise ValueError("give both cont_mean and cont_codes, or neither")
    if cat_logits is None and cont_mean is None:
        raise ValueError("InfoGAN loss needs categorical or continuous codes (both are None)")
    total = jnp.zeros((), jnp.float32)
    if cat_logits is not None:
        total = total + lambda_cat * categorical_code_loss(cat_logits, cat_codes)
    if cont_mean is not None:
        total = total + lambda_cont * continuous_code_loss(cont_mean, cont_codes, cont_log_std)
    return total


def auxiliary_classifier_loss(class_logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """Class-label term of AC-GAN (Odena et al. 2017, "Conditional Image Synthesis with
    Auxiliary Classifier GANs"): the negative log-likelihood of the right class,

    L_C = E[-log P(C = c | X)] = mean cross-entropy of ``labels`` (B,) under
    softmax(class_logits) (B, K).

    D minimises it on real and fake samples, G on its fakes (L_C is maximised in the paper's
    sign convention, which is this loss negated).
    """
    return categorical_code_loss(class_logits, labels)


# ---------------------------------------------------------------------------------------
# CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
# Adversarial Networks"); G: X -> Y, F: Y -> X, D_Y judges G(x), D_X judges F(y).
# ---------------------------------------------------------------------------------------

_ADVERSARIAL_KINDS = ("lsgan", "bce")


def _check_adversarial(adversarial: str) -> None:
    if adversarial not in _ADVERSARIAL_KINDS:
        raise ValueError(f"adversarial must be one of {_ADVERSARIAL_KINDS}, got {adversarial!r}")


def _target_loss(logits: ArrayLike, target_real: bool, adversarial: str) -> jax.Array:
    """MSE to 1/0 (lsgan, no 1/2 factor, like torch MSELoss) or BCE with logits (bce)."""
    logits = jnp.asarray(logits)
    if adversarial == "lsgan":
        return _mean(jnp.square(logits - (1.0 if target_real else 0.0)))
    return _mean(jax.nn.softplus(-logits if target_real else logits))


def cycle_consistency_loss(
    x: ArrayLike, x_rec: ArrayLike, y: ArrayLike, y_rec: ArrayLike
) -> jax.Array:
    """Cycle-consistency loss of CycleGAN (Zhu et al. 2017, eq. 2), unweighted.

    L_cyc = E[|F(G(x)) - x|_1] + E[|G(F(y)) - y|_1]

    with each term the mean absolute error over all pixels (torch ``L1Loss`` with mean
    reduction, as in the reference implementation). ``x_rec = F(G(x))``, ``y_rec =
    G(F(y))``. The weight lambda (10) is applied by :func:`cyclegan_generator_loss`.
    """
    _same_shape("x", x, "x_rec", x_rec)
    _same_shape("y", y, "y_rec", y_rec)
    return _mean(jnp.abs(jnp.asarray(x_rec) - jnp.asarray(x))) + _mean(
        jnp.abs(jnp.asarray(y_rec) - jnp.asarray(y))
    )


def identity_loss(x: ArrayLike, f_x: ArrayLike, y: ArrayLike, g_y: ArrayLike) -> jax.Array:
    """Identity-mapping loss of CycleGAN (Zhu et al. 2017, section 5.2), unweighted.

    L_idt = E[|G(y) - y|_1] + E[|F(x) - x|_1]     (mean absolute errors)

    ``f_x = F(x)``, ``g_y = G(y)``. Weighted by lambda_cycle * lambda_identity in
    :func:`cyclegan_generator_loss`.
    """
    _same_shape("x", x, "f_x", f_x)
    _same_shape("y", y, "g_y", g_y)
    return _mean(jnp.abs(jnp.asarray(g_y) - jnp.asarray(y))) + _mean(
        jnp.abs(jnp.asarray(f_x) - jnp.asarray(x))
    )


def cyclegan_generator_loss(
    d_y_fake: ArrayLike,
    d_x_fake: ArrayLike,
    x: ArrayLike,
    x_rec: ArrayLike,
    y: ArrayLike,
    y_rec: ArrayLike,
    g_y: ArrayLike | None = None,
    f_x: ArrayLike | None = None,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.5,
    adversarial: str = "lsgan",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Full objective of CycleGAN's two generators (Zhu et al. 2017, eq. 3 + identity).

    L = L_adv(G) + L_adv(F) + lambda_cycle * L_cyc + lambda_cycle * lambda_identity * L_idt

    * ``d_y_fake = D_Y(G(x))``, ``d_x_fake = D_X(F(y))``: raw discriminator outputs.
    * ``adversarial='lsgan'`` (the paper's choice): L_adv = E[(D(fake) - 1)^2], the torch
      ``MSELoss`` of the reference implementation: no 1/2 factor (unlike
      :func:`least_squares_generator_loss`). ``'bce'``: E[softplus(-D(fake))], the
      non-saturating BCE against label 1. It is a Python-level (static) choice.
    * Cycle and identity terms: :func:`cycle_consistency_loss`, :func:`identity_loss`. As in
      the reference code, the identity weight is relative to the cycle weight. The identity
      term needs ``g_y = G(y)`` and ``f_x = F(x)``; with ``lambda_identity=0`` they may be
      left out.

    Returns ``(total, parts)`` with the unweighted terms in ``parts``: ``adv_g`` (G vs D_Y),
    ``adv_f`` (F vs D_X), ``cycle`` and, when computed, ``identity``.
    """
    _check_adversarial(adversarial)
    adv_g = _target_loss(d_y_fake, True, adversarial)
    adv_f = _target_loss(d_x_fake, True, adversarial)
    cycle = cycle_consistency_loss(x, x_rec, y, y_rec)
    parts = {"adv_g": adv_g, "adv_f": adv_f, "cycle": cycle}
    total = adv_g + adv_f + lambda_cycle * cycle
    if (g_y is None) != (f_x is None):
        raise ValueError("the identity term needs both g_y = G(y) and f_x = F(x)")
    if g_y is None:
        if lambda_identity != 0:
            raise ValueError(
                f"lambda_identity={lambda_identity} but g_y and f_x were not given: pass "
                "g_y = G(y) and f_x = F(x), or set lambda_identity=0"
            )
    else:
        idt = identity_loss(x, f_x, y, g_y)
        parts["identity"] = idt
        total = total + lambda_cycle * lambda_identity * idt
    return total, parts


def cyclegan_discriminator_loss(
    real_logits: ArrayLike, fake_logits: ArrayLike, adversarial: str = "lsgan"
) -> jax.Array:
    """Loss of one CycleGAN discriminator (D_X or D_Y), as in the reference implementation.

    lsgan: L_D = 1/2 (E[(D(real) - 1)^2] + E[D(fake)^2])
    bce:   L_D = 1/2 (E[softplus(-D(real))] + E[softplus(D(fake))])

    The 1/2 slows D relative to G (Zhu et al. 2017, section 4); ``fake_logits`` are usually
    computed on fakes from a history buffer of generated images.
    """
    _check_adversarial(adversarial)
    return 0.5 * (
        _target_loss(real_logits, True, adversarial) + _target_loss(fake_logits, False, adversarial)
    )


# ---------------------------------------------------------------------------------------
# Super-resolution: SRGAN (Ledig et al. 2017), ESRGAN (Wang et al. 2018)
# ---------------------------------------------------------------------------------------

_PIXEL_KINDS = ("l1", "l2")


def pixel_loss(sr: ArrayLike, hr: ArrayLike, kind: str = "l1") -> jax.Array:
    """Pixel-wise content loss between a super-resolved and a high-resolution image batch.

    l1: E[|SR - HR|]        l2: E[(SR - HR)^2]       (means over all elements)

    ``l2`` is SRGAN's pixel-wise MSE (Ledig et al. 2017, eq. 4), ``l1`` ESRGAN's L_1
    (Wang et al. 2018, eq. 4). ``kind`` is a Python-level choice.
    """
    if kind not in _PIXEL_KINDS:
        raise ValueError(f"kind must be one of {_PIXEL_KINDS}, got {kind!r}")
    _same_shape("sr", sr, "hr", hr)
    diff = jnp.asarray(sr) - jnp.asarray(hr)
    return _mean(jnp.abs(diff) if kind == "l1" else jnp.square(diff))


def perceptual_loss(
    feature_fn: Callable[[jax.Array], Any],
    sr: ArrayLike,
    hr: ArrayLike,
    kind: str = "l1",
    weights: Sequence[float] | None = None,
) -> jax.Array:
    """Feature-space ("perceptual" / VGG) loss (Ledig et al. 2017, eq. 5; Wang et al. 2018).

    L = sum_k w_k * E[dist(phi_k(SR), phi_k(HR))],   dist = |.| (l1) or (.)^2 (l2)

    ``feature_fn`` maps an image batch to one feature array or to a tuple/list of them (one
    per layer); ``weights`` (default all 1) weights the layers, whose losses are summed. SRGAN
    uses the MSE of VGG19 relu5_4 features scaled by 1/12.75; ESRGAN the L1 of VGG19 conv5_4
    features before activation. Any such choice (layer, input normalisation, scaling) belongs
    to ``feature_fn``.
    """
    _same_shape("sr", sr, "hr", hr)
    feats_sr = feature_fn(jnp.asarray(sr))
    feats_hr = feature_fn(jnp.asarray(hr))
    if not isinstance(feats_sr, (tuple, list)):
        feats_sr, feats_hr = (feats_sr,), (feats_hr,)
    if weights is None:
        weights = (1.0,) * len(feats_sr)
    if len(weights) != len(feats_sr):
        raise ValueError(f"{len(weights)} weights given for {len(feats_sr)} feature maps")
    return sum(
        (w * pixel_loss(a, b, kind) for w, a, b in zip(weights, feats_sr, feats_hr, strict=True)),
        jnp.zeros((), jnp.float32),
    )


def srgan_generator_loss(
    sr: ArrayLike,
    hr: ArrayLike,
    fake_logits: ArrayLike,
    feature_fn: Callable[[jax.Array], Any] | None = None,
    adversarial_weight: float = 1e-3,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Perceptual loss of SRGAN's generator (Ledig et al. 2017, eq. 3).

    l^SR = l_content + 1e-3 * l_Gen,   l_Gen = E[-log D(G(LR))]  (non-saturating)

    The content loss is the VGG feature MSE (:func:`perceptual_loss` with ``kind='l2'``) when
    ``feature_fn`` is given (SRGAN), else the pixel MSE (SRResNet-MSE / SRGAN-MSE). The paper
    sums l_Gen over the batch; here it is a mean, like the content loss.

    Returns ``(total, {"content": ..., "adversarial": ...})`` (parts unweighted).
    """
    if feature_fn is None:
        content = pixel_loss(sr, hr, "l2")
    else:
        content = perceptual_loss(feature_fn, sr, hr, "l2")
    adv = non_saturating_generator_loss(fake_logits)
    return content + adversarial_weight * adv, {"content": content, "adversarial": adv}


def esrgan_generator_loss(
    sr: ArrayLike,
    hr: ArrayLike,
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    feature_fn: Callable[[jax.Array], Any] | None = None,
    perceptual_weight: float = 1.0,
    adversarial_weight: float = 5e-3,
    pixel_weight: float = 1e-2,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total generator loss of ESRGAN (Wang et al. 2018, eq. 3-4).

    L_G = L_percep + lambda * L_G^Ra + eta * L_1,   lambda = 5e-3, eta = 1e-2

    * L_percep: L1 distance of features (:func:`perceptual_loss` with ``kind='l1'``), left out
      when ``feature_fn`` is None (e.g. for the PSNR-oriented pre-training, which is L_1 only).
    * L_G^Ra: :func:`relativistic_average_generator_loss` on D's raw outputs for the HR batch
      (``real_logits``) and for SR (``fake_logits``), in the paper's form (no 1/2). The
      official code halves this term before weighting it by 5e-3; use
      ``adversarial_weight=2.5e-3`` to match it exactly.
    * L_1: :func:`pixel_loss` with ``kind='l1'``.

    Returns ``(total, parts)`` with the unweighted ``pixel``, ``adversarial`` and (with a
    feature network) ``perceptual`` terms.
    """
    pix = pixel_loss(sr, hr, "l1")
    adv = relativistic_average_generator_loss(real_logits, fake_logits)
    parts = {"pixel": pix, "adversarial": adv}
    total = pixel_weight * pix + adversarial_weight * adv
    if feature_fn is not None:
        percep = perceptual_loss(feature_fn, sr, hr, "l1")
        parts["perceptual"] = percep
        total = total + perceptual_weight * percep
    return total, parts
