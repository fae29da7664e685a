"""LSGAN (Mao et al. 2017): least-squares losses with the a/b/c label coding.

`--lsgan_coding 01` is a=0, b=1, c=1; `--lsgan_coding -11` is a=-1, b=1, c=0 (both from
the paper). DCGAN networks on the embedded digits, Adam 2e-4, beta1 0.5.

    python -m experiments.lsgan
    python -m experiments.lsgan --lsgan_coding -11
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
    c.loss = "least_squares"
    c.lsgan_coding = "01"
    c.g_lr = 2e-4
    c.d_lr = 2e-4
    c.b1 = 0.5
    c.batch_size = 64
    c.steps = 2000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("lsgan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
