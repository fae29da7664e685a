"""Super-resolution: networks, degradation, scores, VGG19 loader, two-stage runs, upscale CLI."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan.data.superres import (
    SRPatchSource,
    bicubic_downscale,
    bicubic_upscale,
    crop_to_multiple,
    dihedral,
    imresize,
    load_sr_images,
    random_dihedral,
)
from jaxgan.metrics.sr import psnr, rgb_to_y, ssim
from jaxgan.nets.esrgan import (
    RRDB,
    ResidualDenseBlock,
    RRDBNet,
    interpolate_params,
    scan_rrdbs,
)
from jaxgan.nets.layers import pixel_shuffle
from jaxgan.nets.srgan import SRResNet, VGGStyleDiscriminator, init_sr_variables

# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_generators_upsample_by_scale(scale):
    x = jax.ShapeDtypeStruct((2, 7, 5, 3), jnp.float32)
    for module in (SRResNet(scale=scale, features=8, n_blocks=1), RRDBNet(scale, 8, 4, 1)):
        variables = jax.eval_shape(module.init, jax.random.key(0), x)
        y = jax.eval_shape(module.apply, variables, x)
        assert y.shape == (2, 7 * scale, 5 * scale, 3)
    # SRResNet upsamples with sub-pixel convolutions: conv to 4f channels, shuffle by 2.
    v = jax.eval_shape(SRResNet(4, 8, 1).init, jax.random.key(0), x)
    assert v["params"]["conv_up0"]["kernel"].shape == (3, 3, 8, 32)
    assert v["params"]["conv_up1"]["kernel"].shape == (3, 3, 8, 32)


def test_pixel_shuffle_places_channels_as_pytorch():
    x = jnp.arange(2 * 3 * 4 * 8, dtype=jnp.float32).reshape(2, 3, 4, 8)  # C = 2, r = 2
    y = pixel_shuffle(x, 2)
    assert y.shape == (2, 6, 8, 2)
    # out[n, h*r+i, w*r+j, c] = x[n, h, w, c*r*r + i*r + j]
    for i in range(2):
        for j in range(2):
            for c in range(2):
                np.testing.assert_array_equal(y[:, i::2, j::2, c], x[..., c * 4 + i * 2 + j])


def _zero(tree):
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), tree)


def test_rrdb_residual_scaling():
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 8))
    rdb = ResidualDenseBlock(features=8, growth=4, residual_scale=0.2)
    params = jax.eval_shape(rdb.init, jax.random.key(0), x)["params"]
    # Zero inner convolutions: the dense block is the identity ...
    apply = jax.jit(rdb.apply)
    np.testing.assert_allclose(apply({"params": _zero(params)}, x), x, atol=0)
    # ... and a bias b on its last convolution adds 0.2 * b.
    p = _zero(params)
    b = jnp.arange(8.0)
    p["conv5"]["bias"] = b
    np.testing.assert_allclose(apply({"params": p}, x), x + 0.2 * b, atol=1e-6)
    # The RRDB scales the output of its three dense blocks by 0.2 around the identity:
    # zero convolutions give x + 0.2 * x; a bias b in each block's last convolution gives
    # x + 0.2 * (x + 3 * 0.2 * b).
    rrdb = RRDB(features=8, growth=4, residual_scale=0.2)
    params = jax.eval_shape(rrdb.init, jax.random.key(0), x)["params"]
    apply = jax.jit(rrdb.apply)
    np.testing.assert_allclose(apply({"params": _zero(params)}, x), 1.2 * x, atol=1e-6)
    p = _zero(params)
    for name in ("rdb0", "rdb1", "rdb2"):
        p[name]["conv5"]["bias"] = b
    np.testing.assert_allclose(apply({"params": p}, x), x + 0.2 * (x + 0.6 * b), atol=1e-5)
    # Another residual scale changes exactly that factor.
    beta = RRDB(features=8, growth=4, residual_scale=0.5)
    out = jax.jit(beta.apply)({"params": _zero(params)}, x)
    np.testing.assert_allclose(out, 1.5 * x, atol=1e-6)


def test_discriminators_give_one_logit_per_image():
    x = jax.ShapeDtypeStruct((3, 32, 32, 3), jnp.float32)
    for d in (
        VGGStyleDiscriminator(8, n_stages=4, strided_kernel=3, dense_features=16),
        VGGStyleDiscriminator(8, n_stages=5, strided_kernel=4, dense_features=16),
    ):
        v = jax.eval_shape(d.init, jax.random.key(0), x)
        assert jax.eval_shape(d.apply, v, x).shape == (3,)
        side = 32 // 2**d.n_stages
        width = 8 * min(2 ** (d.n_stages - 1), 8)
        assert v["params"]["dense1"]["kernel"].shape == (side * side * width, 16)
        assert "batch_stats" in v


def test_init_scales_residual_blocks_down():
    module = SRResNet(scale=2, features=16, n_blocks=2)
    v = init_sr_variables(module, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    block = np.asarray(v["params"]["block0"]["conv1"]["kernel"])
    first = np.asarray(v["params"]["conv_up0"]["kernel"])
    assert abs(block.std() / (0.1 * np.sqrt(2 / (9 * 16))) - 1) < 0.1
    assert abs(first.std() / (1 / np.sqrt(3 * 9 * 16)) - 1) < 0.1
    assert float(v["params"]["prelu_first"]["negative_slope"]) == 0.25
    np.testing.assert_array_equal(v["batch_stats"]["bn_body"]["var"], 1.0)


def test_rrdbnet_stacks_its_blocks_and_scans_them_like_a_loop():
    net = RRDBNet(scale=2, features=8, growth=32, n_blocks=3)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 6, 5, 3)), jnp.float32)
    v = init_sr_variables(net, jax.random.key(0), x)
    stacked = v["params"]["blocks"]
    assert set(stacked) == {"rdb0", "rdb1", "rdb2"}
    assert stacked["rdb2"]["conv5"]["kernel"].shape == (3, 3, 3, 8 + 4 * 32, 8)
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(stacked))
    # Stacked kernels are drawn with the fan-in of one block (the block axis excluded).
    k = np.asarray(stacked["rdb0"]["conv5"]["kernel"])
    assert abs(k.std() / (0.1 * np.sqrt(2 / (9 * 136))) - 1) < 0.05
    # The scan equals the three RRDBs applied in turn, values and gradients.
    block = RRDB(8, 32, 0.2)
    y = jnp.asarray(np.random.default_rng(1).standard_normal((2, 6, 5, 8)), jnp.float32)

    def loop(params, y):
        for i in range(3):
            y = block.apply({"params": jax.tree.map(lambda a, i=i: a[i], params)}, y)
        return y

    np.testing.assert_allclose(scan_rrdbs(block, stacked, y), loop(stacked, y), atol=1e-5)
    loss = lambda f: jax.grad(lambda p, y: jnp.sum(jnp.sin(f(p, y))), argnums=(0, 1))
    scan_grads = loss(lambda p, y: scan_rrdbs(block, p, y))(stacked, y)
    loop_grads = loss(loop)(stacked, y)
    for a, b in zip(jax.tree.leaves(scan_grads), jax.tree.leaves(loop_grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Every convolution XLA runs in the loop is an ordinary NHWC/HWIO one (JAX's own
    # gradient forms run ~20x slower inside a loop body on CPU), and the backward pass
    # recomputes none. Per dense block: conv1 (8 -> 32) forward, input and weight gradient;
    # conv2-4 (40, 72, 104 -> 32) none (conv_taps: matrix products only); conv5 (136 -> 8)
    # a matrix product forward, input and weight gradient: 5 convolutions, 15 in all.
    hlo = jax.jit(loss(lambda p, y: scan_rrdbs(block, p, y))).lower(stacked, y).compile()
    convs = [line for line in hlo.as_text().splitlines() if " convolution(" in line]
    assert len(convs) == 15
    assert all("dim_labels=b01f_01io->b01f" in line for line in convs)


def test_network_interpolation():
    a = {"w": jnp.ones((2, 3)), "b": {"c": jnp.zeros(4)}}
    b = {"w": 3 * jnp.ones((2, 3)), "b": {"c": jnp.full(4, 2.0)}}
    for alpha, tree in ((0.0, a), (1.0, b)):
        out = interpolate_params(a, b, alpha)
        jax.tree.map(np.testing.assert_array_equal, out, tree)
    mid = interpolate_params(a, b, 0.25)
    np.testing.assert_allclose(mid["w"], 1.5)
    np.testing.assert_allclose(mid["b"]["c"], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_params(a, b, 1.5)
    with pytest.raises(ValueError, match=r"'w'.*shape"):
        interpolate_params(a, {"w": jnp.ones((3, 3)), "b": {"c": jnp.zeros(4)}}, 0.5)
    with pytest.raises(ValueError, match="same architecture"):
        interpolate_params(a, {"w": jnp.ones((2, 3))}, 0.5)


# ---------------------------------------------------------------------------------------
# Degradation and data
# ---------------------------------------------------------------------------------------


def test_bicubic_degradation_shapes_and_constants():
    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (3, 24, 40, 3)).astype(np.float32)
    for s in (2, 4):
        lr = bicubic_downscale(hr, s)
        assert lr.shape == (3, 24 // s, 40 // s, 3) and lr.dtype == np.float32
        assert bicubic_upscale(lr, s).shape == hr.shape
        # LR values sit on the 8-bit grid (as an LR file's would)
        np.testing.assert_allclose((lr + 1) * 127.5, np.round((lr + 1) * 127.5), atol=1e-4)
    with pytest.raises(ValueError, match="multiple of the scale"):
        bicubic_downscale(hr[:, :23], 2)
    # A constant image stays constant, exactly (up to float rounding), shrunk or enlarged.
    c = np.full((1, 36, 20, 3), 0.3, np.float32)
    np.testing.assert_allclose(bicubic_downscale(c, 4, quantized=False), 0.3, atol=1e-6)
    np.testing.assert_allclose(bicubic_upscale(c, 3), 0.3, atol=1e-6)
    # an 8-bit level (as images are loaded) survives quantization exactly
    level = np.full((8, 8, 3), 100, np.uint8).astype(np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(bicubic_downscale(level, 2), level[::2, ::2])


def test_bicubic_matches_the_antialiased_cubic_kernel():
    # Away from the borders the MATLAB-style resize is PIL's (a = -0.5, widened kernel).
    x = np.random.default_rng(1).random((40, 48)).astype(np.float32)
    ours = imresize(x[..., None], (10, 12))[..., 0]
    pil = np.asarray(Image.fromarray(x, mode="F").resize((12, 10), Image.BICUBIC))
    np.testing.assert_allclose(ours[2:-2, 2:-2], pil[2:-2, 2:-2], atol=1e-5)
    # A linear ramp is reproduced exactly by upsampling (cubic kernels keep linear
    # functions), away from the mirrored borders.
    ramp = np.tile(np.arange(16, dtype=np.float32)[None, :, None], (4, 1, 1))
    up = imresize(ramp, (8, 64))[0, 8:-8, 0]
    np.testing.assert_allclose(up, (np.arange(64)[8:-8] + 0.5) / 4 - 0.5, atol=1e-5)


def test_patch_source_pairs_equal_the_whole_image_degradation():
    images = load_sr_images("photos", "train")
    assert len(images) == 5 and len(load_sr_images("photos", "test")) == 2
    src = SRPatchSource(images, 24, 4, patches_per_image=3, seed=5)
    assert len(src) == 15
    batch = src.get(np.array([0, 6, 14]))
    assert batch["hr"].shape == (3, 24, 24, 3) and batch["lr"].shape == (3, 6, 6, 3)
    assert np.abs(batch["hr"]).max() <= 1
    for i in (0, 6, 11):
        hr, lr = src.crop(i)
        full = crop_to_multiple(np.asarray(images[i % 5]), 4).astype(np.float32) / 127.5 - 1
        # find the crop in the photograph, then compare with the LR of the whole photograph
        rng = np.random.default_rng([5, i])
        h, w = full.shape[:2]
        top = 4 * int(rng.integers(0, (h - 24) // 4 + 1))
        left = 4 * int(rng.integers(0, (w - 24) // 4 + 1))
        np.testing.assert_array_equal(hr, full[top : top + 24, left : left + 24])
        region = full[max(0, top - 40) : top + 64, max(0, left - 40) : left + 64]
        lr_region = bicubic_downscale(region, 4)
        a, b = (top - max(0, top - 40)) // 4, (left - max(0, left - 40)) // 4
        np.testing.assert_allclose(lr, lr_region[a : a + 6, b : b + 6], atol=1e-6)
    np.testing.assert_array_equal(src.get(np.array([6]))["hr"][0], src.crop(6)[0])  # determinism
    with pytest.raises(ValueError, match="multiple of scale"):
        SRPatchSource(images, 26, 4)


def test_dihedral_augmentation_commutes_with_degradation():
    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    lr = bicubic_downscale(hr, 2, quantized=False)
    out = random_dihedral({"hr": hr, "lr": lr, "label": np.zeros(8)}, np.random.default_rng(3))
    np.testing.assert_allclose(
        bicubic_downscale(out["hr"], 2, quantized=False), out["lr"], atol=1e-5
    )
    assert not np.array_equal(out["hr"], hr)  # something moved
    # the 8 symmetries are distinct
    x = rng.random((4, 4, 1))
    assert len({dihedral(x, k).tobytes() for k in range(8)}) == 8


def test_folder_and_tfds_images(tmp_path):
    import tensorflow_datasets as tfds

    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(root / "a.png")  # greyscale
    Image.fromarray(np.zeros((12, 12, 4), np.uint8), "RGBA").save(root / "sub" / "b.png")
    images = load_sr_images(f"folder:{root}")
    assert len(images) == 2 and images[0].shape == (20, 30, 3) and images[1].shape == (12, 12, 3)
    with pytest.raises(ValueError, match="smaller than patch_size 16"):
        SRPatchSource(images, 16, 2).get(np.array([1]))
    (root / "c.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="c.png"):
        load_sr_images(str(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_sr_images(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="not available offline"):
        load_sr_images("div2k", "train")
    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        images = load_sr_images("div2k", "test", scale=4)  # the validation split's 'hr'
        src = SRPatchSource(images, 4, 2, patches_per_image=2)
        assert src.get(np.arange(6))["lr"].shape == (6, 2, 2, 3)


# ---------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------


def test_psnr_on_the_y_channel_by_hand():
    grey = np.full((16, 16, 3), 100.0)
    brighter = grey + 10.0
    # Y = 16 + (65.481 + 128.553 + 24.966) / 255 * v, so a grey step of 10 is 10 * 219/255 in Y
    expected = 10 * np.log10(255.0**2 / (10 * 219 / 255) ** 2)
    assert psnr(grey, brighter) == pytest.approx(expected, rel=1e-12)
    assert psnr(grey, brighter, y_channel=False) == pytest.approx(10 * np.log10(255.0**2 / 100))
    np.testing.assert_allclose(rgb_to_y(np.array([[255.0, 255, 255], [0, 0, 0]])), [235, 16])
    # Differences inside the cropped border do not count.
    noisy = grey.copy()
    noisy[:2] = 0
    noisy[:, -2:] = 255
    assert psnr(grey, noisy, crop_border=2) == float("inf")
    assert np.isfinite(psnr(grey, noisy, crop_border=1))


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 36, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).round()
    ref = structural_similarity(
        rgb_to_y(a)[4:-4, 4:-4],
        rgb_to_y(b)[4:-4, 4:-4],
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(a, b, crop_border=4) == pytest.approx(ref, rel=1e-10)
    assert ssim(a, a, crop_border=4) == pytest.approx(1.0)
    less_noisy = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).round()
    assert ssim(a, b, crop_border=4) < ssim(a, less_noisy, crop_border=4) < 1.0
    colour = structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=-1,
    )  # fmt: skip
    assert ssim(a, b, y_channel=False) == pytest.approx(colour, rel=1e-10)


# ---------------------------------------------------------------------------------------
# VGG19: torchvision layout, parity with PyTorch
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    import torch  # a test dependency (the parity reference), never imported by jaxgan
    from torch_vgg_reference import TorchVGG19

    torch.manual_seed(0)
    model = TorchVGG19().eval()
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(model.state_dict(), path)
    return model, str(path)


def test_vgg_loader_maps_every_key_and_matches_torch(vgg_file):
    import torch

    from jaxgan.nets.vgg import TORCH_INDEX, VGG19Features, load_vgg19_params
    from jaxgan.torch_weights import load_torch_state_dict

    model, path = vgg_file
    params = load_vgg19_params(path)
    state_dict = load_torch_state_dict(path)
    # every feature key is used, the classifier keys are the only ones left over
    used = {f"features.{TORCH_INDEX[c]}.{s}" for c in params for s in ("weight", "bias")}
    assert used | {k for k in state_dict if k.startswith("classifier.")} == set(state_dict)
    assert len(params) == 16
    np.testing.assert_array_equal(
        params["conv2_1"]["kernel"], state_dict["features.5.weight"].transpose(2, 3, 1, 0)
    )
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    layers = ("conv1_2", "relu2_2", "pool3", "relu5_4", "conv5_4")
    ours = VGG19Features(layers=layers).apply({"params": params}, jnp.asarray(x))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2) - mean) / std
    torch_index = {"conv1_2": 2, "relu2_2": 8, "pool3": 18, "relu5_4": 35, "conv5_4": 34}
    with torch.no_grad():
        for name, out in zip(layers, ours, strict=True):
            ref = model.features_at(xt, torch_index[name]).permute(0, 2, 3, 1).numpy()
            scale = np.abs(ref).max()
            np.testing.assert_allclose(
                np.asarray(out) / scale, ref / scale, atol=2e-5, err_msg=name
            )
    assert float(jnp.min(ours[3])) >= 0 and float(jnp.min(ours[4])) < 0  # relu vs before


def test_vgg_loader_rejects_wrong_files(vgg_file, tmp_path):
    import torch

    from jaxgan.nets.vgg import load_vgg19_params

    model, _ = vgg_file
    sd = model.state_dict()
    without_last = {k: v for k, v in sd.items() if k != "features.34.weight"}
    cases = {
        "vgg16": (without_last, "missing key 'features.34.weight'"),
        "bn": (
            {**sd, "features.1.running_mean": torch.zeros(64)},
            "unexpected key 'features.1.running_mean'.*vgg19_bn",
        ),
        "shape": (
            {**sd, "features.0.weight": torch.zeros(64, 1, 3, 3)},
            r"'features.0.weight' has shape \(64, 1, 3, 3\)",
        ),
        "other": ({**sd, "fc.weight": torch.zeros(2, 2)}, "unexpected key 'fc.weight'"),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(bad, path)
        with pytest.raises(ValueError, match=message) as err:
            load_vgg19_params(path)
        assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="no such VGG19 weights file"):
        load_vgg19_params(tmp_path / "missing.pth")


# ---------------------------------------------------------------------------------------
# Training: a tiny run learns, stages chain, runs resume; the upscale CLI tiles exactly
# ---------------------------------------------------------------------------------------

TINY = [
    "--tensorboard", "false", "--quiet", "true", "--scale", "2", "--patch_size", "16",
    "--model.features", "8", "--model.n_blocks", "1", "--model.growth", "4",
    "--model.d_features", "4", "--model.d_stages", "2", "--model.d_dense", "8",
    "--batch_size", "4", "--eval_images", "1", "--eval_max_size", "40", "--sample_crop", "16",
    "--log_every", "1", "--sample_every", "0", "--checkpoint_every", "2", "--interp_alphas", "0.5",
]  # fmt: skip


def _metrics(workdir):
    from jaxgan.train.logging import read_metrics

    return read_metrics(workdir)


@pytest.fixture(scope="module")
def esrgan_run(tmp_path_factory):
    """A two-stage ESRGAN run through the experiment module: 40 PSNR steps, 2 GAN steps."""
    from experiments import esrgan

    wd = str(tmp_path_factory.mktemp("esrgan") / "run")
    args = ["--workdir", wd, "--psnr_steps", "40", "--psnr_lr", "2e-3", "--gan_steps", "2"]
    esrgan.main([*args, *TINY, "--checkpoint_every", "40"])
    return wd


def test_tiny_psnr_run_learns(esrgan_run):
    wd = os.path.join(esrgan_run, "psnr")
    pixel = [r["pixel"] for r in _metrics(wd) if "pixel" in r]
    assert len(pixel) == 40
    assert np.mean(pixel[-10:]) < 0.7 * np.mean(pixel[:5])  # L1 on [0, 1] images
    with open(os.path.join(wd, "eval.json")) as fh:
        scores = json.load(fh)
    # far from bicubic after 40 steps of a tiny network, but it scored real held-out images
    assert 5 < scores["psnr_y"] < 60 and 20 < scores["bicubic_psnr_y"] < 60
    assert 0 < scores["ssim_y"] < 1


def test_srgan_two_stages_with_batchnorm_and_a_perceptual_loss(tmp_path, vgg_file, capsys):
    from experiments import srgan
    from jaxgan.train.superres import restore_state

    wd = str(tmp_path / "srgan")
    # SRGAN with a VGG loss on a shallow layer (relu1_2 keeps the test light)
    vgg = ["--vgg_weights", vgg_file[1], "--vgg_layer", "relu1_2"]
    state = srgan.main(["--workdir", wd, "--psnr_steps", "2", "--gan_steps", "2", *TINY, *vgg])
    assert "perceptual loss: VGG19 relu1_2 features from" in capsys.readouterr().out
    assert int(state.step) == 2 and state.d is not None
    _, psnr = restore_state(os.path.join(wd, "psnr"))
    assert psnr.d is None  # the PSNR stage trains the generator alone
    # BatchNorm statistics moved away from their initial values, in G and in D
    assert float(np.abs(psnr.g.batch_stats["bn_body"]["mean"]).max()) > 0
    assert float(np.abs(state.d.batch_stats["bn0_1"]["mean"]).max()) > 0
    rows = [r for r in _metrics(os.path.join(wd, "gan")) if "d_loss" in r]
    assert len(rows) == 2 and all(np.isfinite(r["d_loss"]) for r in rows)
    assert {"g_loss", "pixel", "adversarial", "d_real", "d_fake"} <= set(rows[0])


def test_two_stage_run_writes_everything(esrgan_run):
    wd = esrgan_run
    for stage in ("psnr", "gan"):
        assert os.path.exists(os.path.join(wd, stage, "samples", "final.png"))
    assert sorted(os.listdir(os.path.join(wd, "psnr", "checkpoints"))) == ["40"]
    assert sorted(os.listdir(os.path.join(wd, "gan", "checkpoints"))) == ["2"]
    with open(os.path.join(wd, "gan", "config.json")) as fh:
        assert json.load(fh)["init_from"] == os.path.join(wd, "psnr")
    gan_rows = [r for r in _metrics(os.path.join(wd, "gan")) if "d_loss" in r]
    assert len(gan_rows) == 2
    assert {"g_loss", "pixel", "adversarial", "d_real", "d_fake", "psnr"} <= set(gan_rows[0])
    with open(os.path.join(wd, "summary.json")) as fh:
        summary = json.load(fh)
    assert set(summary) >= {"bicubic", "psnr", "gan", "interp_0.5"}
    with open(os.path.join(wd, "gan", "eval.json")) as fh:
        final = json.load(fh)
    assert summary["gan"]["psnr_y"] == pytest.approx(final["psnr_y"])
    assert summary["bicubic"]["ssim_y"] == pytest.approx(final["bicubic_ssim_y"])
    assert Image.open(os.path.join(wd, "comparison.png")).size[0] > 0


def test_gan_stage_starts_from_the_psnr_generator_and_resumes(esrgan_run, tmp_path):
    from jaxgan.train.loop import train_and_evaluate
    from jaxgan.train.superres import build_sr_task, read_run_config, restore_state

    config = read_run_config(os.path.join(esrgan_run, "gan"))
    config.quiet = True

    def run(workdir, steps):
        c = config.copy_and_resolve_references()
        c.steps, c.workdir = steps, workdir
        return train_and_evaluate(c, workdir)

    _, psnr_state = restore_state(os.path.join(esrgan_run, "psnr"))
    start = jax.jit(build_sr_task(config).init_state)(jax.random.PRNGKey(0))
    jax.tree.map(np.testing.assert_array_equal, start.g.params, psnr_state.g.params)
    assert int(start.step) == 0
    straight = run(str(tmp_path / "a"), 4)
    run(str(tmp_path / "b"), 2)
    resumed = run(str(tmp_path / "b"), 4)
    assert int(resumed.step) == 4
    jax.tree.map(np.testing.assert_array_equal, straight.g.params, resumed.g.params)
    jax.tree.map(np.testing.assert_array_equal, straight.d, resumed.d)


def test_clear_errors_before_compute(esrgan_run, tmp_path):
    from experiments import esrgan
    from jaxgan.train.loop import train_and_evaluate
    from jaxgan.train.superres import read_run_config

    with pytest.raises(ValueError, match="--init_from"):
        esrgan.main(["--stage", "gan", "--workdir", str(tmp_path / "g"), *TINY])
    with pytest.raises(ValueError, match="multiple of 4"):
        esrgan.main(
            ["--stage", "gan", "--workdir", str(tmp_path / "g"), *TINY, "--patch_size", "18"]
        )
    config = read_run_config(os.path.join(esrgan_run, "gan"))
    config.model.features = 16
    with pytest.raises(ValueError, match="features: 8 there, 16 here"):
        train_and_evaluate(config, str(tmp_path / "other"))
    with pytest.raises(ValueError, match="not a super-resolution run"):
        os.makedirs(tmp_path / "dc")
        (tmp_path / "dc" / "config.json").write_text(json.dumps({"family": "gan"}))
        read_run_config(str(tmp_path / "dc"))


def test_upscale_cli_tiles_like_the_whole_image(esrgan_run, tmp_path):
    from jaxgan.train.superres import receptive_radius
    from jaxgan.upscale import load_generator, main, upscale_array

    config, upscale, variables = load_generator(esrgan_run)
    radius = receptive_radius(config)
    rng = np.random.default_rng(0)
    lr = rng.uniform(-1, 1, (48, 48, 3)).astype(np.float32)
    whole = upscale_array(upscale, variables, lr, 2)
    assert whole.shape == (96, 96, 3)
    tiled = upscale_array(upscale, variables, lr, 2, tile=16, pad=radius)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    no_context = upscale_array(upscale, variables, lr, 2, tile=16, pad=0)
    assert np.abs(no_context - whole).max() > 1e-3  # the context is what makes it exact

    img = tmp_path / "in" / "x.png"
    img.parent.mkdir()
    Image.fromarray(np.round((lr + 1) * 127.5).astype(np.uint8)).save(img)
    a = main([esrgan_run, str(img), str(tmp_path / "a.png")])
    b = main([esrgan_run, str(img.parent), str(tmp_path / "b"), "--tile", "16"])
    assert b == [str(tmp_path / "b" / "x.png")]
    pa, pb = (np.asarray(Image.open(p[0]), np.int16) for p in (a, b))
    assert pa.shape == (96, 96, 3) and np.abs(pa - pb).max() <= 1 and (pa != pb).mean() < 1e-3
    # network interpolation: alpha 0 is the PSNR-oriented generator
    _, _, v0 = load_generator(esrgan_run, alpha=0.0)
    _, _, vp = load_generator(esrgan_run, stage="psnr")
    jax.tree.map(np.testing.assert_allclose, v0, vp)
    with pytest.raises(ValueError, match="--alpha needs"):
        load_generator(os.path.join(esrgan_run, "psnr"), alpha=0.5)


def test_esrgan_without_vgg_makes_l1_the_content_term():
    """No VGG weights: ESRGAN's L1 term carries the content (weight 1) and the RaGAN term
    gets 1e-3; with weights the paper's 1e-2 / 5e-3 apply; SRGAN keeps its own weight."""
    from jaxgan.train import superres

    config = superres.base_config()
    config.family = "esrgan"
    cfg = superres.step_config(config)
    assert not cfg.perceptual
    assert (cfg.pixel_weight, cfg.adversarial_weight) == (1.0, 1e-3)
    config.vgg_weights = "vgg19.pth"
    cfg = superres.step_config(config)
    assert cfg.perceptual and (cfg.pixel_weight, cfg.adversarial_weight) == (1e-2, 5e-3)
    config.family, config.vgg_weights, config.adversarial_weight = "srgan", "", 1e-3
    assert superres.step_config(config).adversarial_weight == 1e-3
