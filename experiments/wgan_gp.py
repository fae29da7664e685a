"""WGAN-GP (Gulrajani et al. 2017): Wasserstein critic + gradient penalty.

The paper's settings: Adam 1e-4, betas (0, 0.9), 5 critic updates, lambda = 10. The
default data is the ring of 8 Gaussians with MLP networks (the paper's toy figure);
the penalty is jax.grad of the critic with respect to its input.

    python -m experiments.wgan_gp
    python -m experiments.wgan_gp --dataset digits --model.name dcgan --model.d_norm layer
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.run import run_experiment
from jaxgan.train.unconditional import SMOKE, base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.dataset = "ring8"
    c.model.name = "mlp"
    c.model.hidden = (128, 128, 128)
    c.model.d_norm = "layer"
    c.latent_dim = 2
    c.loss = "wasserstein"
    c.gp_weight = 10.0
    c.n_critic = 5
    # The paper's Adam betas (0, 0.9), n_critic and lambda; a larger learning rate than
    # its 1e-4 so that the toy run covers the ring in minutes on a CPU.
    c.g_lr = 5e-4
    c.d_lr = 5e-4
    c.b1 = 0.0
    c.b2 = 0.9
    c.batch_size = 256
    c.steps = 4000
    c.sample_every = 1000
    c.checkpoint_every = 1000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("wgan_gp", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
