"""One jit-compiled train step for the adversarial family: GAN, DCGAN, WGAN, WGAN-GP,
LSGAN, RaLSGAN (and the label-conditioned variants, through ``Conditioning``).

``train_step(state, batch) -> (state, metrics)``; the key of the step is
``fold_in(state.key, state.step)``. Static choices (loss kind, n_critic, clipping, penalty
weight, LSGAN coding) are bound when the step is built, never branched on at run time.

One generator step = ``n_critic`` critic updates, then one generator update:

* critic updates ``1 .. n_critic-1`` (a Python loop, unrolled at trace time) use fresh
  fakes, generated forward-only;
* the last critic update uses the fake of the generator update, computed once with
  ``jax.vjp``; the generator then back-propagates the loss of the *updated* critic through
  that same forward pass (as PyTorch DCGAN/WGAN training loops do, without a second
  generator forward).

The batch holds ``n_critic * B`` real examples: critic update ``i`` sees rows
``[i*B, (i+1)*B)``.

Data parallelism (see :mod:`jaxgan.parallel`): under ``jax.jit`` with a sharded batch the
step needs nothing (the arrays are global). Under ``jax.pmap``, build it with
``axis_name``: each device then holds ``B / n_devices`` rows; gradients, BatchNorm
statistics (the networks' ``bn_axis_name``) and metrics are averaged over the devices
(``pmean``, exact since the losses are batch means), the outputs of the relativistic losses
are gathered first (their averages couple the whole batch), and every random draw (noise,
codes, the penalty's interpolation weights) is made for the global batch and sliced, so a
pmapped step computes what one device computes on the whole batch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgan import losses, parallel
from jaxgan.state import GANState, step_key

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The discriminator and generator losses of one GAN kind, on raw critic outputs."""

    d_loss: Callable[[Array, Array], Array]  # (real_out, fake_out) -> scalar
    g_loss: Callable[[Array, Array], Array]  # (real_out, fake_out) -> scalar
    g_needs_real: bool = False  # relativistic losses compare with the real outputs
    probabilities: bool = False  # report D outputs as sigmoid probabilities
    # Not a mean of per-sample terms (relativistic averages): under pmap the outputs of all
    # devices are gathered before the loss, so its averages are over the global batch.
    global_batch: bool = False


LSGAN_CODINGS = losses.LSGAN_CODINGS  # name -> (a, b, c) of Mao et al. 2017


