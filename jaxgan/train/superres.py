"""Super-resolution (SRGAN, ESRGAN): two-stage training as a :class:`~jaxgan.train.loop.Task`.

Both papers train in two stages, and so does jaxgan, one run (one workdir) per stage:

1. ``stage='psnr'``: the generator alone, on the pixel loss (SRResNet: MSE, Ledig et al.
   2017; RRDB_PSNR: L1, Wang et al. 2018), the PSNR-oriented network;
2. ``stage='gan'``: adversarial fine-tuning that starts from the stage-1 generator
   (``init_from`` = the stage-1 workdir; its newest checkpoint) and a fresh discriminator.
   SRGAN: ``l_content + 1e-3 * l_Gen`` (:func:`jaxgan.losses.srgan_generator_loss`) against
   the minimax discriminator; ESRGAN: ``L_percep + 5e-3 * L_G^Ra + 1e-2 * L_1``
   (:func:`jaxgan.losses.esrgan_generator_loss`) against the relativistic average
   discriminator (:func:`jaxgan.losses.relativistic_average_discriminator_loss`).

``python -m experiments.srgan`` / ``experiments.esrgan`` run both stages one after the
other (:func:`run_sr_experiment`, ``stage='both'``) into ``WORKDIR/psnr`` and
``WORKDIR/gan``; each stage resumes from its own checkpoints, so the same command continues
an interrupted run. The stage is a static choice: each stage has one compiled step.

**Perceptual loss.** With ``vgg_weights`` naming a torchvision VGG19 file the content term
is the VGG feature loss (SRGAN: MSE of ``relu5_4`` features rescaled by 1/12.75; ESRGAN: L1
of ``conv5_4`` features before activation). Without it (the offline default) there is no
perceptual term and the run says so: SRGAN's content loss is then the pixel MSE (the
paper's "SRGAN-MSE"), ESRGAN's generator loss is ``1e-3 * L_G^Ra + 1 * L_1``
(``adversarial_weight_without_vgg``, ``pixel_weight_without_vgg``: the L1 term becomes the
content term; with the paper's 5e-3 and 1e-2 the adversarial term takes over and the
colours drift).

**State.** :class:`SRState` holds the generator's and the discriminator's Flax
``TrainState`` (``d`` is ``None`` in the PSNR stage), the step and the key. A step is
``train_step(state, batch) -> (state, metrics)``, ``jax.jit``-compiled with the state
donated; the losses are computed on images mapped to [0, 1] (the papers' range, so their
loss weights apply), while batches and networks use jaxgan's [-1, 1].

**Many devices** (:mod:`jaxgan.parallel`): ``parallel='sharding'`` runs the global steps
as they are; ``parallel='pmap'`` builds the networks with ``bn_axis_name`` (SRResNet and
the discriminator have BatchNorm) and the steps with ``axis_name`` (gradients and metrics
``pmean``-ed; ESRGAN's relativistic losses on the gathered critic outputs of the global
batch). Both compute what one device computes on the same global batch.

**Data.** :mod:`jaxgan.data.superres`: random HR crops with their bicubic LR, random flips
and rotations, from the embedded photographs (default), a folder or DIV2K (tfds).

**Evaluation.** PSNR and SSIM on the Y channel, ``scale`` border pixels cropped
(:mod:`jaxgan.metrics.sr`), of the generator (eval mode) on held-out full images, and of
bicubic upsampling as the baseline: ``psnr_y``, ``ssim_y``, ``bicubic_psnr_y``,
``bicubic_ssim_y`` (means over the images) and per image ``psnr_y/<i>`` ...
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jaxgan import losses
from jaxgan.parallel import AXIS, gather_rows, pmean
from jaxgan.state import TrainState
from jaxgan.train.loop import Task

Array = jax.Array

FAMILIES = ("srgan", "esrgan")
STAGES = ("psnr", "gan")
GENERATORS = ("srresnet", "rrdb")


class SRState(struct.PyTreeNode):
    """Generator and discriminator states (``d`` is None in the PSNR stage), step, key.

    ``key`` is a raw ``uint32[2]`` key; the SR steps draw no random numbers (the data
    pipeline makes the crops and flips), it is kept so every family's state looks alike.
    """

    g: TrainState
    d: TrainState | None
    step: Array
    key: Array


# ---------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Static choices of the SR steps (bound when a step is built)."""

    family: str = "esrgan"  # 'srgan' (minimax D, MSE content) or 'esrgan' (RaGAN, L1)
    pixel_kind: str = "l1"  # the PSNR stage's pixel loss: 'l2' (SRResNet) or 'l1' (ESRGAN)
    perceptual: bool = False  # a VGG feature network is given
    vgg_layer: str = "conv5_4"
    vgg_scale: float = 1.0  # SRGAN: 1/12.75
    perceptual_weight: float = 1.0  # ESRGAN
    adversarial_weight: float = 5e-3  # ESRGAN 5e-3, SRGAN 1e-3
    pixel_weight: float = 1e-2  # ESRGAN eta


def to_unit(x: Array) -> Array:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) * 0.5


def batch_psnr(sr: Array, hr: Array) -> Array:
    """Mean over the batch of the RGB PSNR (dB) of ``sr`` (clipped) against ``hr``, [-1, 1]."""
    err = jnp.mean(jnp.square(to_unit(jnp.clip(sr, -1.0, 1.0)) - to_unit(hr)), axis=(1, 2, 3))
    return jnp.mean(-10.0 * jnp.log10(jnp.maximum(err, 1e-10)))


