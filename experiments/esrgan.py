"""ESRGAN (Wang et al. 2018): RRDB_PSNR pre-training (L1), then RaGAN fine-tuning.

Default (reduced for a CPU, offline): x4 on 48x48 HR patches cut from the photographs that
ship with scikit-image (held out: chelsea, coffee), an RRDB generator with 32 features,
growth 16 and 2 RRDBs (paper: 64, 32 and 23 RRDBs on 128x128 patches), the VGG-style
discriminator at half width with 4 stride-2 stages (4x4 kernels, 100-unit dense layer);
1,500 PSNR-stage steps at Adam 1e-3 (paper: 2e-4 for 10^6 steps; higher for a short
run), then 500 GAN-stage steps at 1e-4 (the paper's), both halved at 50% and 75%. Generator
loss of the GAN stage: ``L_percep + 5e-3 L_G^Ra + 1e-2 L_1``; without ``--vgg_weights``
there is no perceptual term (the run says so), the L1 term becomes the content term at
weight 1 and the RaGAN term gets SRGAN's 1e-3 (``--pixel_weight_without_vgg``,
``--adversarial_weight_without_vgg``; with the paper's weights and no perceptual term the
colours drift). The summary also scores the network
interpolation at alpha 0.8.

    python -m experiments.esrgan                            # both stages -> runs/esrgan/{psnr,gan}
    python -m experiments.esrgan --vgg_weights vgg19-dcbb9e9d.pth          # with L_percep
    python -m experiments.esrgan --dataset div2k --patch_size 128 --model.features 64 \\
        --model.growth 32 --model.n_blocks 23 --model.d_features 64 --model.d_stages 5 \\
        --psnr_steps 1000000 --psnr_lr 2e-4 --psnr_lr_milestones 0.2,0.4,0.6,0.8 \\
        --gan_steps 400000 --gan_lr_milestones 0.125,0.25,0.5,0.75 \\
        --vgg_weights vgg19-dcbb9e9d.pth                                  # the paper

Upscale with the result: ``python -m jaxgan.upscale runs/esrgan IN OUT [--alpha 0.8]``.
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.superres import SMOKE, base_config, run_sr_experiment


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.family = "esrgan"
    c.scale = 4
    c.patch_size = 48
    c.model.generator = "rrdb"
    c.model.features = 32
    c.model.growth = 16
    c.model.n_blocks = 2
    c.model.residual_scale = 0.2
    c.model.d_features = 32
    c.model.d_stages = 4
    c.model.d_kernel = 4
    c.model.d_dense = 100
    c.pixel_loss = "l1"
    c.vgg_layer = "conv5_4"
    c.vgg_scale = 1.0
    c.perceptual_weight = 1.0
    c.adversarial_weight = 5e-3
    c.pixel_weight = 1e-2
    c.psnr_lr = 1e-3  # paper 2e-4 (10^6 steps); higher for a short CPU run
    c.g_lr = 1e-4
    c.d_lr = 1e-4
    c.psnr_lr_milestones = (0.5, 0.75)
    c.gan_lr_milestones = (0.5, 0.75)
    c.lr_gamma = 0.5
    c.batch_size = 16
    c.psnr_steps = 1500
    c.gan_steps = 500
    c.interp_alphas = (0.8,)
    c.log_every = 50
    c.sample_every = 500
    c.checkpoint_every = 500
    return c


def main(argv: list[str] | None = None):
    return run_sr_experiment("esrgan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
