"""CycleGAN (Zhu et al. 2017): state, image pool, LR schedule, the jit-compiled step, task.

The state (:class:`CycleGANState`) holds four Flax train states, ``g`` (G: X -> Y), ``f``
(F: Y -> X), ``d_x`` and ``d_y``, the two image pools of generated images the
discriminators learn from (:class:`ImagePool`, arrays in the state so the step stays pure
and checkpoints resume exactly), the step and the key. Domain X is the dataset's domain A
(``batch['x']``), Y its domain B (``batch['y']``).

One step (:func:`make_train_step`), as one iteration of the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix, ``cycle_gan_model.optimize_parameters``):

1. ``G(x)``, ``F(G(x))``, ``F(y)``, ``G(F(y))`` and, with the identity term, ``G(y)``,
   ``F(x)`` (``G(x)`` and ``G(y)`` in one call on the concatenated batch, likewise ``F``:
   every network here works per sample, so this is exact and compiles and runs faster;
   each discriminator likewise sees real and pool images in one call); the generators'
   loss :func:`jaxgan.losses.cyclegan_generator_loss` against the current
   discriminators, differentiated with respect to G and F;
2. the fakes of step 1 go through the pools (:func:`pool_query`); each discriminator's loss
   :func:`jaxgan.losses.cyclegan_discriminator_loss` on real images and pool output,
   differentiated with respect to its own parameters;
3. all four Adam updates are applied. (The reference updates G and F first, then D_X and
   D_Y; the discriminator update does not depend on the new G and F since its fakes were
   computed before, so this is the same computation.)

Many devices (:mod:`jaxgan.parallel`): ``parallel='sharding'`` runs this global step as
it is; ``parallel='pmap'`` runs it per device with an ``axis_name`` (gradients and metrics
``pmean``-ed, the pools updated on the gathered global batch of fakes), both equal to one
device on the same batch.

Adam 2e-4, beta1 0.5; the learning rate of every network follows
:func:`cyclegan_lr_schedule` (constant for ``n_epochs``, then linear decay to zero over
``n_epochs_decay``, the reference's ``linear`` policy).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jaxgan import losses, parallel
from jaxgan.images import make_grid, save_image
from jaxgan.parallel import AXIS
from jaxgan.state import TrainState, step_key
from jaxgan.train.loop import Task

Array = jax.Array

# ---------------------------------------------------------------------------------------
# The image pool (Shrivastava et al. 2017; the reference's util/image_pool.py)
# ---------------------------------------------------------------------------------------


class ImagePool(struct.PyTreeNode):
    """A history of up to ``size`` generated images, as arrays.

    Attributes:
      images: ``(size, H, W, C)``; rows ``[0, count)`` are filled.
      count: int32 scalar, the number of images stored (at most ``size``).
    """

    images: Array
    count: Array

    @property
    def size(self) -> int:
        return self.images.shape[0]


def init_pool(size: int, image_shape: tuple[int, ...], dtype: Any = jnp.float32) -> ImagePool:
    """An empty pool of ``size`` images of shape ``image_shape`` (``size=0``: no pool)."""
    if size < 0:
        raise ValueError(f"pool size must be >= 0, got {size}")
    return ImagePool(images=jnp.zeros((size, *image_shape), dtype), count=jnp.zeros((), jnp.int32))


def pool_query(pool: ImagePool, images: Array, key: Array) -> tuple[ImagePool, Array]:
    """Pass a batch of new images through the pool: ``(new pool, images for D)``.

    The images are handled one after the other, as in the reference implementation:

    * while the pool is not full, the image is stored (at row ``count``) and returned;
    * once it is full, with probability 1/2 a uniformly chosen stored image is returned
      and replaced by the new one; otherwise the new image is returned and the pool kept
      (image ``i`` draws ``u_i`` and ``v_i`` of ``uniform(key, (2n,))``: it swaps when
      ``u_i > 1/2``, with slot ``floor(v_i * size)``).

    A pool of size 0 returns ``images`` unchanged. Pure: the random draws come from
    ``key`` (one split per image), so the same pool, images and key give the same result.
    """
    size = pool.size
    if size == 0:
        return pool, images
    if images.shape[1:] != pool.images.shape[1:]:
        raise ValueError(
            f"pool holds images of shape {pool.images.shape[1:]}, got {images.shape[1:]}"
        )

    n = images.shape[0]
    # One flat draw for the whole batch (XLA on CPU compiles a flat sampler far faster
    # than several shaped ones): a coin and a slot per image.
    u = jax.random.uniform(key, (2 * n,))
    coins, slots = u[:n], jnp.minimum(jnp.floor(u[n:] * size).astype(jnp.int32), size - 1)

    def one(carry: tuple[Array, Array], inputs: tuple[Array, Array, Array]):
        stored, count = carry
        image, coin, slot = inputs
        full = count >= size
        swap = full & (coin > 0.5)
        row = jnp.where(full, slot, jnp.minimum(count, size - 1))
        old = stored[row]
        out = jnp.where(swap, old, image)
        write = swap | ~full
        stored = stored.at[row].set(jnp.where(write, image, old))
        return (stored, count + (~full).astype(count.dtype)), out

    (stored, count), out = jax.lax.scan(one, (pool.images, pool.count), (images, coins, slots))
    return ImagePool(images=stored, count=count), out


# ---------------------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------------------


def cyclegan_lr_schedule(
    base_lr: float, n_epochs: int, n_epochs_decay: int, epoch_steps: int = 1
) -> optax.Schedule:
    """The reference's ``linear`` policy as an optax schedule of the update count.

    During epoch ``e = count // epoch_steps`` (0-based; epoch = ``epoch_steps`` updates)::

        lr = base_lr * (1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1))

    i.e. ``base_lr`` for the first ``n_epochs`` epochs, then decreasing by
    ``base_lr / (n_epochs_decay + 1)`` per epoch: the last of the ``n_epochs +
    n_epochs_decay`` epochs runs at ``base_lr / (n_epochs_decay + 1)`` and the next would run
    at zero (PyTorch ``LambdaLR`` with the reference's ``lambda_rule`` and ``epoch_count=1``).
    With ``epoch_steps=1`` the decay is per update. Clipped at zero after the end.
    """
    if n_epochs < 0 or n_epochs_decay < 0 or epoch_steps < 1:
        raise ValueError(
            f"need n_epochs >= 0, n_epochs_decay >= 0, epoch_steps >= 1; got {n_epochs}, "
            f"{n_epochs_decay}, {epoch_steps}"
        )

    def schedule(count: Array) -> Array:
        epoch = jnp.asarray(count) // epoch_steps
        frac = jnp.maximum(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)
        return base_lr * jnp.clip(1.0 - frac, 0.0, 1.0)

    return schedule


# ---------------------------------------------------------------------------------------
# State and step
# ---------------------------------------------------------------------------------------


class CycleGANState(struct.PyTreeNode):
    """Everything a CycleGAN run needs to continue (see the module docstring).

    ``pool_x`` holds fakes of domain X (``F(y)``) shown to ``d_x``; ``pool_y`` fakes of
    domain Y (``G(x)``) shown to ``d_y``. ``step`` counts completed steps; the key of step
    ``s`` is ``fold_in(key, s)``.
    """

    g: TrainState
    f: TrainState
    d_x: TrainState
    d_y: TrainState
    pool_x: ImagePool
    pool_y: ImagePool
    step: Array
    key: Array


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static choices of the step (bound when it is built)."""

    adversarial: str = "lsgan"  # 'lsgan' (the paper's) or 'bce'
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # relative to lambda_cycle, as in the reference
    dropout: bool = False  # whether the generators use dropout (needs an rng)


def _apply(ts: TrainState, params: Any, x: Array, rng: Array | None) -> Array:
    rngs = {"dropout": rng} if rng is not None else None
    return ts.apply_fn({"params": params}, x, train=True, rngs=rngs)


def _pool_step(
    pool: ImagePool, fakes: Array, key: Array, axis_name: str | None
) -> tuple[ImagePool, Array]:
    """:func:`pool_query`; under ``jax.pmap`` (``axis_name``) on the GLOBAL batch of fakes.

    The pool couples the samples of a batch (image ``i`` may return what image ``j < i``
    stored), so every device gathers all fakes in device order (the global batch), runs
    the same query with the same key (the replicated pools stay identical) and keeps its
    own rows of the output: exactly the one-device result.
    """
    if axis_name is None or pool.size == 0:
        return pool_query(pool, fakes, key)
    everyone = parallel.gather_rows(fakes, axis_name)
    pool, out = pool_query(pool, everyone, key)
    n = fakes.shape[0]
    return pool, jax.lax.dynamic_slice_in_dim(out, jax.lax.axis_index(axis_name) * n, n)


def cyclegan_step(
    state: CycleGANState,
    batch: dict[str, Array],
    cfg: StepConfig,
    axis_name: str | None = None,
) -> tuple[CycleGANState, dict[str, Array]]:
    """One CycleGAN step (module docstring): ``(state, {'x', 'y'}) -> (state, metrics)``.

    ``axis_name``: the per-device step of ``jax.pmap(..., axis_name)`` on this device's
    rows of the batch: gradients and metrics are ``pmean``-ed (every loss is a batch
    mean; the networks have no batch statistics) and the pools see the global batch
    (:func:`_pool_step`), so it computes what one device computes on the whole batch.
    Dropout masks (``model.dropout > 0``) are drawn per device (the device index folded
    into the key): valid, but not the one-device masks.
    """
    x, y = batch["x"], batch["y"]
    key = step_key(state.key, state.step)
    k_px, k_py, k_drop = jax.random.split(key, 3)
    if axis_name is not None and cfg.dropout:
        k_drop = jax.random.fold_in(k_drop, jax.lax.axis_index(axis_name))
    drops = [jax.random.fold_in(k_drop, i) for i in range(4)] if cfg.dropout else [None] * 4

    pmean = functools.partial(parallel.pmean, axis_name=axis_name)

    use_idt = cfg.lambda_identity != 0
    n = x.shape[0]

    def g_loss_fn(pg: Any, pf: Any):
        if use_idt:  # G(x) with G(y), F(y) with F(x): one call each (per-sample networks)
            g_out = _apply(state.g, pg, jnp.concatenate([x, y]), drops[0])
            f_out = _apply(state.f, pf, jnp.concatenate([y, x]), drops[1])
            (fake_y, g_y), (fake_x, f_x) = jnp.split(g_out, [n]), jnp.split(f_out, [n])
        else:
            fake_y, g_y = _apply(state.g, pg, x, drops[0]), None
            fake_x, f_x = _apply(state.f, pf, y, drops[1]), None
        rec_x = _apply(state.f, pf, fake_y, drops[2])
        rec_y = _apply(state.g, pg, fake_x, drops[3])
        d_y_fake = state.d_y.apply_fn({"params": state.d_y.params}, fake_y)
        d_x_fake = state.d_x.apply_fn({"params": state.d_x.params}, fake_x)
        total, parts = losses.cyclegan_generator_loss(
            d_y_fake,
            d_x_fake,
            x,
            rec_x,
            y,
            rec_y,
            g_y,
            f_x,
            lambda_cycle=cfg.lambda_cycle,
            lambda_identity=cfg.lambda_identity,
            adversarial=cfg.adversarial,
        )
        return total, (parts, fake_x, fake_y)

    (g_loss, (parts, fake_x, fake_y)), (grad_g, grad_f) = jax.value_and_grad(
        g_loss_fn, argnums=(0, 1), has_aux=True
    )(state.g.params, state.f.params)
    grad_g, grad_f = pmean((grad_g, grad_f))

    pool_x, hist_x = _pool_step(state.pool_x, jax.lax.stop_gradient(fake_x), k_px, axis_name)
    pool_y, hist_y = _pool_step(state.pool_y, jax.lax.stop_gradient(fake_y), k_py, axis_name)

    def d_loss_fn(params: Any, ts: TrainState, real: Array, fake: Array):
        out = ts.apply_fn({"params": params}, jnp.concatenate([real, fake]))
        real_out, fake_out = jnp.split(out, [real.shape[0]])
        loss = losses.cyclegan_discriminator_loss(real_out, fake_out, cfg.adversarial)
        return loss, (jnp.mean(real_out), jnp.mean(fake_out))

    d_grad = jax.value_and_grad(d_loss_fn, has_aux=True)
    (d_x_loss, (dx_real, dx_fake)), grad_dx = d_grad(state.d_x.params, state.d_x, x, hist_x)
    (d_y_loss, (dy_real, dy_fake)), grad_dy = d_grad(state.d_y.params, state.d_y, y, hist_y)
    grad_dx, grad_dy = pmean((grad_dx, grad_dy))

    new = state.replace(
        g=state.g.apply_gradients(grads=grad_g),
        f=state.f.apply_gradients(grads=grad_f),
        d_x=state.d_x.apply_gradients(grads=grad_dx),
        d_y=state.d_y.apply_gradients(grads=grad_dy),
        pool_x=pool_x,
        pool_y=pool_y,
        step=state.step + 1,
    )
    metrics = pmean(
        {
            "g_loss": g_loss,
            **parts,
            "d_x_loss": d_x_loss,
            "d_y_loss": d_y_loss,
            "d_loss": d_x_loss + d_y_loss,
            "d_x_real": dx_real,
            "d_x_fake": dx_fake,
            "d_y_real": dy_real,
            "d_y_fake": dy_fake,
        }
    )
    metrics |= {
        "g_grad_norm": optax.tree.norm(grad_g),
        "f_grad_norm": optax.tree.norm(grad_f),
        "d_x_grad_norm": optax.tree.norm(grad_dx),
        "d_y_grad_norm": optax.tree.norm(grad_dy),
    }
    return new, metrics


def _check_adversarial(kind: str) -> None:
    """Raise the losses' clear ``ValueError`` for an unknown adversarial form, now."""
    losses.cyclegan_discriminator_loss(np.zeros(1), np.zeros(1), adversarial=kind)


@functools.lru_cache(maxsize=16)
def make_train_step(
    cfg: StepConfig, jit: bool = True, axis_name: str | None = None
) -> Callable[[CycleGANState, dict], tuple[CycleGANState, dict]]:
    """``train_step(state, batch) -> (state, metrics)``, jit-compiled (state donated).

    ``train_step.lower(state, batch)`` lowers it ahead of time, as ``jax.jit`` objects do
    (``.compile()`` then gives the executable; ``benchmarks.run`` times the two apart).

    ``axis_name`` (with ``jit=False``): the per-device step for ``jax.pmap`` over that axis
    (see :func:`cyclegan_step`). Cached: the same arguments give the same function, so
    its compilations are reused."""
    _check_adversarial(cfg.adversarial)
    if axis_name is not None and jit:
        raise ValueError("a step with an axis_name runs under jax.pmap: build it with jit=False")
    step = functools.partial(cyclegan_step, cfg=cfg, axis_name=axis_name)
    if not jit:
        return step
    compiled = jax.jit(step, donate_argnums=0)

    def commit(state: CycleGANState) -> CycleGANState:
        # A fresh state (the output of a jit) is not committed to its devices, a restored
        # one is, and jit compiles the two separately. Commit a fresh state once (no copy:
        # same devices and buffers); every later state, an output of this step, stays so.
        # Inside an outer jit (parallel='sharding') the state is traced: nothing to commit.
        step = state.step
        if not isinstance(step, jax.core.Tracer) and not getattr(step, "committed", True):
            state = jax.tree.map(lambda x: jax.device_put(x, x.sharding), state)
        return state

    def train_step(state: CycleGANState, batch: dict) -> tuple[CycleGANState, dict]:
        return compiled(commit(state), batch)

    train_step.lower = lambda state, batch: compiled.lower(commit(state), batch)
    return train_step


# ---------------------------------------------------------------------------------------
# Config and task
# ---------------------------------------------------------------------------------------


def base_config() -> ml_collections.ConfigDict:
    """Every field of a CycleGAN run, with the paper's / reference's training defaults."""
    c = ml_collections.ConfigDict()
    c.family = "cyclegan"
    # grass2gravel (embedded) | cycle_gan/horse2zebra (tfds) | folder:/root (trainA, ...)
    c.dataset = "grass2gravel"
    c.data_dir = ""  # tfds data_dir ('' = tfds default)
    c.download = False
    c.image_size = 256
    c.channels = 0  # 0: as the data provides (the embedded textures are greyscale)
    c.texture_scale = 0.0  # embedded pairs: resize factor of the photographs (0: default)
    c.jitter = True  # resize to 286/256 of the size and random-crop back
    c.flip = True  # random horizontal flips
    c.model = ml_collections.ConfigDict(
        {"g_features": 64, "n_blocks": 9, "d_features": 64, "d_layers": 3, "dropout": 0.0}
    )
    c.adversarial = "lsgan"  # lsgan | bce
    c.lambda_cycle = 10.0
    c.lambda_identity = 0.5  # times lambda_cycle, as in the reference
    c.pool_size = 50
    c.lr = 2e-4
    c.b1 = 0.5
    c.b2 = 0.999
    c.n_epochs = 100  # epochs at the initial learning rate
    c.n_epochs_decay = 100  # epochs of linear decay to zero
    c.epoch_steps = 0  # steps per epoch; 0: one pass over the larger domain
    c.batch_size = 1
    c.steps = 0  # 0: (n_epochs + n_epochs_decay) * epoch_steps
    c.seed = 0
    c.workdir = ""
    c.reuse_host_memory = True  # on CPU: glibc keeps freed memory (jaxgan.host)
    c.log_every = 50
    c.sample_every = 500
    c.eval_every = 500
    c.eval_images = 64  # held-out images of each domain for the cycle error
    c.sample_images = 8  # rows of the sample grids
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.tensorboard = True
    c.quiet = False
    c.parallel = "none"  # none | pmap | sharding (many devices/hosts: see jaxgan.parallel)
    return c


#: The tiny setting (``--smoke``): seconds on a laptop CPU.
SMOKE: dict[str, Any] = {
    "image_size": 16,
    "model.g_features": 4,
    "model.n_blocks": 1,
    "model.d_features": 4,
    "model.d_layers": 1,
    "pool_size": 4,
    "batch_size": 2,
    "steps": 4,
    "n_epochs": 1,
    "n_epochs_decay": 1,
    "epoch_steps": 2,
    "eval_images": 4,
    "sample_images": 2,
    "log_every": 1,
    "sample_every": 2,
    "eval_every": 2,
    "checkpoint_every": 2,
}


def load_domains(config: ml_collections.ConfigDict, split: str = "train"):
    """``(source_A, source_B)`` of ``config.dataset`` (validated before any compute)."""
    from jaxgan.data.domains import get_domain_pair

    return get_domain_pair(
        config.dataset,
        split,
        image_size=config.image_size or None,
        channels=config.channels or None,
        data_dir=config.data_dir or None,
        download=config.download,
        scale=config.get("texture_scale") or None,
    )


def _model_key(config: ml_collections.ConfigDict) -> tuple[tuple[str, Any], ...]:
    m = config.model
    return (
        ("g_features", int(m.g_features)),
        ("n_blocks", int(m.n_blocks)),
        ("d_features", int(m.d_features)),
        ("d_layers", int(m.d_layers)),
        ("dropout", float(m.dropout)),
    )


# The builders below are cached on hashable arguments: two runs with the same model and
# optimizer settings get the very same modules, optimizer and functions, so jax's compile
# caches recognise them and a resumed run (or a second run in one process, as in tests)
# reuses the compiled step instead of compiling it again.


@functools.lru_cache(maxsize=16)
def _networks(model_key: tuple, channels_x: int, channels_y: int) -> dict[str, Any]:
    from jaxgan.nets.cyclegan import build_cyclegan_networks

    return build_cyclegan_networks(channels_x, channels_y, **dict(model_key))


def build_networks(config: ml_collections.ConfigDict, channels_x: int, channels_y: int):
    """``{'g', 'f', 'd_x', 'd_y'}`` modules of ``config.model``."""
    return _networks(_model_key(config), int(channels_x), int(channels_y))


@functools.lru_cache(maxsize=16)
def make_optimizer(
    lr: float, b1: float, b2: float, n_epochs: int, n_epochs_decay: int, epoch_steps: int
) -> optax.GradientTransformation:
    """Adam on the flattened parameters with :func:`cyclegan_lr_schedule`.

    Adam is elementwise, so ``optax.flatten`` computes the same update; it runs the update
    as a few large vector operations instead of one per parameter array, which XLA on CPU
    compiles three times faster.
    """
    schedule = cyclegan_lr_schedule(lr, n_epochs, n_epochs_decay, epoch_steps)
    return optax.flatten(optax.adam(schedule, b1=b1, b2=b2))


def make_init_state(
    config: ml_collections.ConfigDict,
    shape_x: tuple[int, ...],
    shape_y: tuple[int, ...],
    epoch_steps: int = 1,
) -> Callable[[Array], CycleGANState]:
    """``key -> CycleGANState`` for images of ``shape_x`` (domain X) and ``shape_y``."""
    tx = make_optimizer(
        float(config.lr),
        float(config.b1),
        float(config.b2),
        int(config.n_epochs),
        int(config.n_epochs_decay),
        int(epoch_steps),
    )
    return _init_fn(_model_key(config), tuple(shape_x), tuple(shape_y), int(config.pool_size), tx)


@functools.lru_cache(maxsize=16)
def _init_fn(
    model_key: tuple,
    shape_x: tuple[int, ...],
    shape_y: tuple[int, ...],
    pool_size: int,
    tx: optax.GradientTransformation,
) -> Callable[[Array], CycleGANState]:
    from jaxgan.nets.cyclegan import init_params

    nets = _networks(model_key, shape_x[-1], shape_y[-1])

    def init_state(key: Array) -> CycleGANState:
        kg, kf, kdx, kdy, ks = jax.random.split(key, 5)
        x = jnp.zeros((1, *shape_x))
        y = jnp.zeros((1, *shape_y))

        def ts(name: str, k: Array, v: Array) -> TrainState:
            params = init_params(nets[name], k, v, train=False)
            ts = TrainState.create(apply_fn=nets[name].apply, params=params, tx=tx)
            # a strongly typed step, as a restored checkpoint has: the compiled step
            # then serves fresh and resumed states alike
            return ts.replace(step=jnp.zeros((), jnp.int32))

        return CycleGANState(
            g=ts("g", kg, x),
            f=ts("f", kf, y),
            d_x=ts("d_x", kdx, x),
            d_y=ts("d_y", kdy, y),
            pool_x=init_pool(pool_size, shape_x),
            pool_y=init_pool(pool_size, shape_y),
            step=jnp.array(0, jnp.int32),
            key=ks,
        )

    return init_state


def make_translator(
    config: ml_collections.ConfigDict, shape_x: tuple[int, ...], shape_y: tuple[int, ...]
) -> dict[str, Callable[[Any, Array], Array]]:
    """Jitted ``(params, images) -> images`` of G ('AtoB') and F ('BtoA'), eval mode."""
    return _translators(_model_key(config), int(shape_x[-1]), int(shape_y[-1]))


@functools.lru_cache(maxsize=16)
def _translators(model_key: tuple, channels_x: int, channels_y: int) -> dict[str, Callable]:
    nets = _networks(model_key, channels_x, channels_y)

    def fn(module: Any) -> Callable[[Any, Array], Array]:
        return jax.jit(lambda p, v: module.apply({"params": p}, v, train=False))

    return {"AtoB": fn(nets["g"]), "BtoA": fn(nets["f"])}


def _in_chunks(fn: Callable, params: Any, images: np.ndarray, chunk: int = 16) -> np.ndarray:
    return np.concatenate(
        [np.asarray(fn(params, images[i : i + chunk])) for i in range(0, len(images), chunk)]
    )


def _rgb(images: np.ndarray, channels: int) -> np.ndarray:
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 and channels == 3 else images


def build_cyclegan_task(config: ml_collections.ConfigDict) -> Task:
    """The CycleGAN :class:`~jaxgan.train.loop.Task` of ``config`` (see :func:`base_config`).

    Resolves ``config.steps = 0`` to ``(n_epochs + n_epochs_decay) * epoch_steps``; checks
    data and sizes before anything is compiled.
    """
    from jaxgan.data import fixed_batch
    from jaxgan.data.domains import PairedDomainsSource, has_test_split, make_jitter

    _check_adversarial(config.adversarial)
    for name in ("lambda_cycle", "lambda_identity", "lr"):
        if not config[name] >= 0:
            raise ValueError(f"{name} must be >= 0, got {config[name]}")
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {config.batch_size}")
    train_a, train_b = load_domains(config, "train")
    source = PairedDomainsSource(train_a, train_b, seed=config.seed)
    shape_x, shape_y = tuple(train_a.sample_shape), tuple(train_b.sample_shape)
    size = shape_x[0]
    if shape_x[0] != shape_x[1]:
        raise ValueError(f"CycleGAN needs square images, got {shape_x}: pass image_size")
    if size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two downsamplings), got {size}")
    need = 2**config.model.d_layers * 3
    if size < need:
        raise ValueError(
            f"model.d_layers={config.model.d_layers} needs images of at least {need}x{need}, "
            f"got {size}x{size}: lower model.d_layers"
        )
    if config.lambda_identity and shape_x[-1] != shape_y[-1]:
        raise ValueError(
            f"the identity loss needs domains with equal channels, got {shape_x[-1]} (A) and "
            f"{shape_y[-1]} (B): pass channels, or lambda_identity 0"
        )
    epoch_steps = config.epoch_steps or math.ceil(len(source) / config.batch_size)
    if not config.steps:
        config.steps = (config.n_epochs + config.n_epochs_decay) * epoch_steps

    if has_test_split(config.dataset):
        test_a, test_b = load_domains(config, "test")
    else:
        print(
            f"{config.dataset} has no testA/testB: the cycle error is measured on training images"
        )
        test_a, test_b = train_a, train_b
    n_eval = config.eval_images
    eval_a = fixed_batch(test_a, min(n_eval, len(test_a)), seed=1)["x"]
    eval_b = fixed_batch(test_b, min(n_eval, len(test_b)), seed=1)["x"]
    n_show = min(config.sample_images, len(eval_a), len(eval_b))

    init_state = make_init_state(config, shape_x, shape_y, epoch_steps)
    translate = make_translator(config, shape_x, shape_y)
    cfg = StepConfig(
        adversarial=config.adversarial,
        lambda_cycle=config.lambda_cycle,
        lambda_identity=config.lambda_identity,
        dropout=config.model.dropout > 0,
    )
    # parallel='pmap': the per-device step (jaxgan.parallel); 'none' and 'sharding' the
    # global one.
    axis_name = AXIS if config.get("parallel", "none") == "pmap" else None

    def write_samples(state: CycleGANState, path: str) -> None:
        """Rows ``x | G(x) | F(G(x)) | y | F(y) | G(F(y))`` for held-out x and y."""
        x, y = eval_a[:n_show], eval_b[:n_show]
        gx = np.asarray(translate["AtoB"](state.g.params, x))
        fgx = np.asarray(translate["BtoA"](state.f.params, gx))
        fy = np.asarray(translate["BtoA"](state.f.params, y))
        gfy = np.asarray(translate["AtoB"](state.g.params, fy))
        c = max(shape_x[-1], shape_y[-1])
        cols = [_rgb(a, c) for a in (x, gx, fgx, y, fy, gfy)]
        grid = np.stack(cols, axis=1).reshape(-1, *cols[0].shape[1:])
        save_image(make_grid(grid, nrow=6), path, scale=max(1, 128 // size))

    def evaluate(state: CycleGANState) -> dict[str, float]:
        """Cycle-reconstruction L1 on held-out images: mean |F(G(a)) - a|, |G(F(b)) - b|."""
        fgx = _in_chunks(
            translate["BtoA"], state.f.params, _in_chunks(translate["AtoB"], state.g.params, eval_a)
        )
        gfy = _in_chunks(
            translate["AtoB"], state.g.params, _in_chunks(translate["BtoA"], state.f.params, eval_b)
        )
        return {
            "cycle_l1_A": float(np.mean(np.abs(fgx - eval_a))),
            "cycle_l1_B": float(np.mean(np.abs(gfy - eval_b))),
        }

    meta = {
        "family": config.family,
        "model": config.model.to_dict(),
        "sample_shape": list(shape_x),
        "sample_shape_y": list(shape_y),
    }
    return Task(
        meta=meta,
        init_state=init_state,
        train_step=make_train_step(cfg, jit=axis_name is None, axis_name=axis_name),
        source=source,
        examples_per_step=config.batch_size,
        axis_name=axis_name,
        write_samples=write_samples,
        evaluate=evaluate,
        transform=make_jitter(size, resize=config.jitter, flip=config.flip),
    )
