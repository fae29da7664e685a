"""DCGAN (Radford et al. 2016) on the embedded digits (32x32), Adam 2e-4, beta1 0.5.

python -m experiments.dcgan                       # digits 32x32, prints digits-FID
python -m experiments.dcgan --dataset mnist --download true --image_size 32
python -m experiments.dcgan --dataset cifar10 --image_size 32 --model.base_features 64
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
    c.loss = "non_saturating"
    c.g_lr = 2e-4
    c.d_lr = 2e-4
    c.b1 = 0.5
    c.batch_size = 64
    c.steps = 2000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("dcgan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
