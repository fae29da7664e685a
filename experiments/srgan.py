"""SRGAN (Ledig et al. 2017): SRResNet pre-training (MSE), then adversarial fine-tuning.

Default (reduced for a CPU, offline): x4 on 48x48 HR patches cut from the photographs that
ship with scikit-image (held out: chelsea, coffee), SRResNet with 32 features and 6
residual blocks (paper: 64 and 16, 96x96 patches), the paper's discriminator at half width
with 4 stride-2 stages and a 256-unit dense layer (paper: 64 / 1024); 1,500 SRResNet steps
at Adam 1e-3 (paper: 1e-4 for 10^6 steps; the higher rate makes the short run converge),
divided by 10 at 75%, then 500 adversarial steps at 1e-4, divided by 10 halfway (as the
paper's 1e-4 then 1e-5). Without
``--vgg_weights`` the content loss is the pixel MSE ("SRGAN-MSE" in the paper); with a
torchvision VGG19 file it is the paper's VGG54 loss (relu5_4 features / 12.75).

    python -m experiments.srgan                             # both stages -> runs/srgan/{psnr,gan}
    python -m experiments.srgan --stage psnr --workdir runs/srresnet      # SRResNet-MSE only
    python -m experiments.srgan --vgg_weights vgg19-dcbb9e9d.pth          # SRGAN-VGG54
    python -m experiments.srgan --dataset div2k --patch_size 96 --model.features 64 \\
        --model.n_blocks 16 --model.d_features 64 --model.d_dense 1024 \\
        --psnr_steps 1000000 --psnr_lr 1e-4 --psnr_lr_milestones none --gan_steps 200000 \\
        --vgg_weights vgg19-dcbb9e9d.pth                                # the paper's setting

Upscale with the result: ``python -m jaxgan.upscale runs/srgan IN OUT [--tile 64]``.
"""

from __future__ import annotations

import ml_collections

from jaxgan.train.superres import SMOKE, base_config, run_sr_experiment


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.family = "srgan"
    c.scale = 4
    c.patch_size = 48
    c.model.generator = "srresnet"
    c.model.features = 32
    c.model.n_blocks = 6
    c.model.batch_norm = True
    c.model.d_features = 32
    c.model.d_stages = 4
    c.model.d_kernel = 3
    c.model.d_dense = 256
    c.pixel_loss = "l2"
    c.vgg_layer = "relu5_4"
    c.vgg_scale = 1.0 / 12.75
    c.adversarial_weight = 1e-3
    c.psnr_lr = 1e-3  # paper 1e-4 (10^6 steps); higher for a short CPU run
    c.g_lr = 1e-4
    c.d_lr = 1e-4
    c.psnr_lr_milestones = (0.75,)
    c.gan_lr_milestones = (0.5,)
    c.lr_gamma = 0.1
    c.batch_size = 16
    c.psnr_steps = 1500
    c.gan_steps = 500
    c.log_every = 50
    c.sample_every = 500
    c.checkpoint_every = 500
    return c


def main(argv: list[str] | None = None):
    return run_sr_experiment("srgan", get_config, SMOKE, argv, __doc__)


if __name__ == "__main__":
    main()
