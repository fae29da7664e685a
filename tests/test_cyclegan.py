"""CycleGAN: networks, image pool, schedule, domain data, the step, resume and translate.

Every training run here uses one tiny configuration (the experiment's --smoke networks),
so the step is compiled once for the whole file (the builders are cached).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan.data import Source
from jaxgan.data.domains import (
    EMBEDDED_PAIRS,
    PairedDomainsSource,
    TexturePatchSource,
    get_domain_pair,
    jitter,
    load_size,
    make_jitter,
)
from jaxgan.nets.cyclegan import (
    PatchDiscriminator,
    ResnetGenerator,
    init_params,
    instance_norm,
    patch_output_size,
    receptive_field,
    reflect_pad,
)
from jaxgan.nets.layers import count_params
from jaxgan.train.cyclegan import (
    cyclegan_lr_schedule,
    init_pool,
    pool_query,
)
from jaxgan.train.logging import read_metrics

KEY = jax.random.PRNGKey(0)
query = jax.jit(pool_query)  # one compilation per shape (eager scans recompile per call)

# ------------------------------------------------------------------------------ networks


def test_reflect_pad_mirrors_without_repeating_the_border():
    x = jnp.arange(12.0).reshape(1, 3, 4, 1)  # rows [0..3], [4..7], [8..11]
    y = np.asarray(reflect_pad(x, 2))[0, ..., 0]
    assert y.shape == (7, 8)
    np.testing.assert_array_equal(y[2:5, 2:6], np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(y[2], [2, 1, 0, 1, 2, 3, 2, 1])  # row 0 mirrored
    np.testing.assert_array_equal(y[:, 2], [8, 4, 0, 4, 8, 4, 0])  # column 0 mirrored
    assert y[0, 0] == 10  # corner: row 2, column 2 of the input
    with pytest.raises(ValueError, match="larger than 3"):
        reflect_pad(x, 3)


def test_instance_norm_statistics_per_sample_and_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 6, 4)) * [1.0, 3.0, 0.5, 10.0] + [0.0, -2.0, 7.0, 1.0]
    y = np.asarray(instance_norm(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, atol=1e-3)  # biased variance
    # each (sample, channel) on its own: scaling/shifting one sample changes nothing else
    x2 = x.copy()
    x2[1] = 4.0 * x2[1] - 3.0
    y2 = np.asarray(instance_norm(jnp.asarray(x2, jnp.float32)))
    np.testing.assert_allclose(y2, y, atol=1e-4)
    # hand-computed: [1, 3] has mean 2 and biased variance 1
    z = instance_norm(jnp.array([1.0, 3.0]).reshape(1, 1, 2, 1), eps=0.0)
    np.testing.assert_allclose(np.ravel(z), [-1.0, 1.0], atol=1e-6)


def test_network_shapes_and_the_papers_parameter_counts():
    x = jnp.zeros((2, 16, 16, 1))
    g = ResnetGenerator(channels=3, features=4, n_blocks=2)
    params = jax.jit(lambda k: init_params(g, k, x))(KEY)
    apply_g = jax.jit(lambda p, v: g.apply({"params": p}, v))
    y = apply_g(params, np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 1)))
    assert y.shape == (2, 16, 16, 3) and float(jnp.max(jnp.abs(y))) < 1.0
    # upsampling is the fast ConvTranspose of jaxgan.nets.layers, k3 s2
    assert params["ConvTranspose_0"]["kernel"].shape == (3, 3, 16, 8)
    assert params["ConvTranspose_1"]["kernel"].shape == (3, 3, 8, 4)
    assert params["Conv_0"]["kernel"].shape == (7, 7, 1, 4)  # c7s1
    d = PatchDiscriminator(features=4, n_layers=2)
    logits = jax.jit(lambda k, v: d.apply({"params": init_params(d, k, v)}, v))(KEY, x)
    assert (
        logits.shape == (2, patch_output_size(16, 2), patch_output_size(16, 2), 1) == (2, 2, 2, 1)
    )
    # the reference's networks: resnet_9blocks G 11.378 M, 70x70 PatchGAN D 2.765 M params
    big = jnp.zeros((1, 256, 256, 3))
    g9 = jax.eval_shape(ResnetGenerator(3, 64, 9).init, KEY, big)["params"]
    d3 = jax.eval_shape(PatchDiscriminator(64, 3).init, KEY, big)["params"]
    assert count_params(g9) == 11_378_179
    assert count_params(d3) == 2_764_737
    assert receptive_field(3) == 70 and patch_output_size(256, 3) == 30
    with pytest.raises(ValueError, match="divisible by 4"):
        g.apply({"params": params}, jnp.zeros((1, 18, 18, 1)))
    with pytest.raises(ValueError, match="lower n_layers"):
        PatchDiscriminator(4, 3).init(KEY, jnp.zeros((1, 16, 16, 1)))


def test_init_params_is_the_reference_normal_init():
    d = PatchDiscriminator(features=8, n_layers=2)
    x = jnp.zeros((1, 32, 32, 3))
    params = jax.jit(lambda k: init_params(d, k, x))(KEY)
    ref = jax.eval_shape(d.init, KEY, x)["params"]
    assert jax.tree.structure(params) == jax.tree.structure(ref)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(lambda a: a.shape, ref)
    kernels = np.concatenate([np.ravel(v["kernel"]) for v in params.values()])
    assert all(not np.any(v["bias"]) for v in params.values())
    assert abs(kernels.std() - 0.02) < 0.001 and abs(kernels.mean()) < 0.001
    again = jax.jit(lambda k: init_params(d, k, x))(KEY)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- image pool


def _images(start: int, n: int) -> jnp.ndarray:
    """n distinct 2x2x1 images; image k holds the value k everywhere."""
    return jnp.broadcast_to(
        jnp.arange(start, start + n, dtype=jnp.float32)[:, None, None, None], (n, 2, 2, 1)
    )


def _ids(images) -> list[int]:
    return [int(v) for v in np.asarray(images)[:, 0, 0, 0]]


def test_pool_fill_phase_returns_inputs_and_stores_them():
    pool = init_pool(5, (2, 2, 1))
    pool, out = query(pool, _images(1, 3), jax.random.PRNGKey(1))
    assert _ids(out) == [1, 2, 3] and int(pool.count) == 3
    assert _ids(pool.images[:3]) == [1, 2, 3] and _ids(pool.images[3:]) == [0, 0]
    # the next batch fills the last two rows first (returned as they are), then may swap
    pool, out = query(pool, _images(4, 3), jax.random.PRNGKey(2))
    assert int(pool.count) == 5 and _ids(out)[:2] == [4, 5]
    assert _ids(pool.images[3:]) == [4, 5] or 6 in _ids(pool.images)
    empty = init_pool(0, (2, 2, 1))
    same, out = pool_query(empty, _images(1, 3), KEY)
    assert _ids(out) == [1, 2, 3] and same is empty


def test_full_pool_swaps_half_the_time_and_conserves_images():
    size = 6
    pool, _ = query(init_pool(size, (2, 2, 1)), _images(0, size), KEY)
    assert sorted(_ids(pool.images)) == list(range(size))
    swaps, seen = 0, 0
    for step in range(20):
        before = _ids(pool.images)
        new = _images(100 + 10 * step, 10)
        key = jax.random.fold_in(KEY, step)
        pool, out = query(pool, new, key)
        after, returned = _ids(pool.images), _ids(out)
        # every image is either handed to D or kept: nothing is lost or duplicated
        assert sorted(before + _ids(new)) == sorted(after + returned)
        for i, r in enumerate(returned):
            # the input itself, or an image stored before it (in the pool, or an earlier
            # input of this batch that replaced a slot)
            assert r == _ids(new)[i] or r in before or r in _ids(new)[:i]
            swaps += r != _ids(new)[i]
            seen += 1
        assert int(pool.count) == size
    assert 0.35 < swaps / seen < 0.65  # swap probability 1/2


def test_pool_is_deterministic_for_a_key_and_follows_the_sequential_rule():
    size, n = 4, 12
    full, _ = query(init_pool(size, (2, 2, 1)), _images(0, size), KEY)
    new = _images(50, n)
    key = jax.random.PRNGKey(7)
    p1, o1 = query(full, new, key)
    p2, o2 = query(full, new, key)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(p1.images, p2.images)
    # replay the reference's loop with the documented draws
    u = np.asarray(jax.random.uniform(key, (2 * n,)))
    stored, expect = list(range(size)), []
    for i, img in enumerate(_ids(new)):
        if u[i] > 0.5:
            slot = min(int(np.floor(u[n + i] * size)), size - 1)
            expect.append(stored[slot])
            stored[slot] = img
        else:
            expect.append(img)
    assert _ids(o1) == expect and _ids(p1.images) == stored
    _, o3 = query(full, new, jax.random.PRNGKey(8))
    assert _ids(o3) != _ids(o1)


# ----------------------------------------------------------------------------- schedule


def test_lr_schedule_is_the_references_linear_rule():
    lr = 2e-4
    s = cyclegan_lr_schedule(lr, n_epochs=3, n_epochs_decay=4, epoch_steps=10)
    expect = {0: 1.0, 29: 1.0, 30: 0.8, 39: 0.8, 40: 0.6, 69: 0.2, 70: 0.0, 500: 0.0}
    for step, factor in expect.items():
        assert float(s(step)) == pytest.approx(lr * factor, rel=1e-6, abs=1e-12), step
    # the paper's 100 + 100 epochs, per step
    s = cyclegan_lr_schedule(lr, 100, 100)
    assert float(s(99)) == pytest.approx(lr)
    assert float(s(100)) == pytest.approx(lr * (1 - 1 / 101))
    assert float(s(199)) == pytest.approx(lr / 101)
    assert float(s(200)) == 0.0
    with pytest.raises(ValueError):
        cyclegan_lr_schedule(lr, 1, 1, epoch_steps=0)


# --------------------------------------------------------------------------------- data


def test_embedded_domains_are_disjoint_real_textures():
    a, b = get_domain_pair("grass2gravel", "train", image_size=16)
    ta, tb = get_domain_pair("grass2gravel", "test", image_size=16)
    assert a.sample_shape == b.sample_shape == (16, 16, 1)
    assert len(a) > 10_000 and len(ta) > 1_000
    x = a.get(np.array([0, 5, len(a) - 1]))["x"]
    assert x.shape == (3, 16, 16, 1) and -1 <= x.min() < x.max() <= 1
    np.testing.assert_array_equal(x, a.get(np.array([0, 5, len(a) - 1]))["x"])
    # test crops come from rows below every training crop: none equals a training crop
    train_crop = a.get(np.array([len(a) - 1]))["x"][0]  # bottom-right training crop
    test_crops = ta.get(np.arange(len(ta)))["x"]
    assert not np.any(np.all(test_crops == train_crop, axis=(1, 2, 3)))

    # the domains differ: thin blades vary faster across a crop, relative to its contrast,
    # than rounded pebbles do
    def fineness(src):
        x = src.get(np.arange(0, len(src), 97))["x"][..., 0]
        return np.mean(np.abs(np.diff(x, axis=2)).mean(axis=(1, 2)) / x.std(axis=(1, 2)))

    assert fineness(a) > 1.1 * fineness(b)
    assert set(EMBEDDED_PAIRS) >= {"grass2gravel"}
    with pytest.raises(ValueError, match="too small"):
        TexturePatchSource("grass.png", split="test", image_size=200, scale=0.5)


def test_paired_source_streams_are_independent_and_complete():
    a, b = get_domain_pair("grass2gravel", "test", image_size=16)
    small = PairedDomainsSource(_FirstN(a, 7), _FirstN(b, 10), seed=0)
    assert len(small) == 10 and small.sample_shape == (16, 16, 1)
    batch = small.get(np.arange(10))
    assert batch["x"].shape == batch["y"].shape == (10, 16, 16, 1)
    np.testing.assert_array_equal(batch["x"][7], a.get(np.array([0]))["x"][0])  # 7 % 7
    # every B image once per pass over the indices, in a shuffled order
    b_ids = [
        int(np.argmax(np.all(b.get(np.arange(10))["x"] == y, axis=(1, 2, 3)))) for y in batch["y"]
    ]
    assert sorted(b_ids) == list(range(10)) and b_ids != list(range(10))
    with pytest.raises(ValueError, match="one size"):
        PairedDomainsSource(a, get_domain_pair("grass2gravel", "test", image_size=32)[1])


class _FirstN(Source):
    """The first n examples of a source (for exact stream checks)."""

    kind, num_classes = "image", 0

    def __init__(self, src: Source, n: int):
        self.src, self.n = src, n
        self.name, self.sample_shape = f"first{n}", src.sample_shape

    def __len__(self) -> int:
        return self.n

    def get(self, indices):
        return self.src.get(self._check_indices(indices))


def test_jitter_resizes_crops_and_flips():
    assert load_size(256) == 286 and load_size(32) == 36
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(16, 8, 8, 3)).astype(np.float32)
    flipped = jitter(x, np.random.default_rng(1), None, flip=True)
    is_flip = [np.array_equal(f, o[:, ::-1]) for f, o in zip(flipped, x, strict=True)]
    is_same = [np.array_equal(f, o) for f, o in zip(flipped, x, strict=True)]
    assert all(a or b for a, b in zip(is_flip, is_same, strict=True)) and 3 < sum(is_flip) < 13
    out = make_jitter(8)({"x": x, "y": x[::-1], "label": np.zeros(16)}, np.random.default_rng(2))
    assert out["x"].shape == out["y"].shape == x.shape and out["x"].dtype == np.float32
    assert -1 <= out["x"].min() and out["x"].max() <= 1
    assert not np.allclose(out["x"], x)
    again = make_jitter(8)({"x": x, "y": x[::-1]}, np.random.default_rng(2))
    np.testing.assert_array_equal(out["x"], again["x"])
    # a constant image stays constant (the resize interpolates, the crop stays inside)
    const = np.full((2, 8, 8, 1), 0.25, np.float32)
    np.testing.assert_allclose(jitter(const, rng, load_size(8), True), 0.25, atol=1e-6)


def _png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def test_folder_pair_reference_layout_and_clear_errors(tmp_path):
    rng = np.random.default_rng(0)
    for sub, n in (("trainA", 3), ("trainB", 2), ("testA", 1)):
        for i in range(n):
            _png(tmp_path / sub / f"{i}.png", rng.integers(0, 256, (20, 24, 3)))
    a, b = get_domain_pair(f"folder:{tmp_path}", "train", image_size=16)
    assert len(a) == 3 and len(b) == 2 and a.sample_shape == b.sample_shape == (16, 16, 3)
    with pytest.raises(ValueError, match="no testB/ subfolder.*testA, trainA, trainB"):
        get_domain_pair(str(tmp_path), "test", image_size=16)
    os.rename(tmp_path / "trainB", tmp_path / "other")
    with pytest.raises(ValueError, match="no trainB/ subfolder"):
        get_domain_pair(str(tmp_path), "train", image_size=16)
    with pytest.raises(ValueError, match="does not exist"):
        get_domain_pair(f"folder:{tmp_path}/missing")


def test_tfds_cycle_gan_pair_by_name():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        a, b = get_domain_pair("cycle_gan/horse2zebra", "train", image_size=16)
        ta, tb = get_domain_pair("cycle_gan/horse2zebra", "test", image_size=16)
        assert (a.split, b.split, ta.split, tb.split) == ("trainA", "trainB", "testA", "testB")
        batch = PairedDomainsSource(a, b).get(np.arange(3))
        assert batch["x"].shape == batch["y"].shape == (3, 16, 16, 3)
    with pytest.raises(ValueError, match="horse2zebra"):
        get_domain_pair("cycle_gan/no_such_config", image_size=16)


# ---------------------------------------------------- training: learning, resume, translate

TINY = [
    "--smoke",
    "--lr",
    "0.002",
    "--tensorboard",
    "false",
    "--n_epochs",
    "100",
    "--n_epochs_decay",
    "0",
    "--epoch_steps",
    "1",
    "--log_every",
    "1",
    "--eval_every",
    "10",
    "--sample_every",
    "20",
    "--checkpoint_every",
    "20",
]


def _train(workdir, steps: int):
    from experiments import cyclegan

    return cyclegan.main([*TINY, "--workdir", str(workdir), "--steps", str(steps)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 40-step tiny run on the embedded textures: (workdir, final state)."""
    wd = tmp_path_factory.mktemp("cg") / "run"
    return wd, _train(wd, 40)