def _apply(ts: TrainState, params: Any, x: Array, batch_stats: Any = None) -> tuple[Array, Any]:
    """Training-mode forward pass: ``(output, new batch_stats)`` (``{}`` without BatchNorm)."""
    stats = ts.batch_stats if batch_stats is None else batch_stats
    if not stats:
        return ts.apply_fn({"params": params}, x, train=True), {}
    out, upd = ts.apply_fn(
        {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
    )
    return out, upd["batch_stats"]


def psnr_step(
    state: SRState, batch: dict[str, Array], cfg: StepConfig, axis_name: str | None = None
) -> tuple[SRState, dict[str, Array]]:
    """One PSNR-oriented step: the generator on the pixel loss alone.

    ``axis_name``: the per-device step of ``jax.pmap`` over that axis (gradients and
    metrics ``pmean``-ed, exact since the loss is a batch mean; BatchNorm statistics are
    averaged by the network's ``bn_axis_name``).
    """
    lr, hr = batch["lr"], batch["hr"]

    def loss_fn(params: Any):
        sr, stats = _apply(state.g, params, lr)
        return losses.pixel_loss(to_unit(sr), to_unit(hr), cfg.pixel_kind), (sr, stats)

    (loss, (sr, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g.params)
    grads = pmean(grads, axis_name)
    g = state.g.apply_gradients(grads=grads, batch_stats=stats)
    metrics = pmean({"pixel": loss, "psnr": batch_psnr(sr, hr)}, axis_name)
    metrics["g_grad_norm"] = optax.tree.norm(grads)
    return state.replace(g=g, step=state.step + 1), metrics


def gan_step(
    state: SRState,
    batch: dict[str, Array],
    vgg_params: Any,
    cfg: StepConfig,
    axis_name: str | None = None,
) -> tuple[SRState, dict[str, Array]]:
    """One adversarial step: a generator update against the current discriminator, and a
    discriminator update on the same (detached) super-resolved batch.

    The discriminator runs in training mode in both losses (BatchNorm on batch statistics,
    real and fake batches passed separately, as in the reference implementations); only
    its own update keeps the new running statistics.

    ``axis_name``: the per-device step of ``jax.pmap`` over that axis: gradients and
    metrics are ``pmean``-ed, BatchNorm averages over the devices (the networks'
    ``bn_axis_name``) and ESRGAN's relativistic losses get the critic outputs of all
    devices (``all_gather``: their averages ``E[C(x_r)]``, ``E[C(x_f)]`` are over the
    global batch), so the step computes what one device computes on the whole batch.
    """
    lr, hr = batch["lr"], batch["hr"]
    ra = cfg.family == "esrgan"

    def adv(logits: Array) -> Array:
        """Critic outputs as the loss sees them: the global batch's for RaGAN."""
        return gather_rows(logits, axis_name) if ra else logits

    feature_fn = None
    if cfg.perceptual:
        from jaxgan.nets.vgg import make_feature_fn

        feature_fn = make_feature_fn(vgg_params, (cfg.vgg_layer,), (0.0, 1.0), cfg.vgg_scale)

    def g_loss_fn(params: Any):
        sr, g_stats = _apply(state.g, params, lr)
        fake_logits, _ = _apply(state.d, state.d.params, sr)
        if ra:
            real_logits, _ = _apply(state.d, state.d.params, hr)
            total, parts = losses.esrgan_generator_loss(
                to_unit(sr),
                to_unit(hr),
                adv(jax.lax.stop_gradient(real_logits)),
                adv(fake_logits),
                feature_fn,
                perceptual_weight=cfg.perceptual_weight,
                adversarial_weight=cfg.adversarial_weight,
                pixel_weight=cfg.pixel_weight,
            )
        else:
            total, parts = losses.srgan_generator_loss(
                to_unit(sr), to_unit(hr), fake_logits, feature_fn, cfg.adversarial_weight
            )
            parts = dict(parts)
            if not cfg.perceptual:
                parts["pixel"] = parts.pop("content")
            else:
                parts["perceptual"] = parts.pop("content")
                parts["pixel"] = losses.pixel_loss(to_unit(sr), to_unit(hr), "l2")
        return total, (sr, g_stats, parts)

    (g_loss, (sr, g_stats, parts)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.g.params
    )
    fake = jax.lax.stop_gradient(sr)

    def d_loss_fn(params: Any):
        real_logits, stats = _apply(state.d, params, hr)
        fake_logits, stats = _apply(state.d, params, fake, stats)
        if ra:
            loss = losses.relativistic_average_discriminator_loss(
                adv(real_logits), adv(fake_logits)
            )
        else:
            loss = losses.minimax_discriminator_loss(real_logits, fake_logits)
        return loss, (stats, jnp.mean(real_logits), jnp.mean(fake_logits))

    (d_loss, (d_stats, d_real, d_fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
        state.d.params
    )
    g_grads, d_grads = pmean((g_grads, d_grads), axis_name)
    new = state.replace(
        g=state.g.apply_gradients(grads=g_grads, batch_stats=g_stats),
        d=state.d.apply_gradients(grads=d_grads, batch_stats=d_stats),
        step=state.step + 1,
    )
    metrics = pmean(
        {
            "g_loss": g_loss,
            **parts,
            "d_loss": d_loss,
            "d_real": d_real,
            "d_fake": d_fake,
            "psnr": batch_psnr(sr, hr),
        },
        axis_name,
    )
    metrics["g_grad_norm"] = optax.tree.norm(g_grads)
    metrics["d_grad_norm"] = optax.tree.norm(d_grads)
    return new, metrics


@functools.lru_cache(maxsize=16)
def _compiled_step(stage: str, cfg: StepConfig, axis_name: str | None = None) -> Callable:
    fn = psnr_step if stage == "psnr" else gan_step
    step = functools.partial(fn, cfg=cfg, axis_name=axis_name)
    return step if axis_name is not None else jax.jit(step, donate_argnums=0)


def make_train_step(
    stage: str, cfg: StepConfig, vgg_params: Any = None, axis_name: str | None = None
) -> Callable[[SRState, dict], tuple[SRState, dict]]:
    """``train_step(state, batch) -> (state, metrics)`` of ``stage``, jit-compiled (state
    donated). The VGG parameters (GAN stage with a perceptual loss) are an argument of the
    compiled step, not constants inside it. Cached on ``(stage, cfg, axis_name)``.

    ``axis_name``: the un-jitted per-device step for ``jax.pmap`` over that axis (see
    :func:`psnr_step`, :func:`gan_step`; the loop's ``parallel='pmap'`` compiles it).

    Otherwise ``train_step.lower(state, batch)`` lowers it ahead of time, as ``jax.jit``
    objects do; the GAN stage's executable then takes ``(state, batch,
    *train_step.bound_args)`` (the VGG parameters)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == "psnr":
        return _compiled_step(stage, dataclasses.replace(cfg, perceptual=False), axis_name)
    if cfg.perceptual and vgg_params is None:
        raise ValueError("a perceptual loss needs the VGG19 parameters")
    step = _compiled_step(stage, cfg, axis_name)
    vgg = jax.device_put(vgg_params) if cfg.perceptual else None
    train_step = functools.partial(_call_gan_step, step, vgg)
    if axis_name is None:
        train_step.lower = lambda state, batch: step.lower(state, batch, vgg)
        train_step.bound_args = (vgg,)
    return train_step


def _call_gan_step(step: Callable, vgg: Any, state: SRState, batch: dict) -> tuple[SRState, dict]:
    return step(state, batch, vgg)


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------


def base_config() -> ml_collections.ConfigDict:
    """Every field of an SR run (the experiments set the paper's values)."""
    c = ml_collections.ConfigDict()
    c.family = "esrgan"  # srgan | esrgan
    c.stage = "both"  # psnr | gan | both (both: the experiment runs psnr, then gan)
    c.init_from = ""  # gan stage: the workdir of the psnr run ('' with stage both: WORKDIR/psnr)
    c.dataset = "photos"  # photos (embedded) | div2k (tfds) | folder:/path
    c.eval_dataset = ""  # held-out images; '' = the dataset's test split
    c.data_dir = ""  # tfds data_dir
    c.download = False
    c.scale = 4
    c.patch_size = 128  # HR patch side (ESRGAN 128, SRGAN 96)
    c.patches_per_image = 1000  # crops of each training image per epoch
    c.model = ml_collections.ConfigDict(
        {
            "generator": "rrdb",  # srresnet | rrdb
            "features": 64,
            "n_blocks": 23,
            "growth": 32,  # rrdb
            "residual_scale": 0.2,  # rrdb
            "batch_norm": True,  # srresnet
            "d_features": 64,
            "d_stages": 5,  # stride-2 stages of the discriminator
            "d_kernel": 4,  # kernel of its strided convolutions (SRGAN 3, ESRGAN 4)
            "d_dense": 100,  # SRGAN 1024, ESRGAN 100
        }
    )
    c.pixel_loss = "l1"  # psnr stage: l2 (SRResNet) | l1 (ESRGAN)
    c.vgg_weights = ""  # torchvision vgg19 .pth (or .npz): enables the perceptual loss
    c.vgg_layer = "conv5_4"  # ESRGAN conv5_4 (before activation), SRGAN relu5_4
    c.vgg_scale = 1.0  # SRGAN rescales the features by 1/12.75
    c.perceptual_weight = 1.0
    c.adversarial_weight = 5e-3
    c.pixel_weight = 1e-2  # ESRGAN eta, with the perceptual term
    # ESRGAN without VGG weights: the L1 term is the content term, with these weights (the
    # paper's 1e-2 L1 + 5e-3 RaGAN, with no perceptual term, let the adversarial term win
    # within ~150 steps and the colours drift: 15.4 dB on the held-out photographs; L1 at
    # 1 with RaGAN at 5e-3 gave 28.3 and 23.9 dB in two runs; at 1e-3, SRGAN's adversarial
    # weight, 28.3 dB and no colour drift).
    c.pixel_weight_without_vgg = 1.0
    c.adversarial_weight_without_vgg = 1e-3
    c.psnr_steps = 1000
    c.gan_steps = 1000
    c.steps = 0  # stop this run at this step (0: the stage's psnr_steps or gan_steps)
    c.psnr_lr = 2e-4
    c.g_lr = 1e-4
    c.d_lr = 1e-4
    c.b1 = 0.9
    c.b2 = 0.999
    c.psnr_lr_milestones = (0.5, 0.75)  # fractions of psnr_steps where lr *= lr_gamma
    c.gan_lr_milestones = (0.5, 0.75)
    c.lr_gamma = 0.5
    c.batch_size = 16
    c.seed = 0
    c.workdir = ""
    c.reuse_host_memory = True  # on CPU: glibc keeps freed memory (jaxgan.host)
    c.log_every = 50
    c.sample_every = 500
    c.eval_every = 0  # 0: at the end only
    c.eval_images = 0  # held-out images to score (0: all)
    c.eval_max_size = 0  # centre-crop held-out HR images to this side (0: full)
    c.eval_tile = 0  # upscale held-out images in LR tiles of this side (0: whole)
    c.sample_crop = 96  # HR side of the crops shown in sample figures
    c.interp_alphas = (0.8,)  # stage both: also score the network interpolation at these
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.tensorboard = True
    c.quiet = False
    c.parallel = "none"  # none | pmap | sharding (many devices/hosts: see jaxgan.parallel)
    return c


def model_meta(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The model description stored with checkpoints (identifies the networks)."""
    m = config.model.to_dict()
    m["scale"] = int(config.scale)
    return m


def build_generator(config: ml_collections.ConfigDict, bn_axis_name: str | None = None):
    """The generator module of ``config.model`` (SRResNet or RRDBNet); ``bn_axis_name``:
    the pmap axis of SRResNet's BatchNorm (RRDBNet has none)."""
    return _generator(json.dumps(model_meta(config), sort_keys=True), bn_axis_name)


@functools.lru_cache(maxsize=16)
def _generator(key: str, bn_axis_name: str | None = None):
    from jaxgan.nets.esrgan import RRDBNet
    from jaxgan.nets.srgan import SRResNet

    m = json.loads(key)
    if m["generator"] == "srresnet":
        return SRResNet(
            scale=m["scale"],
            features=m["features"],
            n_blocks=m["n_blocks"],
            batch_norm=m["batch_norm"],
            bn_axis_name=bn_axis_name,
        )
    if m["generator"] == "rrdb":
        return RRDBNet(
            scale=m["scale"],
            features=m["features"],
            growth=m["growth"],
            n_blocks=m["n_blocks"],
            residual_scale=m["residual_scale"],
        )
    raise ValueError(f"model.generator must be one of {GENERATORS}, got {m['generator']!r}")


def receptive_radius(config: ml_collections.ConfigDict) -> int:
    """An upper bound, in LR pixels, of the generator's reach (for exact tiling)."""
    from jaxgan.nets.esrgan import receptive_radius_rrdbnet
    from jaxgan.nets.srgan import receptive_radius_srresnet

    m = config.model
    if m.generator == "srresnet":
        return receptive_radius_srresnet(int(config.scale), int(m.n_blocks))
    return receptive_radius_rrdbnet(int(config.scale), int(m.n_blocks))


def lr_schedule(lr: float, steps: int, milestones: Sequence[float], gamma: float):
    """Piecewise constant: ``lr``, multiplied by ``gamma`` at each milestone (fractions of
    ``steps``), as the papers' step decays (ESRGAN halves, SRGAN divides by 10); ``None``
    or no milestones: constant."""
    bounds: dict[int, float] = {}
    for f in milestones or ():
        if not 0.0 < float(f) < 1.0:
            raise ValueError(f"lr milestones are fractions of the steps in (0, 1), got {f}")
        b = max(1, int(round(float(f) * steps)))
        bounds[b] = bounds.get(b, 1.0) * gamma
    return optax.piecewise_constant_schedule(lr, bounds)


def _stage_steps(config: ml_collections.ConfigDict) -> int:
    """The planned length of the stage (``psnr_steps`` / ``gan_steps``): the learning-rate
    schedule follows it, whatever step a run stops at (``steps``), so a run stopped early
    and continued later follows the schedule of an uninterrupted one."""
    return int(config.psnr_steps if config.stage == "psnr" else config.gan_steps)


@functools.lru_cache(maxsize=32)
def make_optimizer(
    lr: float, steps: int, milestones: tuple[float, ...], gamma: float, b1: float, b2: float
) -> optax.GradientTransformation:
    """Adam with :func:`lr_schedule`. Cached: equal settings give the very same object, so
    states built from it match the compiled steps of an earlier run in the process."""
    return optax.adam(lr_schedule(lr, steps, milestones, gamma), b1=b1, b2=b2)


def make_init_fn(
    config: ml_collections.ConfigDict,
    pretrained: dict[str, Any] | None = None,
    bn_axis_name: str | None = None,
) -> Callable[[Array], SRState]:
    """``key -> SRState`` of ``config.stage``; ``pretrained`` (``{'params', 'batch_stats'}``)
    replaces the generator's initial variables (GAN stage from a PSNR run).
    ``bn_axis_name``: the networks' BatchNorm pmap axis (the state's ``apply_fn``s)."""
    stage, steps = config.stage, _stage_steps(config)
    g_lr = config.psnr_lr if stage == "psnr" else config.g_lr
    milestones = config.psnr_lr_milestones if stage == "psnr" else config.gan_lr_milestones
    opt = (float(config.lr_gamma), float(config.b1), float(config.b2))
    g_tx = make_optimizer(float(g_lr), steps, tuple(float(m) for m in milestones or ()), *opt)
    d_tx = None
    if stage == "gan":
        d_ms = tuple(float(m) for m in config.gan_lr_milestones or ())
        d_tx = make_optimizer(float(config.d_lr), steps, d_ms, *opt)
    d_key = json.dumps(config.model.to_dict(), sort_keys=True) if stage == "gan" else ""
    fresh = _fresh_init(
        json.dumps(model_meta(config), sort_keys=True),
        int(config.patch_size),
        g_tx,
        d_tx,
        d_key,
        bn_axis_name,
    )
    if pretrained is None:
        return fresh

    def init_state(key: Array) -> SRState:
        state = fresh(key)
        g = state.g.replace(
            params=pretrained["params"], batch_stats=pretrained.get("batch_stats", {})
        )
        return state.replace(g=g)

    return init_state


@functools.lru_cache(maxsize=16)
def _fresh_init(
    g_key: str,
    patch_size: int,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation | None,
    d_key: str,
    bn_axis_name: str | None = None,
) -> Callable[[Array], SRState]:
    from jaxgan.nets.srgan import VGGStyleDiscriminator, init_sr_variables

    g_module = _generator(g_key, bn_axis_name)
    s = json.loads(g_key)["scale"]
    lr_in = jnp.zeros((1, patch_size // s, patch_size // s, 3))
    hr_in = jnp.zeros((1, patch_size, patch_size, 3))
    d_module = None
    if d_tx is not None:
        m = json.loads(d_key)
        d_module = VGGStyleDiscriminator(
            features=m["d_features"],
            n_stages=m["d_stages"],
            strided_kernel=m["d_kernel"],
            dense_features=m["d_dense"],
            bn_axis_name=bn_axis_name,
        )

    def ts(module: Any, tx: optax.GradientTransformation, variables: dict) -> TrainState:
        state = TrainState.create(
            apply_fn=module.apply,
            params=variables["params"],
            tx=tx,
            batch_stats=variables.get("batch_stats", {}),
        )
        # a strongly typed step, like a restored one: resuming reuses the compiled step
        return state.replace(step=jnp.zeros((), jnp.int32))

    def init_state(key: Array) -> SRState:
        kg, kd, ks = jax.random.split(key, 3)
        g = ts(g_module, g_tx, init_sr_variables(g_module, kg, lr_in, train=False))
        d = None
        if d_module is not None:
            d = ts(d_module, d_tx, init_sr_variables(d_module, kd, hr_in, train=False))
        return SRState(g=g, d=d, step=jnp.array(0, jnp.int32), key=ks)

    return init_state


def _meta(config: ml_collections.ConfigDict) -> dict[str, Any]:
    p = int(config.patch_size)
    return {
        "family": config.family,
        "model": model_meta(config),
        "sample_shape": [p, p, 3],
        "stage": config.stage,
    }


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The ``config.json`` of an SR run's workdir.

    Raises:
      FileNotFoundError: no ``config.json``.
      ValueError: the workdir holds a run of another family.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} has no config.json: is it a jaxgan workdir?")
    with open(path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    if config.get("family") not in FAMILIES:
        raise ValueError(
            f"{workdir} holds a {config.get('family')!r} run, not a super-resolution run "
            f"({' or '.join(FAMILIES)})"
        )
    return config


def restore_state(workdir: str) -> tuple[ml_collections.ConfigDict, SRState]:
    """``(config, state)`` of the newest checkpoint of an SR run's workdir."""
    from jaxgan.checkpoint import Checkpointer

    config = read_run_config(workdir)
    template = jax.eval_shape(make_init_fn(config), jax.random.PRNGKey(0))
    ckpt = Checkpointer(workdir, _meta(config))
    try:
        if ckpt.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
        state = ckpt.restore(template)
    finally:
        ckpt.close()
    return config, state


def generator_variables(state: SRState) -> dict[str, Any]:
    """The generator's Flax variables (``params`` and, with BatchNorm, ``batch_stats``)."""
    return state.g.variables()


def _pretrained_generator(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The generator variables of the PSNR run named by ``config.init_from`` (checked)."""
    src = config.init_from
    if not src:
        raise ValueError(
            "stage 'gan' starts from a PSNR-oriented generator: pass --init_from WORKDIR of a "
            "stage 'psnr' run (or run the experiment with --stage both)"
        )
    if not os.path.isdir(src):
        raise FileNotFoundError(f"init_from {src}: no such directory")
    other = read_run_config(src)
    mine, theirs = model_meta(config), model_meta(other)
    g_keys = ("generator", "features", "n_blocks", "growth", "residual_scale", "batch_norm")
    diffs = {
        k: (theirs.get(k), mine.get(k)) for k in (*g_keys, "scale") if theirs.get(k) != mine.get(k)
    }
    if diffs or other.family != config.family:
        detail = "; ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in diffs.items())
        raise ValueError(
            f"init_from {src} holds another generator ({other.family}; {detail or 'family'})"
        )
    _, state = restore_state(src)
    print(f"gan stage: generator initialised from {src} (step {int(state.step)})")
    return jax.device_get(generator_variables(state))


# ---------------------------------------------------------------------------------------
# Generator inference, samples, evaluation
# ---------------------------------------------------------------------------------------


def make_upscaler(config: ml_collections.ConfigDict) -> Callable[[Any, Array], Array]:
    """Jitted ``(variables, lr_batch) -> sr_batch`` of the generator in eval mode."""
    return _upscaler(json.dumps(model_meta(config), sort_keys=True))


@functools.lru_cache(maxsize=16)
def _upscaler(key: str) -> Callable[[Any, Array], Array]:
    module = _generator(key)
    return jax.jit(lambda v, x: module.apply(v, x, train=False))


def score_pairs(
    outputs: Sequence[np.ndarray], pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int
) -> dict[str, float]:
    """Mean and per-image Y-channel PSNR/SSIM (border ``scale``) of ``outputs`` vs the HR."""
    from jaxgan.metrics.sr import sr_scores

    rows = [sr_scores(o, hr, scale) for o, (_, hr) in zip(outputs, pairs, strict=True)]
    out = {
        "psnr_y": float(np.mean([r["psnr"] for r in rows])),
        "ssim_y": float(np.mean([r["ssim"] for r in rows])),
    }
    for i, r in enumerate(rows):
        out[f"psnr_y/{i}"] = r["psnr"]
        out[f"ssim_y/{i}"] = r["ssim"]
    return out


def upscale_pairs(
    upscale: Callable,
    variables: Any,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    scale: int,
    tile: int = 0,
    pad: int = 0,
) -> list[np.ndarray]:
    """The generator's output for the LR image of every pair (tiled if ``tile``)."""
    from jaxgan.upscale import upscale_array

    return [upscale_array(upscale, variables, lr, scale, tile, pad) for lr, _ in pairs]


def _crop_box(shape: tuple[int, ...], size: int, scale: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of a centred HR crop, aligned to ``scale``."""
    side = min(size, shape[0], shape[1])
    side -= side % scale
    top = ((shape[0] - side) // 2) // scale * scale
    left = ((shape[1] - side) // 2) // scale * scale
    return top, left, side


def comparison_grid(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    columns: Sequence[tuple[str, Sequence[np.ndarray] | None]],
    scale: int,
    crop: int = 96,
    zoom: int = 2,
) -> np.ndarray:
    """A uint8 figure: one row per held-out image, one column per method, centred crops.

    ``columns`` is ``[(name, outputs), ...]`` with one full HR-size output per pair;
    ``outputs=None`` shows the LR input (enlarged by pixel repetition). The figure is
    enlarged ``zoom`` times (nearest) so that pixels stay visible.
    """
    from jaxgan.images import to_uint8

    pad = 4
    tiles = []
    for i, (lr, hr) in enumerate(pairs):
        top, left, side = _crop_box(hr.shape, crop, scale)
        row = []
        for _, outs in columns:
            if outs is None:
                a, b = top // scale, left // scale
                img = lr[a : a + side // scale, b : b + side // scale]
                img = np.repeat(np.repeat(img, scale, 0), scale, 1)
            else:
                img = outs[i][top : top + side, left : left + side]
            row.append(to_uint8(img))
        tiles.append(row)
    side = max(t.shape[0] for row in tiles for t in row)
    h = len(tiles) * (side + pad) + pad
    w = len(columns) * (side + pad) + pad
    grid = np.full((h, w, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            y, x = pad + r * (side + pad), pad + c * (side + pad)
            grid[y : y + t.shape[0], x : x + t.shape[1]] = t
    return np.repeat(np.repeat(grid, zoom, 0), zoom, 1)


def load_eval_pairs(config: ml_collections.ConfigDict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The held-out ``(lr, hr)`` pairs of ``config`` (:func:`jaxgan.data.superres.eval_pairs`)."""
    from jaxgan.data.superres import eval_pairs, is_folder_name, load_sr_images

    name = config.eval_dataset or config.dataset
    split = "train" if config.eval_dataset and is_folder_name(name) else "test"
    if not config.eval_dataset and is_folder_name(config.dataset):
        print(
            f"{config.dataset} is a folder with no held-out folder (eval_dataset): the scores "
            "are measured on training images"
        )
        split = "train"
    images = load_sr_images(
        name,
        split,
        scale=int(config.scale),
        data_dir=config.data_dir or None,
        download=config.download,
    )
    return eval_pairs(images, int(config.scale), config.eval_images, config.eval_max_size)


# ---------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------


def step_config(config: ml_collections.ConfigDict) -> StepConfig:
    """The static :class:`StepConfig` of ``config``."""
    return StepConfig(
        family=config.family,
        pixel_kind=config.pixel_loss,
        perceptual=bool(config.vgg_weights),
        vgg_layer=config.vgg_layer,
        vgg_scale=float(config.vgg_scale),
        perceptual_weight=float(config.perceptual_weight),
        adversarial_weight=float(
            config.adversarial_weight
            if config.vgg_weights or config.family != "esrgan"
            else config.get("adversarial_weight_without_vgg", config.adversarial_weight)
        ),
        pixel_weight=float(
            config.pixel_weight
            if config.vgg_weights
            else config.get("pixel_weight_without_vgg", config.pixel_weight)
        ),
    )


def _validate(config: ml_collections.ConfigDict) -> None:
    from jaxgan.nets.srgan import discriminator_input_ok, upsample_stages
    from jaxgan.nets.vgg import VGG19_LAYERS

    if config.family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {config.family!r}")
    if config.stage not in STAGES:
        raise ValueError(
            f"stage must be one of {STAGES} here, got {config.stage!r} (stage 'both' is run "
            "by the experiment modules: python -m experiments.{srgan,esrgan})"
        )
    if config.model.generator not in GENERATORS:
        raise ValueError(
            f"model.generator must be one of {GENERATORS}, got {config.model.generator!r}"
        )
    upsample_stages(int(config.scale))
    if config.pixel_loss not in ("l1", "l2"):
        raise ValueError(f"pixel_loss must be 'l1' or 'l2', got {config.pixel_loss!r}")
    p, s = int(config.patch_size), int(config.scale)
    if p % s or p < s:
        raise ValueError(f"patch_size {p} must be a multiple of scale {s}")
    if config.stage == "gan" and not discriminator_input_ok(p, int(config.model.d_stages)):
        raise ValueError(
            f"the discriminator halves its input model.d_stages={config.model.d_stages} times: "
            f"patch_size {p} must be a multiple of {2 ** int(config.model.d_stages)}"
        )
    if config.vgg_layer not in VGG19_LAYERS:
        raise ValueError(f"vgg_layer must be one of {VGG19_LAYERS}, got {config.vgg_layer!r}")
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {config.batch_size}")
    for name in (
        "psnr_lr",
        "g_lr",
        "d_lr",
        "perceptual_weight",
        "adversarial_weight",
        "pixel_weight",
    ):
        if not config[name] >= 0:
            raise ValueError(f"{name} must be >= 0, got {config[name]}")


def build_sr_task(config: ml_collections.ConfigDict) -> Task:
    """The SR :class:`~jaxgan.train.loop.Task` of ``config`` (one stage).

    Checks the config, reads the data, the VGG19 weights and (GAN stage) the pre-trained
    generator before anything is compiled; resolves ``config.steps = 0`` to the stage's
    ``psnr_steps`` / ``gan_steps`` (``steps`` only says where this run stops).
    """
    from jaxgan.data.superres import SRPatchSource, load_sr_images, random_dihedral

    _validate(config)
    if not config.steps:
        config.steps = _stage_steps(config)
    scale = int(config.scale)
    images = load_sr_images(
        config.dataset,
        "train",
        scale=scale,
        data_dir=config.data_dir or None,
        download=config.download,
    )
    source = SRPatchSource(
        images,
        int(config.patch_size),
        scale,
        patches_per_image=int(config.patches_per_image),
        seed=int(config.seed),
    )
    pairs = load_eval_pairs(config)

    cfg = step_config(config)
    vgg_params = None
    if config.stage == "gan":
        if config.vgg_weights:
            from jaxgan.nets.vgg import load_vgg19_params

            vgg_params = load_vgg19_params(config.vgg_weights)
            print(f"perceptual loss: VGG19 {config.vgg_layer} features from {config.vgg_weights}")
        else:
            content = (
                "pixel MSE (SRGAN-MSE)"
                if config.family == "srgan"
                else f"L1 pixel loss at weight {cfg.pixel_weight:g}, with "
                f"the RaGAN term at {cfg.adversarial_weight:g}"
            )
            print(
                "perceptual loss OFF: no VGG19 weights given (--vgg_weights FILE, torchvision "
                f"vgg19 state_dict); the content term is the {content}"
            )
    pretrained = _pretrained_generator(config) if config.stage == "gan" else None
    # parallel='pmap': per-device step and BatchNorm over AXIS (jaxgan.parallel); 'none'
    # and 'sharding' run the global step.
    axis_name = AXIS if config.get("parallel", "none") == "pmap" else None
    init_state = make_init_fn(config, pretrained, bn_axis_name=axis_name)
    upscale = make_upscaler(config)
    bicubic = [_bicubic(lr, scale) for lr, _ in pairs]
    bicubic_scores = score_pairs(bicubic, pairs, scale)
    radius = receptive_radius(config)

    def outputs(state: SRState) -> list[np.ndarray]:
        v = generator_variables(state)
        return upscale_pairs(upscale, v, pairs, scale, config.eval_tile, radius)

    def write_samples(state: SRState, path: str) -> None:
        """Centred crops of the held-out images: LR | bicubic | SR | HR."""
        from jaxgan.images import save_image

        cols = [
            ("LR", None),
            ("bicubic", bicubic),
            ("SR", outputs(state)),
            ("HR", [hr for _, hr in pairs]),
        ]
        save_image(comparison_grid(pairs, cols, scale, config.sample_crop), path)

    def evaluate(state: SRState) -> dict[str, float]:
        """Y-channel PSNR/SSIM of the generator and of bicubic on the held-out images."""
        scores = score_pairs(outputs(state), pairs, scale)
        return {**scores, **{f"bicubic_{k}": v for k, v in bicubic_scores.items()}}

    return Task(
        meta=_meta(config),
        init_state=init_state,
        train_step=make_train_step(config.stage, cfg, vgg_params, axis_name),
        source=source,
        examples_per_step=int(config.batch_size),
        axis_name=axis_name,
        write_samples=write_samples,
        evaluate=evaluate,
        transform=random_dihedral,
    )


def _bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    from jaxgan.data.superres import bicubic_upscale

    return np.clip(bicubic_upscale(lr, scale), -1.0, 1.0)


# ---------------------------------------------------------------------------------------
# Both stages, from the experiment modules
# ---------------------------------------------------------------------------------------

#: The tiny setting (``--smoke``): seconds on a CPU.
SMOKE: dict[str, Any] = {
    "scale": 2,
    "patch_size": 16,
    "patches_per_image": 4,
    "model.features": 8,
    "model.n_blocks": 1,
    "model.growth": 4,
    "model.d_features": 4,
    "model.d_stages": 2,
    "model.d_dense": 8,
    "psnr_steps": 2,
    "gan_steps": 2,
    "batch_size": 2,
    "eval_images": 1,
    "eval_max_size": 32,
    "sample_crop": 16,
    "log_every": 1,
    "sample_every": 2,
    "checkpoint_every": 2,
}


def stage_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """The configs of the runs of ``config``: itself for one stage; for ``stage='both'`` a
    ``psnr`` run in ``workdir/psnr`` and a ``gan`` run in ``workdir/gan`` from it."""
    if config.stage in STAGES:
        return [config]
    if config.stage != "both":
        raise ValueError(f"stage must be one of {(*STAGES, 'both')}, got {config.stage!r}")
    out = []
    for stage in STAGES:
        c = copy.deepcopy(config)
        c.stage = stage
        c.workdir = os.path.join(config.workdir, stage)
        if stage == "gan" and not c.init_from:
            c.init_from = os.path.join(config.workdir, "psnr")
        out.append(c)
    return out


def summarize(workdir: str, write_figure: bool = True) -> dict[str, Any]:
    """Scores of a two-stage run (``workdir/psnr``, ``workdir/gan``) on its held-out images:
    bicubic, the PSNR-oriented generator, the GAN generator and their interpolations at
    ``config.interp_alphas``, with each stage's step and training seconds (those of its
    last invocation, from its ``eval.json``); writes ``summary.json`` and
    ``comparison.png`` there."""
    from jaxgan.images import save_image
    from jaxgan.nets.esrgan import interpolate_params

    config, g_state = restore_state(os.path.join(workdir, "gan"))
    _, p_state = restore_state(os.path.join(workdir, "psnr"))
    scale = int(config.scale)
    pairs = load_eval_pairs(config)
    upscale = make_upscaler(config)
    radius = receptive_radius(config)
    v_psnr, v_gan = generator_variables(p_state), generator_variables(g_state)
    outs: dict[str, list[np.ndarray]] = {"bicubic": [_bicubic(lr, scale) for lr, _ in pairs]}
    outs["psnr"] = upscale_pairs(upscale, v_psnr, pairs, scale, config.eval_tile, radius)
    outs["gan"] = upscale_pairs(upscale, v_gan, pairs, scale, config.eval_tile, radius)
    for a in config.interp_alphas:
        v = interpolate_params(v_psnr, v_gan, float(a))
        outs[f"interp_{a:g}"] = upscale_pairs(upscale, v, pairs, scale, config.eval_tile, radius)
    summary: dict[str, Any] = {"family": config.family, "scale": scale, "images": len(pairs)}
    for name, o in outs.items():
        s = score_pairs(o, pairs, scale)
        summary[name] = {"psnr_y": s["psnr_y"], "ssim_y": s["ssim_y"]}
    for stage in STAGES:  # the stage's steps and training seconds (its eval.json)
        path = os.path.join(workdir, stage, "eval.json")
        if os.path.exists(path):
            with open(path) as fh:
                row = json.load(fh)
            summary[stage].update(step=row["step"], train_seconds=row.get("train_seconds"))
    with open(os.path.join(workdir, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    if write_figure:
        cols = [("LR", None), ("bicubic", outs["bicubic"]), ("psnr", outs["psnr"])]
        cols += [("gan", outs["gan"]), ("HR", [hr for _, hr in pairs])]
        grid = comparison_grid(pairs, cols, scale, config.sample_crop)
        save_image(grid, os.path.join(workdir, "comparison.png"))
    return summary


def run_sr_experiment(
    name: str,
    get_config: Callable[[], ml_collections.ConfigDict],
    smoke: dict[str, Any] | None = None,
    argv: Sequence[str] | None = None,
    doc: str | None = None,
) -> Any:
    """``python -m experiments.<name> [--smoke] [--stage both|psnr|gan] [--field value ...]``.

    Returns the final state of the last stage run.
    """
    from jaxgan.config import parse_config
    from jaxgan.train.loop import train_and_evaluate

    config = parse_config(
        get_config(), argv, smoke=smoke, prog=f"python -m experiments.{name}", description=doc
    )
    if not config.workdir:
        smoke_run = "--smoke" in (argv if argv is not None else sys.argv)
        config.workdir = os.path.join("runs", name + ("_smoke" if smoke_run else ""))
    print(f"{name}: workdir {config.workdir}")
    state = None
    for c in stage_configs(config):
        t0 = time.time()
        print(f"{name}: stage {c.stage} -> {c.workdir}")
        state = train_and_evaluate(c, c.workdir)
        print(f"{name}: stage {c.stage} took {time.time() - t0:.0f} s")
    if config.stage == "both":
        summary = summarize(config.workdir)
        n, scale = summary["images"], summary["scale"]
        print(f"{name}: held-out Y-channel PSNR / SSIM (x{scale}, {n} images)")
        for k, v in summary.items():
            if isinstance(v, dict):
                print(f"  {k:>12}: {v['psnr_y']:.2f} dB / {v['ssim_y']:.4f}")
    return state