def loss_spec(kind: str, lsgan_coding: str = "01") -> LossSpec:
    """The pair of losses of ``kind``: minimax, non_saturating, wasserstein,
    least_squares (with ``lsgan_coding`` '01' or '-11'), ralsgan, relativistic."""
    if kind == "minimax":
        return LossSpec(
            lambda r, f: losses.minimax_discriminator_loss(r, f),
            lambda r, f: losses.minimax_generator_loss(f),
            probabilities=True,
        )
    if kind == "non_saturating":
        return LossSpec(
            lambda r, f: losses.minimax_discriminator_loss(r, f),
            lambda r, f: losses.non_saturating_generator_loss(f),
            probabilities=True,
        )
    if kind == "wasserstein":
        return LossSpec(
            losses.wasserstein_critic_loss, lambda r, f: losses.wasserstein_generator_loss(f)
        )
    if kind == "least_squares":
        if lsgan_coding not in LSGAN_CODINGS:
            raise ValueError(f"unknown LSGAN coding {lsgan_coding!r}; use one of {LSGAN_CODINGS}")
        a, b, c = LSGAN_CODINGS[lsgan_coding]
        return LossSpec(
            lambda r, f: losses.least_squares_discriminator_loss(r, f, a=a, b=b),
            lambda r, f: losses.least_squares_generator_loss(f, c=c),
        )
    if kind == "ralsgan":
        return LossSpec(
            losses.relativistic_average_ls_discriminator_loss,
            losses.relativistic_average_ls_generator_loss,
            g_needs_real=True,
            global_batch=True,
        )
    if kind == "relativistic":
        return LossSpec(
            losses.relativistic_average_discriminator_loss,
            losses.relativistic_average_generator_loss,
            g_needs_real=True,
            global_batch=True,
        )
    raise ValueError(
        f"unknown loss {kind!r}; use minimax, non_saturating, wasserstein, least_squares, "
        "ralsgan or relativistic"
    )


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static choices of the step (hashable: bound at build time)."""

    loss: str = "non_saturating"
    n_critic: int = 1
    clip_value: float = 0.0  # > 0: WGAN weight clipping of the critic after each update
    gp_weight: float = 0.0  # > 0: WGAN-GP gradient penalty weight (lambda)
    gp_target: float = 1.0
    lsgan_coding: str = "01"
    latent_dim: int = 100


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """What G and D get besides noise and images. Unconditional: nothing.

    ``sample(key, batch, n, latent_dim) -> (g_args, d_fake_args, aux)``: generator inputs
    and the extra discriminator inputs for its fakes; ``d_real_args(batch)``: the extra
    discriminator inputs for real data.

    InfoGAN: the discriminator returns ``(logits, q_outputs)``, ``sample`` returns the
    latent codes as ``aux``, and ``info_loss(q_outputs_of_fakes, aux)`` (the negative
    mutual-information bound, already weighted) is added to both the discriminator/Q loss
    and the generator loss.
    """

    sample: Callable[[Array, dict, int, int], tuple[tuple, tuple, Any]]
    d_real_args: Callable[[dict], tuple]
    info_loss: Callable[[Any, Any], Array] | None = None


def _unconditional_sample(key: Array, batch: dict, n: int, latent_dim: int):
    return (jax.random.normal(key, (n, latent_dim)),), (), None


UNCONDITIONAL = Conditioning(_unconditional_sample, lambda batch: ())


def _logits(out: Any) -> tuple[Array, Any]:
    """Split a discriminator output into (logits, auxiliary head outputs or None)."""
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def _apply(state_apply, params, batch_stats, *args):
    """Apply a network in train mode; returns (output, updated batch_stats)."""
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
        out, mutated = state_apply(variables, *args, train=True, mutable=["batch_stats"])
        return out, mutated["batch_stats"]
    return state_apply(variables, *args, train=True), batch_stats


def make_train_step(
    cfg: StepConfig,
    conditioning: Conditioning = UNCONDITIONAL,
    jit: bool = True,
    axis_name: str | None = None,
) -> Callable[[GANState, dict], tuple[GANState, dict]]:
    """Build ``train_step(state, batch) -> (state, metrics)`` for the static ``cfg``.

    ``axis_name``: set it (and ``jit=False``) for a step that runs under
    ``jax.pmap(..., axis_name=axis_name)`` on per-device shards of the batch (see the
    module docstring); ``None`` (the default) for one device or ``jax.jit`` with shardings.
    """
    spec = loss_spec(cfg.loss, cfg.lsgan_coding)
    n_critic = int(cfg.n_critic)
    if n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {n_critic}")
    if axis_name is not None and jit:
        raise ValueError("a step with an axis_name runs under jax.pmap: build it with jit=False")

    pmean = functools.partial(parallel.pmean, axis_name=axis_name)
    gather = functools.partial(parallel.gather_rows, axis_name=axis_name)

    def own_rows(tree: Any) -> Any:
        """This device's rows of arrays drawn for the global batch."""
        if axis_name is None:
            return tree
        n_dev, i = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)

        def rows(a):
            b = a.shape[0] // n_dev
            return jax.lax.dynamic_slice_in_dim(a, i * b, b)

        return jax.tree.map(rows, tree)

    def sample(key: Array, real_batch: dict, n: int):
        """Generator inputs for ``n`` rows; under pmap this device's rows of a global draw
        (the conditioning sees the global batch; unused parts of it are compiled away)."""
        if axis_name is None:  # under parallel='sharding': split like the batch
            return parallel.split_rows(conditioning.sample(key, real_batch, n, cfg.latent_dim))
        n_global = n * jax.lax.axis_size(axis_name)
        return own_rows(conditioning.sample(key, gather(real_batch), n_global, cfg.latent_dim))

    def penalty(critic_fn: Callable[[Array], Array], real: Array, fake: Array, key: Array):
        """WGAN-GP's penalty; under pmap with the interpolation weights of the global batch."""
        if axis_name is None:
            return losses.gradient_penalty(critic_fn, real, fake, key, target=cfg.gp_target)
        # losses.gradient_penalty draws alpha for the rows it gets; draw it for the global
        # batch instead (the same call, so the same numbers) and evaluate the penalty at
        # those interpolates: v - stop_gradient(v) + x_hat is exactly x_hat, with gradient 1.
        n_global = real.shape[0] * jax.lax.axis_size(axis_name)
        shape = (n_global,) + (1,) * (real.ndim - 1)
        dtype = real.dtype if jnp.issubdtype(real.dtype, jnp.floating) else jnp.float32
        alpha = own_rows(jax.random.uniform(key, shape, dtype=dtype))
        x_hat = alpha * real + (1.0 - alpha) * fake
        return losses.gradient_penalty(
            lambda v: critic_fn(v - jax.lax.stop_gradient(v) + x_hat),
            x_hat,
            x_hat,
            key,
            target=cfg.gp_target,
        )

    def adv(tree: Any) -> Any:
        """Critic outputs as the loss sees them: global for the relativistic losses."""
        return gather(tree) if spec.global_batch else tree

    def critic_update(d, real_batch, fake, fake_args, codes, key):
        real = real_batch["x"]
        real_args = conditioning.d_real_args(real_batch)

        def loss_fn(params):
            real_out, bs = _apply(d.apply_fn, params, d.batch_stats, real, *real_args)
            fake_out, bs = _apply(d.apply_fn, params, bs, fake, *fake_args)
            (real_out, _), (fake_out, q_fake) = _logits(real_out), _logits(fake_out)
            loss = spec.d_loss(adv(real_out), adv(fake_out))
            aux = {"d_adv_loss": loss}
            if conditioning.info_loss is not None:
                info = conditioning.info_loss(q_fake, codes)
                loss = loss + info
                aux["info_loss"] = info
            if cfg.gp_weight > 0:

                def critic_fn(x):
                    out = _apply(d.apply_fn, params, d.batch_stats, x, *real_args)[0]
                    return _logits(out)[0]

                gp = penalty(critic_fn, real, fake, key)
                loss = loss + cfg.gp_weight * gp
                aux["gp"] = gp
            out = jax.nn.sigmoid if spec.probabilities else (lambda v: v)
            aux["d_real"] = jnp.mean(out(real_out))
            aux["d_fake"] = jnp.mean(out(fake_out))
            return loss, (bs, aux)

        (loss, (bs, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
        grads = pmean(grads)
        d = d.apply_gradients(grads=grads, batch_stats=bs)
        if cfg.clip_value > 0:
            d = d.replace(params=losses.clip_weights(d.params, cfg.clip_value))
        return d, {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **aux}

    def train_step(state: GANState, batch: dict) -> tuple[GANState, dict]:
        n = batch["x"].shape[0] // n_critic
        split = jax.tree.map(lambda a: a.reshape((n_critic, n) + a.shape[1:]), batch)
        keys = jax.random.split(step_key(state.key, state.step), 2 * n_critic + 1)
        g, d = state.g, state.d

        # Critic updates 1 .. n_critic-1 on fresh fakes (generator forward only). A Python
        # loop, not lax.scan. Inside a while loop XLA on CPU had run some convolution
        # gradients tens of times slower (a DCGAN step with n_critic=2: 9 s instead of
        # 0.5 s; a WGAN-GP 32x32 step, n_critic=5: 1.31-1.35 s against 0.39-0.42 s): JAX's
        # own weight gradient of a strided convolution. With conv_strided's written in the
        # form XLA runs fast in loops, the scanned WGAN-GP step took 0.43 s against
        # 0.41-0.42 s unrolled and compiled in 5.8-6.1 s against 7.5-7.7 s: not faster,
        # so the loop stays.
        for i in range(n_critic - 1):
            real_batch = jax.tree.map(lambda a, i=i: a[i], split)
            g_args, fake_args, codes = sample(keys[i], real_batch, n)
            fake, _ = _apply(g.apply_fn, g.params, g.batch_stats, *g_args)
            fake = jax.lax.stop_gradient(fake)
            d, _ = critic_update(d, real_batch, fake, fake_args, codes, keys[n_critic - 1 + i])

        # Last critic update on the generator's own fakes; then the generator update.
        last = jax.tree.map(lambda a: a[-1], split)
        g_args, fake_args, codes = sample(keys[-3], last, n)
        fake, g_vjp, g_bs = jax.vjp(
            lambda p: _apply(g.apply_fn, p, g.batch_stats, *g_args), g.params, has_aux=True
        )
        d, d_metrics = critic_update(
            d, last, jax.lax.stop_gradient(fake), fake_args, codes, keys[-2]
        )

        real_out = None
        if spec.g_needs_real:
            real_out, _ = _apply(
                d.apply_fn, d.params, d.batch_stats, last["x"], *conditioning.d_real_args(last)
            )
            real_out = adv(jax.lax.stop_gradient(_logits(real_out)[0]))

        def g_loss_of_fake(fake):
            out, _ = _apply(d.apply_fn, d.params, d.batch_stats, fake, *fake_args)
            fake_out, q_fake = _logits(out)
            adv_loss = spec.g_loss(real_out, adv(fake_out))
            if conditioning.info_loss is None:
                return adv_loss, adv_loss
            return adv_loss + conditioning.info_loss(q_fake, codes), adv_loss

        (g_loss, g_adv), fake_cotangent = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
        (g_grads,) = g_vjp(fake_cotangent)
        g_grads = pmean(g_grads)
        g = g.apply_gradients(grads=g_grads, batch_stats=g_bs)

        metrics = pmean(
            {
                **d_metrics,
                "g_loss": g_loss,
                "g_adv_loss": g_adv,
                "g_grad_norm": optax.tree.norm(g_grads),
            }
        )
        return state.replace(g=g, d=d, step=state.step + 1), metrics

    return jax.jit(train_step, donate_argnums=0) if jit else train_step
