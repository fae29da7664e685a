"""Vanilla GAN (Goodfellow et al. 2014): MLP generator and discriminator, the
non-saturating generator loss, on the ring of 8 Gaussians (2D) by default.

    python -m experiments.gan                         # ring8, prints mode coverage
    python -m experiments.gan --dataset digits        # MLP GAN on the embedded digits
    python -m experiments.gan --loss minimax          # the saturating log(1 - D(G(z))) form
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.run import run_experiment
from jaxgan.train.unconditional import SMOKE, base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.dataset = "ring8"
    c.model.name = "mlp"
    c.model.hidden = (128, 128)
    c.latent_dim = 4
    c.loss = "non_saturating"
    c.g_lr = 1e-3
    c.d_lr = 1e-3
    c.b1 = 0.5
    c.batch_size = 128
    c.steps = 6000
    c.sample_every = 1000
    c.checkpoint_every = 1000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("gan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