def test_tiny_run_lowers_the_cycle_loss_and_writes_grids(trained):
    wd, state = trained
    rows = read_metrics(str(wd))
    cycle = [r["cycle"] for r in rows if "cycle" in r]
    assert len(cycle) == 40 and all(np.isfinite(cycle))
    assert np.mean(cycle[-10:]) < 0.9 * np.mean(cycle[:10])  # fresh batches every step
    evals = [r for r in rows if "eval/cycle_l1_A" in r]
    assert [r["step"] for r in evals] == [10, 20, 30, 40]
    for k in ("eval/cycle_l1_A", "eval/cycle_l1_B"):  # held-out reconstruction error
        assert evals[-1][k] < evals[0][k]
    with open(wd / "eval.json") as fh:
        assert json.load(fh)["step"] == 40
    grid = np.asarray(Image.open(wd / "samples" / "final.png"))
    # 2 rows of x | G(x) | F(G(x)) | y | F(y) | G(F(y)), 16x16 tiles enlarged 8x
    assert grid.shape[0] == 8 * (2 * 18 + 2) and grid.shape[1] == 8 * (6 * 18 + 2)
    assert int(state.step) == 40 and int(state.pool_x.count) == 4


def test_step_learns_to_reconstruct_a_fixed_batch(trained):
    from experiments import cyclegan
    from jaxgan.config import parse_config
    from jaxgan.train.cyclegan import SMOKE, build_cyclegan_task

    # same config as the fixture's run: the cached builders give the compiled step back
    config = parse_config(cyclegan.get_config(), [*TINY, "--steps", "40"], smoke=SMOKE)
    task = build_cyclegan_task(config)
    state = jax.jit(task.init_state)(KEY)
    batch = task.source.get(np.arange(2))
    cycle = []
    for _ in range(30):
        state, metrics = task.train_step(state, batch)
        cycle.append(float(metrics["cycle"]))
    assert np.mean(cycle[-5:]) < 0.6 * np.mean(cycle[:5])
    assert int(state.step) == 30 and int(state.pool_y.count) == 4


