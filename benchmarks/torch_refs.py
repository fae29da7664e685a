"""PyTorch reference models and eager training steps for :mod:`benchmarks.run`.

Each reference reproduces the architecture, batch size, optimizer and losses of the usual
PyTorch implementation of the model, written for this benchmark (NCHW, eager mode):

* DCGAN: the PyTorch DCGAN example (``pytorch/examples/dcgan``): a ``ConvTranspose2d(nz, F,
  4, 1, 0)`` generator stem (equal to jaxgan's Dense to 4x4xF), stride-2 4x4 transposed
  convolutions with BatchNorm and ReLU, tanh; the discriminator's mirror with LeakyReLU 0.2,
  a final 4x4 valid convolution and a sigmoid with ``BCELoss``; Adam(2e-4, (0.5, 0.999)); one
  iteration = D on a real batch, D on ``G(z).detach()``, one D step, then G through D on the
  same fake, one G step.
* WGAN-GP (Gulrajani et al. 2017, Algorithm 1 as the common PyTorch ports write it): the
  DCGAN generator and a DCGAN critic without BatchNorm (no sigmoid); per generator step
  ``n_critic`` critic steps, each on a real batch and a fresh ``G(z)`` made under
  ``no_grad``, with the penalty from ``torch.autograd.grad(..., create_graph=True)`` on
  interpolates (lambda 10), then one generator step with the critic frozen;
  Adam(1e-4, (0.0, 0.9)).
* CycleGAN: ``ResnetGenerator`` (9 blocks) and the 70x70 ``NLayerDiscriminator`` of
  junyanz/pytorch-CycleGAN-and-pix2pix (instance norm without affine, biased convs, reflection
  padding, ``ConvTranspose2d(k=3, s=2, padding=1, output_padding=1)``), LSGAN (MSE) losses,
  cycle L1 (lambda 10) and identity L1 (0.5 * 10), a 50-image pool, Adam(2e-4, (0.5, 0.999)),
  batch 1; ``optimize_parameters``: G and F step with frozen discriminators, then D_X and D_Y.
* ESRGAN (GAN stage): BasicSR's ``RRDBNet`` (nearest-neighbour x2 upsampling stages),
  ``VGGStyleDiscriminator`` (BatchNorm, 4x4 stride-2 convolutions, dense 100), the
  perceptual L1 loss on VGG19 ``conv5_4`` (before the ReLU, ImageNet-normalised input,
  frozen), pixel L1 (1e-2) and the relativistic average GAN loss (5e-3),
  Adam(1e-4, (0.9, 0.99)); ``ESRGANModel.optimize_parameters``: G step with the
  discriminator frozen, then the D step (real, then the detached fake).
* FID: ``tests/torch_fid_reference.py``'s pytorch-fid InceptionV3 in eval mode.

Every ``make_*`` returns ``(step, images_per_step)``; ``step()`` runs one training step.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Step = Callable[[], Any]


def set_threads(n: int) -> None:
    """Give PyTorch ``n`` intra-op threads (and one inter-op thread)."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def _dcgan_init(m: nn.Module) -> None:
    """The DCGAN example's ``weights_init``: conv N(0, 0.02), BatchNorm N(1, 0.02) and 0."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _n_stages(resolution: int) -> int:
    if resolution not in (8, 16, 32, 64):
        raise ValueError(f"DCGAN resolution must be 8, 16, 32 or 64, got {resolution}")
    return resolution.bit_length() - 3


class DCGANGenerator(nn.Module):
    """z (B, nz) -> ConvT(nz, F, 4, 1, 0) -> BN -> ReLU -> [ConvT(4, 2, 1) BN ReLU]* -> tanh."""

    def __init__(self, resolution: int = 64, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        n = _n_stages(resolution)
        f = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, f, 4, 1, 0, bias=False),
            nn.BatchNorm2d(f),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(f, f // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(f // 2),
                nn.ReLU(True),
            ]
            f //= 2
        layers += [nn.ConvTranspose2d(f, nc, 4, 2, 1, bias=True), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.nz, 1, 1))


class DCGANDiscriminator(nn.Module):
    """x -> Conv(4, 2, 1) LReLU -> [Conv(4, 2, 1) (BN) LReLU]* -> Conv(4, 1, 0) (-> sigmoid)."""

    def __init__(
        self,
        resolution: int = 64,
        ndf: int = 64,
        nc: int = 3,
        batch_norm: bool = True,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        n = _n_stages(resolution)
        f = ndf
        layers: list[nn.Module] = [nn.Conv2d(nc, f, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(n - 1):
            layers.append(nn.Conv2d(f, 2 * f, 4, 2, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(2 * f))
            layers.append(nn.LeakyReLU(0.2, True))
            f *= 2
        layers.append(nn.Conv2d(f, 1, 4, 1, 0))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def make_dcgan(
    resolution: int = 32,
    batch: int = 64,
    nz: int = 100,
    width: int = 64,
    nc: int = 3,
    device: str = "cpu",
) -> tuple[Step, int]:
    """One iteration of the PyTorch DCGAN example's training loop (fixed real batch)."""
    g = DCGANGenerator(resolution, nz, width, nc).to(device)
    d = DCGANDiscriminator(resolution, width, nc).to(device)
    g.apply(_dcgan_init)
    d.apply(_dcgan_init)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    real = torch.rand(batch, nc, resolution, resolution, device=device) * 2 - 1
    ones = torch.ones(batch, device=device)
    zeros = torch.zeros(batch, device=device)

    def step() -> tuple[float, float]:
        d.zero_grad()
        err_real = criterion(d(real), ones)
        err_real.backward()
        fake = g(torch.randn(batch, nz, device=device))
        err_fake = criterion(d(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        g.zero_grad()
        err_g = criterion(d(fake), ones)
        err_g.backward()
        opt_g.step()
        return err_real.detach() + err_fake.detach(), err_g.detach()

    return step, batch


def make_wgan_gp(
    resolution: int = 32,
    batch: int = 64,
    nz: int = 100,
    width: int = 64,
    nc: int = 3,
    n_critic: int = 5,
    gp_weight: float = 10.0,
    device: str = "cpu",
) -> tuple[Step, int]:
    """One *generator* step of WGAN-GP: ``n_critic`` critic steps, then one G step.

    ``images_per_step`` is ``n_critic * batch``: the real images the critic consumes.
    """
    g = DCGANGenerator(resolution, nz, width, nc).to(device)
    d = DCGANDiscriminator(resolution, width, nc, batch_norm=False, sigmoid=False).to(device)
    g.apply(_dcgan_init)
    d.apply(_dcgan_init)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))
    reals = torch.rand(n_critic, batch, nc, resolution, resolution, device=device) * 2 - 1

    def penalty(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        out = d(x_hat)
        (grads,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

    def step() -> tuple[float, float]:
        for p in d.parameters():
            p.requires_grad_(True)
        for i in range(n_critic):
            d.zero_grad()
            real = reals[i]
            with torch.no_grad():
                fake = g(torch.randn(batch, nz, device=device))
            d_loss = d(fake).mean() - d(real).mean() + gp_weight * penalty(real, fake)
            d_loss.backward()
            opt_d.step()
        for p in d.parameters():
            p.requires_grad_(False)
        g.zero_grad()
        g_loss = -d(g(torch.randn(batch, nz, device=device))).mean()
        g_loss.backward()
        opt_g.step()
        return d_loss.detach(), g_loss.detach()

    return step, n_critic * batch


# ----------------------------------------------------------------------------------- CycleGAN


class ResnetBlock(nn.Module):
    """``x + [reflect 1, conv3x3, IN, ReLU, reflect 1, conv3x3, IN](x)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN ``resnet_9blocks`` generator (instance norm, no dropout)."""

    def __init__(self, nc: int = 3, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(nc, ngf, 7, bias=True),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            m = 2**i
            layers += [
                nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ngf * m * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            m = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1, bias=True
                ),
                nn.InstanceNorm2d(ngf * m // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """The 70x70 PatchGAN (``n_layers=3``) with instance norm."""

    def __init__(self, nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=True),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=True),
            nn.InstanceNorm2d(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, 1, 1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ImagePool:
    """The reference's history of generated images (returns a stored one half the time)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def _cyclegan_init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def make_cyclegan(
    image_size: int = 256,
    batch: int = 1,
    ngf: int = 64,
    ndf: int = 64,
    n_blocks: int = 9,
    nc: int = 3,
    pool_size: int = 50,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.5,
    d_layers: int = 3,
    device: str = "cpu",
) -> tuple[Step, int]:
    """One ``optimize_parameters`` of the reference CycleGAN model (fixed real pair)."""
    g_a, g_b = ResnetGenerator(nc, ngf, n_blocks), ResnetGenerator(nc, ngf, n_blocks)
    d_a, d_b = NLayerDiscriminator(nc, ndf, d_layers), NLayerDiscriminator(nc, ndf, d_layers)
    for net in (g_a, g_b, d_a, d_b):
        net.apply(_cyclegan_init)
        net.to(device)
    opt_g = torch.optim.Adam(
        itertools.chain(g_a.parameters(), g_b.parameters()), lr=2e-4, betas=(0.5, 0.999)
    )
    opt_d = torch.optim.Adam(
        itertools.chain(d_a.parameters(), d_b.parameters()), lr=2e-4, betas=(0.5, 0.999)
    )
    pool_a, pool_b = ImagePool(pool_size), ImagePool(pool_size)
    real_a = torch.rand(batch, nc, image_size, image_size, device=device) * 2 - 1
    real_b = torch.rand(batch, nc, image_size, image_size, device=device) * 2 - 1
    mse, l1 = nn.MSELoss(), nn.L1Loss()

    def gan_loss(pred: torch.Tensor, target_real: bool) -> torch.Tensor:
        target = torch.ones_like(pred) if target_real else torch.zeros_like(pred)
        return mse(pred, target)

    def set_requires_grad(nets: tuple[nn.Module, ...], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    def backward_d(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = (gan_loss(d(real), True) + gan_loss(d(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def step() -> tuple[float, float]:
        fake_b = g_a(real_a)
        rec_a = g_b(fake_b)
        fake_a = g_b(real_b)
        rec_b = g_a(fake_a)
        set_requires_grad((d_a, d_b), False)
        opt_g.zero_grad()
        lam_idt = lambda_identity * lambda_cycle
        loss_idt_a = l1(g_a(real_b), real_b) * lam_idt
        loss_idt_b = l1(g_b(real_a), real_a) * lam_idt
        loss_g = (
            gan_loss(d_a(fake_b), True)
            + gan_loss(d_b(fake_a), True)
            + l1(rec_a, real_a) * lambda_cycle
            + l1(rec_b, real_b) * lambda_cycle
            + loss_idt_a
            + loss_idt_b
        )
        loss_g.backward()
        opt_g.step()
        set_requires_grad((d_a, d_b), True)
        opt_d.zero_grad()
        loss_d_a = backward_d(d_a, real_b, pool_b.query(fake_b))
        loss_d_b = backward_d(d_b, real_a, pool_a.query(fake_a))
        opt_d.step()
        return loss_g.detach(), (loss_d_a + loss_d_b).detach()

    return step, batch


# -------------------------------------------------------------------------------------- ESRGAN


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions, ``x + 0.2 * x5`` (BasicSR)."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(nf + i * gc, gc, 3, 1, 1) for i in range(4)]
            + [nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)]
        )
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for conv in self.convs[:4]:
            outs.append(self.lrelu(conv(torch.cat(outs, 1))))
        return x + 0.2 * self.convs[4](torch.cat(outs, 1))


class RRDB(nn.Module):
    """``x + 0.2 * RDB3(RDB2(RDB1(x)))``."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.rdbs = nn.Sequential(*[ResidualDenseBlock(nf, gc) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdbs(x)


class RRDBNet(nn.Module):
    """The ESRGAN generator, x4 (two nearest-neighbour x2 stages)."""

    def __init__(self, nc: int = 3, nf: int = 64, n_blocks: int = 23, gc: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(nc, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(n_blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, nc, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class VGGStyleDiscriminator(nn.Module):
    """BasicSR's VGG-style discriminator: ``n_stages`` x [3x3 conv, 4x4 stride-2 conv] with
    BatchNorm (none after the first convolution), LeakyReLU 0.2, dense 100, dense 1."""

    def __init__(self, nc: int = 3, nf: int = 64, n_stages: int = 5, input_size: int = 128):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, nf, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        cin = nf
        for i in range(n_stages):
            width = nf * min(2**i, 8)
            if i > 0:
                layers += [
                    nn.Conv2d(cin, width, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.LeakyReLU(0.2, True),
                ]
            layers += [
                nn.Conv2d(width, width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.2, True),
            ]
            cin = width
        self.features = nn.Sequential(*layers)
        side = input_size // 2**n_stages
        self.linear1 = nn.Linear(cin * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.lrelu(self.linear1(self.features(x).flatten(1))))


class VGG19Conv54(nn.Module):
    """torchvision's VGG19 ``features`` up to ``conv5_4`` (before its ReLU), frozen, with
    ImageNet normalisation of [0, 1] inputs (BasicSR's ``VGGFeatureExtractor``)."""

    def __init__(self) -> None:
        super().__init__()
        cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M")
        layers: list[nn.Module] = []
        cin = 3
        for v in (*cfg, 512, 512, 512):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.ReLU(True)]
                cin = int(v)
        layers.append(nn.Conv2d(512, 512, 3, 1, 1))  # conv5_4, no ReLU after it
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def make_esrgan(
    batch: int = 4,
    patch: int = 128,
    scale: int = 4,
    features: int = 64,
    growth: int = 32,
    n_blocks: int = 23,
    d_features: int = 64,
    d_stages: int = 5,
    device: str = "cpu",
) -> tuple[Step, int]:
    """One GAN-stage iteration of BasicSR's ``ESRGANModel`` (fixed LR/HR batch in [0, 1])."""
    if scale != 4:
        raise ValueError("the reference RRDBNet is x4")
    g = RRDBNet(3, features, n_blocks, growth).to(device)
    d = VGGStyleDiscriminator(3, d_features, d_stages, patch).to(device)
    vgg = VGG19Conv54().to(device).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.99))
    lq = torch.rand(batch, 3, patch // scale, patch // scale, device=device)
    gt = torch.rand(batch, 3, patch, patch, device=device)
    bce = nn.BCEWithLogitsLoss()

    def gan_loss(pred: torch.Tensor, target_real: bool) -> torch.Tensor:
        return bce(pred, torch.ones_like(pred) if target_real else torch.zeros_like(pred))

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        for p in d.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad()
        output = g(lq)
        l_pix = 1e-2 * F.l1_loss(output, gt)
        l_percep = F.l1_loss(vgg(output), vgg(gt.detach()))
        real_pred = d(gt).detach()
        fake_pred = d(output)
        l_gan = (
            5e-3
            * (
                gan_loss(real_pred - fake_pred.mean(), False)
                + gan_loss(fake_pred - real_pred.mean(), True)
            )
            / 2
        )
        l_g = l_pix + l_percep + l_gan
        l_g.backward()
        opt_g.step()
        for p in d.parameters():
            p.requires_grad_(True)
        opt_d.zero_grad()
        fake_pred = d(output).detach()
        real_pred = d(gt)
        l_real = gan_loss(real_pred - fake_pred.mean(), True) * 0.5
        l_real.backward()
        fake_pred = d(output.detach())
        l_fake = gan_loss(fake_pred - real_pred.mean().detach(), False) * 0.5
        l_fake.backward()
        opt_d.step()
        return l_g.detach(), (l_real + l_fake).detach()

    return step, batch


# ----------------------------------------------------------------------------------------- FID


def load_fid_reference() -> Any:
    """The ``tests/torch_fid_reference.py`` module (the tests folder is not a package)."""
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "torch_fid_reference.py")
    spec = importlib.util.spec_from_file_location("torch_fid_reference", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the PyTorch FID reference from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FID_LAST_LAYER = {64: "maxpool1", 192: "maxpool2", 768: "Mixed_6e", 2048: None}


def make_fid(
    batch: int = 50,
    image_size: int = 32,
    dims: int = 2048,
    resize: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[Step, int]:
    """pytorch-fid's feature pass: images in [0, 1], resized to 299 (``resize``), then the
    spatial mean of the block of ``dims`` (pool3 for 2048)."""
    model = load_fid_reference().random_fid_inception(seed).to(device)
    images = torch.rand(batch, 3, image_size, image_size, device=device)
    upto = _FID_LAST_LAYER[dims]

    def step() -> torch.Tensor:
        with torch.no_grad():
            return model(images, resize=resize, upto=upto)["pool_out"]

    return step, batch


def fid_state_dict(seed: int = 0) -> dict[str, Any]:
    """The random reference network's weights as numpy arrays (for jaxgan's InceptionV3)."""
    model = load_fid_reference().random_fid_inception(seed)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}
