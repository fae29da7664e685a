"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation, G: A -> B, F: B -> A.

Default: the embedded grass -> gravel textures (crops of two photographs that ship with
scikit-image), 32x32 greyscale, a small ResNet generator (16 features, 4 blocks) and a
16x16 PatchGAN, batch 1, 6000 steps: offline, on a CPU, in minutes (9 minutes of CPU
time; 28 minutes of wall time on a 2-core machine shared with other jobs). Loss, pool,
optimizer and schedule are the paper's (LSGAN, lambda 10, identity 0.5, pool of 50,
Adam 2e-4 / beta1 0.5, constant then linear decay to zero).

    python -m experiments.cyclegan                                 # grass <-> gravel, 32x32
    python -m experiments.cyclegan --steps 400 --workdir runs/cg   # shorter
    python -m experiments.cyclegan --dataset folder:/data/horse2zebra --image_size 128 \\
        --model.g_features 64 --model.n_blocks 6 --model.d_layers 3 --batch_size 1 \\
        --epoch_steps 0 --n_epochs 100 --n_epochs_decay 100            # reference layout
    python -m experiments.cyclegan --dataset cycle_gan/horse2zebra --image_size 256 \\
        --model.g_features 64 --model.n_blocks 9 --model.d_layers 3 --batch_size 1 \\
        --epoch_steps 0 --n_epochs 100 --n_epochs_decay 100            # the paper (tfds)

Translate a folder with the result:

    python -m jaxgan.translate runs/cyclegan IN_DIR OUT_DIR --direction AtoB
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.cyclegan import SMOKE, base_config
from jaxgan.train.run import run_experiment


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.dataset = "grass2gravel"
    c.image_size = 32
    c.model.g_features = 16
    c.model.n_blocks = 4
    c.model.d_features = 64
    c.model.d_layers = 1  # 16x16 patches of a 32x32 crop (the 70x70 PatchGAN is 70/256)
    c.batch_size = 1  # as the reference
    c.epoch_steps = 300
    c.n_epochs = 10
    c.n_epochs_decay = 10
    c.steps = 0  # (n_epochs + n_epochs_decay) * epoch_steps = 6000
    c.log_every = 50
    c.sample_every = 500
    c.eval_every = 500
    c.checkpoint_every = 1000
    return c


def main(argv: list[str] | None = None):
    return run_experiment("cyclegan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
