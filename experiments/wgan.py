"""WGAN (Arjovsky et al. 2017): Wasserstein critic with weight clipping.

The paper's settings: RMSProp, learning rate 5e-5, clip 0.01, 5 critic updates per
generator update; DCGAN networks on the embedded digits, at 16x16 by default so that the
five critic updates per step stay quick on a CPU (``--image_size 32`` for the full size).

    python -m experiments.wgan
    python -m experiments.wgan --clip_value 0.02 --steps 4000
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.run import run_experiment
from jaxgan.train.unconditional import SMOKE, base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.dataset = "digits"
    c.image_size = 16
    c.model.name = "dcgan"
    c.model.base_features = 32
    c.loss = "wasserstein"
    c.optimizer = "rmsprop"
    c.g_lr = 5e-5
    c.d_lr = 5e-5
    c.clip_value = 0.01
    c.n_critic = 5
    c.batch_size = 64
    c.steps = 2000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("wgan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
