"""RaLSGAN (Jolicoeur-Martineau 2018): relativistic average least-squares GAN.

DCGAN networks on the embedded digits; Adam 2e-4, betas (0.5, 0.999).

    python -m experiments.ralsgan
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.run import run_experiment
from jaxgan.train.unconditional import SMOKE, base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.dataset = "digits"
    c.image_size = 32
    c.model.name = "dcgan"
    c.model.base_features = 32
    c.loss = "ralsgan"
    c.g_lr = 2e-4
    c.d_lr = 2e-4
    c.b1 = 0.5
    c.batch_size = 64
    c.steps = 2000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("ralsgan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
