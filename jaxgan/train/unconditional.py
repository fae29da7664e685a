"""The unconditional family as a :class:`~jaxgan.train.loop.Task`: networks, optimizers,
state, the compiled step, sample grids and scores, all from one config."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan.images import save_grid, save_scatter
from jaxgan.parallel import AXIS
from jaxgan.state import GANState, create_train_state
from jaxgan.train.gan_step import UNCONDITIONAL, Conditioning, StepConfig, make_train_step
from jaxgan.train.loop import Task
from jaxgan.train.optim import make_optimizer


def base_config() -> ml_collections.ConfigDict:
    """Fields shared by the unconditional experiments (each experiment overrides some)."""
    c = ml_collections.ConfigDict()
    c.family = "gan"
    c.dataset = "digits"  # digits | ring8 | grid25 | folder:/path | any tfds image dataset
    c.data_dir = ""  # tfds data_dir ('' = tfds default)
    c.download = False  # let tfds download and prepare a dataset (needs a connection)
    c.image_size = 32
    c.channels = 0  # 0 = as the dataset provides
    c.model = ml_collections.ConfigDict(
        {"name": "dcgan", "base_features": 32, "d_norm": "batch", "hidden": (256, 256)}
    )
    c.latent_dim = 100
    c.loss = "non_saturating"
    c.lsgan_coding = "01"
    c.n_critic = 1
    c.clip_value = 0.0
    c.gp_weight = 0.0
    c.optimizer = "adam"
    c.g_lr = 2e-4
    c.d_lr = 2e-4
    c.b1 = 0.5
    c.b2 = 0.999
    c.batch_size = 64
    c.steps = 2000
    c.seed = 0
    c.workdir = ""
    c.reuse_host_memory = True  # on CPU: glibc keeps freed memory (jaxgan.host)
    c.log_every = 50
    c.sample_every = 500
    c.eval_every = 0  # 0: evaluate at the end only
    c.eval_samples = 2000
    c.fid_weights = ""  # pytorch-fid Inception weights (.pth or .npz): adds Inception FID
    c.fid_samples = 10000  # generated and real images for the Inception FID
    c.fid_dims = 2048  # Inception feature: 2048 (pool3, the standard FID), 768, 192 or 64
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.tensorboard = True
    c.quiet = False
    c.parallel = "none"  # none | pmap | sharding (many devices/hosts: see jaxgan.parallel)
    return c


def build_networks(
    model: ml_collections.ConfigDict,
    sample_shape: tuple[int, ...],
    kind: str,
    bn_axis_name: str | None = None,
):
    """Generator and discriminator modules for ``model.name`` ('mlp' or 'dcgan').

    ``bn_axis_name``: the pmap axis BatchNorm averages its statistics over (None: no pmap).
    """
    from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
    from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator

    if model.name == "mlp":
        output = "linear" if kind == "points" else "tanh"
        hidden = tuple(model.hidden)
        return MLPGenerator(out_shape=tuple(sample_shape), hidden=hidden, output=output), (
            MLPDiscriminator(hidden=hidden)
        )
    if model.name == "dcgan":
        if kind != "image" or len(sample_shape) != 3:
            raise ValueError(
                f"the dcgan model needs images, but the dataset gives samples of shape "
                f"{tuple(sample_shape)}; use --model.name mlp for 2D points"
            )
        res, _, ch = sample_shape
        return (
            DCGANGenerator(
                resolution=res,
                channels=ch,
                base_features=model.base_features,
                bn_axis_name=bn_axis_name,
            ),
            DCGANDiscriminator(
                resolution=res,
                channels=ch,
                base_features=model.base_features,
                norm=model.d_norm,
                bn_axis_name=bn_axis_name,
            ),
        )
    raise ValueError(f"unknown model {model.name!r}; use 'mlp' or 'dcgan'")


def load_source(config: ml_collections.ConfigDict, split: str = "train"):
    """The dataset of ``config`` (validated: unknown names fail here, before compiling)."""
    from jaxgan.data import get_source

    return get_source(
        config.dataset,
        split=split,
        image_size=config.image_size or None,
        channels=config.channels or None,
        data_dir=config.data_dir or None,
        download=config.download,
    )


def make_inception_fid(config: ml_collections.ConfigDict, source: Any):
    """``fakes -> FID`` against ``config.fid_samples`` real images, with the Inception
    weights of ``config.fid_weights``; None when no weights file is configured.

    The weights file is checked now (before any compile); the real statistics are computed
    on first use and kept for the rest of the run."""
    if not config.get("fid_weights"):
        return None
    if source.kind != "image":
        raise ValueError("Inception FID needs images; the dataset gives 2D points")
    from jaxgan.data import fixed_batch
    from jaxgan.metrics.fid import fid_from_stats, images_stats, load_inception

    feature_fn = load_inception(config.fid_weights, dims=config.fid_dims)
    real: list = []

    def fid(fakes: np.ndarray) -> float:
        if not real:
            images = fixed_batch(source, min(config.fid_samples, len(source)), seed=0)["x"]
            real.append(images_stats(feature_fn, images))
        return fid_from_stats(*images_stats(feature_fn, fakes), *real[0])

    return fid


def step_config(config: ml_collections.ConfigDict) -> StepConfig:
    return StepConfig(
        loss=config.loss,
        n_critic=config.n_critic,
        clip_value=config.clip_value,
        gp_weight=config.gp_weight,
        lsgan_coding=config.lsgan_coding,
        latent_dim=config.latent_dim,
    )


def build_gan_task(
    config: ml_collections.ConfigDict,
    conditioning: Conditioning = UNCONDITIONAL,
    g_extra_inputs: tuple = (),
    d_extra_inputs: tuple = (),
) -> Task:
    """The unconditional (or, with ``conditioning``, label-conditioned) GAN task."""
    source = load_source(config)
    sample_shape = tuple(source.sample_shape)
    # parallel='pmap': the step and BatchNorm average over the devices' axis (see
    # jaxgan.parallel); 'none' and 'sharding' use the plain global step.
    axis_name = AXIS if config.get("parallel", "none") == "pmap" else None
    G, D = build_networks(config.model, sample_shape, source.kind, bn_axis_name=axis_name)
    if config.gp_weight > 0 and config.model.name == "dcgan" and config.model.d_norm == "batch":
        raise ValueError(
            "the gradient penalty is per sample, and BatchNorm in the critic mixes samples: "
            "use --model.d_norm layer (or none) with --gp_weight > 0"
        )
    cfg = step_config(config)
    tx_g = make_optimizer(config.optimizer, config.g_lr, config.b1, config.b2)
    tx_d = make_optimizer(config.optimizer, config.d_lr, config.b1, config.b2)

    def init_state(key: jax.Array) -> GANState:
        kg, kd, ks = jax.random.split(key, 3)
        z = jnp.zeros((1, config.latent_dim))
        x = jnp.zeros((1, *sample_shape))
        return GANState(
            g=create_train_state(G, tx_g, kg, z, *g_extra_inputs, train=False),
            d=create_train_state(D, tx_d, kd, x, *d_extra_inputs, train=False),
            step=jnp.array(0, jnp.int32),
            key=ks,
        )

    generate = jax.jit(lambda g, z: g.apply_fn(g.variables(), z, train=False))
    fixed_z = jax.random.normal(jax.random.PRNGKey(config.seed + 1), (64, config.latent_dim))

    def sample(state: GANState, n: int, seed: int) -> np.ndarray:
        out = []
        key = jax.random.PRNGKey(seed)
        for i in range(0, n, 500):
            z = jax.random.normal(jax.random.fold_in(key, i), (min(500, n - i), config.latent_dim))
            out.append(np.asarray(generate(state.g, z)))
        return np.concatenate(out)

    real_points = source.get(np.arange(min(len(source), 2500))) if source.kind == "points" else None

    def write_samples(state: GANState, path: str) -> None:
        if source.kind == "points":
            save_scatter(sample(state, 2500, config.seed + 1), path, reference=real_points["x"])
        else:
            save_grid(np.asarray(generate(state.g, fixed_z)), path, nrow=8)

    inception_fid = make_inception_fid(config, source)

    def evaluate(state: GANState) -> dict[str, float]:
        from jaxgan.metrics import evaluate_samples

        n = 2500 if source.kind == "points" else config.eval_samples
        scores = evaluate_samples(config.dataset, sample(state, n, config.seed + 2))
        if inception_fid is not None:
            scores["fid"] = inception_fid(sample(state, config.fid_samples, config.seed + 3))
        return scores

    meta = {
        "family": config.family,
        "model": config.model.to_dict(),
        "sample_shape": list(sample_shape),
        "latent_dim": config.latent_dim,
        "num_classes": getattr(source, "num_classes", 0),
    }
    return Task(
        meta=meta,
        init_state=init_state,
        train_step=make_train_step(cfg, conditioning, jit=axis_name is None, axis_name=axis_name),
        source=source,
        examples_per_step=config.batch_size * config.n_critic,
        axis_name=axis_name,
        batch_chunks=config.n_critic,
        write_samples=write_samples,
        evaluate=evaluate,
    )


# The tiny setting of every unconditional experiment (``--smoke``): seconds on a laptop CPU.
SMOKE: dict[str, Any] = {
    "steps": 4,
    "batch_size": 8,
    "image_size": 16,
    "model.base_features": 8,
    "model.hidden": (32, 32),
    "latent_dim": 16,
    "eval_samples": 200,
    "log_every": 1,
    "sample_every": 2,
    "checkpoint_every": 2,
}