def test_resume_equals_an_uninterrupted_run(trained, tmp_path):
    wd, straight = trained
    _train(tmp_path / "r", 20)
    resumed = _train(tmp_path / "r", 40)  # restores step 20, runs 20 more
    assert int(resumed.step) == 40
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_translate_cli_on_a_folder(trained, tmp_path):
    from jaxgan.translate import main as translate_main
    from jaxgan.translate import translate_folder

    wd, state = trained
    rng = np.random.default_rng(0)
    _png(tmp_path / "in" / "a.png", rng.integers(0, 256, (16, 16, 3)))
    _png(tmp_path / "in" / "sub" / "b.jpg", rng.integers(0, 256, (40, 30)))
    written = translate_main([str(wd), str(tmp_path / "in"), str(tmp_path / "out")])
    assert sorted(os.path.relpath(p, tmp_path / "out") for p in written) == ["a.png", "sub/b.png"]
    # the output is G of the prepared (greyscale, 16x16) input
    x = np.asarray(Image.open(tmp_path / "in" / "a.png").convert("L"), np.float32) / 127.5 - 1
    g = state.g.apply_fn({"params": state.g.params}, x[None, ..., None], train=False)
    expect = np.round((np.clip(np.asarray(g)[0, ..., 0], -1, 1) + 1) * 127.5)
    got = np.asarray(Image.open(tmp_path / "out" / "a.png"), np.float32)
    assert got.shape == (16, 16) and np.abs(got - expect).max() <= 1
    back = translate_folder(str(wd), str(tmp_path / "in"), str(tmp_path / "back"), "BtoA", size=0)
    assert Image.open(back[1]).size == (28, 40)  # own size, cropped to multiples of 4
    with pytest.raises(FileNotFoundError, match="config.json"):
        translate_main([str(tmp_path), str(tmp_path / "in"), str(tmp_path / "o")])
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="holds no image files"):
        translate_folder(str(wd), str(tmp_path / "empty"), str(tmp_path / "o"))
