"""The conditional family: conditional G/D, InfoGAN's Q head and MI term in the shared step,
end-to-end runs (grid, scores, resume), the code-to-class score and bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import losses
from jaxgan.nets.conditional import (
    CodeConditionedGenerator,
    DCGANTrunk,
    InfoGANDiscriminator,
    LabelConcatDiscriminator,
    LabelConditionedGenerator,
    MLPTrunk,
    ProjectionDiscriminator,
)
from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.state import step_key
from jaxgan.train.conditional import (
    build_cgan_task,
    build_infogan_task,
    cgan_base_config,
    continuous_grid_path,
    infogan_base_config,
    majority_assignment_accuracy,
)
from jaxgan.train.logging import read_metrics
from jaxgan.train.loop import train_and_evaluate

# RBG keys initialise in a fraction of the time of threefry keys on this CPU (test_nets).
KEY = jax.random.key(0, impl="rbg")


def _data(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)


def _tiny(config, workdir: str = "", **over):
    """A few-second setting: 8x8 digits, tiny networks, a handful of steps."""
    config.image_size = 8
    config.model.base_features = 4
    config.model.hidden = (32, 32)
    config.latent_dim = 8
    config.batch_size = 8
    config.steps = 4
    config.log_every = 1
    config.sample_every = 2
    config.checkpoint_every = 2
    config.eval_samples = 60
    config.grid_columns = 3
    config.tensorboard = False
    config.quiet = True
    config.workdir = workdir
    for k, v in over.items():
        target = config
        *path, leaf = k.split(".")
        for p in path:
            target = getattr(target, p)
        setattr(target, leaf, v)
    return config


def _params(state):
    return jax.tree.map(np.asarray, {"g": state.g.params, "d": state.d.params})


def _assert_trees_equal(a, b):
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b, strict=True):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- networks


def _numpy_init(module, *args) -> dict:
    """Variables shaped like ``module.init``'s, drawn by numpy: N(0, 0.1) weights, BatchNorm
    at identity. Only ``jax.eval_shape`` runs the module (compiling initialisers eagerly
    costs seconds on a busy 2-core CPU; the real initialisers are those of flax)."""
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = path[-1].key
        if name in ("var", "scale"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name == "mean":
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(0.1 * rng.standard_normal(leaf.shape), leaf.dtype)

    shapes = jax.eval_shape(lambda: module.init(KEY, *args, train=False))
    return jax.tree_util.tree_map_with_path(fill, shapes)


def _apply(module, variables, *args):
    """``module.apply`` in eval mode, compiled once."""
    return jax.jit(lambda v, *a: module.apply(v, *a, train=False))(variables, *args)


def _twice(a):
    return jnp.concatenate([a, a])


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_conditional_generators_shapes_and_labels_matter(kind):
    z = _data(0, (6, 5))
    labels = jnp.array([0, 1, 2, 0, 1, 2], jnp.int32)
    if kind == "mlp":
        base = MLPGenerator(out_shape=(8, 8, 1), hidden=(16,))
    else:
        base = DCGANGenerator(resolution=8, channels=1, base_features=4)
    for embed_dim in (0, 3):
        g = LabelConditionedGenerator(base, num_classes=3, embed_dim=embed_dim)
        v = _numpy_init(g, z, labels)
        if embed_dim:
            assert v["params"]["label_embed"]["embedding"].shape == (3, 3)
        # Same noise, the labels, then the next labels: another sample each time.
        out = _apply(g, v, _twice(z), jnp.concatenate([labels, (labels + 1) % 3]))
        assert out.shape == (12, 8, 8, 1) and float(jnp.max(jnp.abs(out))) <= 1.0
        assert float(jnp.abs(out[:6] - out[6:]).reshape(6, -1).max(1).min()) > 1e-4
    with pytest.raises(ValueError, match="labels must have shape"):
        jax.eval_shape(lambda v: g.apply(v, z, labels[:3], train=False), v)
    with pytest.raises(ValueError, match="integers"):
        jax.eval_shape(lambda v: g.apply(v, z, labels * 1.0, train=False), v)


def test_unlabelled_call_means_every_class_in_turn():
    """``G(z)`` works like an unconditional generator (e.g. for ``jaxgan.sample``)."""
    g = LabelConditionedGenerator(MLPGenerator(out_shape=(4,), hidden=(8,)), num_classes=3)
    z = _data(0, (6, 5))
    v = _numpy_init(g, z, jnp.zeros((6,), jnp.int32))
    both = jax.jit(lambda v: (g.apply(v, z, train=False), g.apply(v, z, jnp.arange(6) % 3)))
    a, b = both(v)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_conditional_discriminators_shapes_and_labels_matter():
    x = _data(1, (6, 8, 8, 1))
    labels = jnp.array([0, 1, 2, 3, 0, 1], jnp.int32)
    nets = {
        "mlp concat": LabelConcatDiscriminator(MLPDiscriminator((16,)), 4, "flat"),
        "mlp concat embed": LabelConcatDiscriminator(MLPDiscriminator((16,)), 4, "flat", 3),
        "dcgan maps": LabelConcatDiscriminator(
            DCGANDiscriminator(8, 1 + 4, base_features=4, norm="batch"), 4, "maps"
        ),
        "dcgan projection": ProjectionDiscriminator(DCGANTrunk(8, 1, 4, norm="batch"), 4),
        "mlp projection": ProjectionDiscriminator(MLPTrunk((16,)), 4),
    }
    for name, d in nets.items():
        v = _numpy_init(d, x, labels)
        out = _apply(d, v, _twice(x), jnp.concatenate([labels, (labels + 1) % 4]))
        assert out.shape == (12,), name
        assert float(jnp.min(jnp.abs(out[:6] - out[6:]))) > 1e-6, name
    # The label maps reach the first convolution as 4 extra channels.
    maps = jax.eval_shape(lambda: nets["dcgan maps"].init(KEY, x, labels, train=False))
    assert maps["params"]["discriminator"]["Conv_0"]["kernel"].shape == (4, 4, 5, 4)
    with pytest.raises(ValueError, match="one-hot maps"):
        bad = LabelConcatDiscriminator(DCGANDiscriminator(8, 5, 4), 4, "maps", embed_dim=3)
        jax.eval_shape(lambda: bad.init(KEY, x, labels, train=False))


def test_dcgan_trunk_is_the_dcgan_discriminator_without_its_last_layer():
    """DCGANTrunk + a Dense on its flattened 4x4 features == DCGANDiscriminator."""
    x = _data(2, (3, 16, 16, 1))
    disc = DCGANDiscriminator(16, 1, base_features=4, norm="batch")
    trunk = DCGANTrunk(16, 1, base_features=4, norm="batch")
    v = _numpy_init(disc, x)
    p = dict(v["params"])
    last = p.pop("Conv_2")
    tv = {"params": p, "batch_stats": v["batch_stats"]}
    shapes = jax.eval_shape(lambda: trunk.init(KEY, x, train=False))
    assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, tv)

    @jax.jit
    def both(v, tv):
        feats = trunk.apply(tv, x, train=False)
        logits = feats.reshape(3, -1) @ last["kernel"].reshape(-1, 1) + last["bias"]
        return feats, logits[:, 0], disc.apply(v, x, train=False)

    feats, ours, theirs = both(v, tv)
    assert feats.shape == (3, 4, 4, 8)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6)


def test_code_conditioned_generator_and_q_head_shapes():
    z = _data(3, (4, 5))
    cat = jnp.array([[0, 2], [1, 0], [2, 1], [0, 0]], jnp.int32)
    cont = _data(4, (4, 3))
    g = CodeConditionedGenerator(
        MLPGenerator((8, 8, 1), hidden=(16,)),
        num_categorical=2,
        categorical_values=3,
        num_continuous=3,
    )
    v = _numpy_init(g, z, cat, cont)
    # Latent of the wrapped generator: 5 noise + 2 one-hot codes of 3 + 3 continuous.
    assert v["params"]["generator"]["Dense_0"]["kernel"].shape == (5 + 6 + 3, 16)
    out = _apply(
        g,
        v,
        jnp.concatenate([z, z, z]),
        jnp.concatenate([cat, cat, (cat + 1) % 3]),
        jnp.concatenate([cont, -cont, cont]),
    )
    assert out.shape == (12, 8, 8, 1)
    assert float(jnp.abs(out[4:8] - out[:4]).max()) > 1e-4  # continuous codes matter
    assert float(jnp.abs(out[8:] - out[:4]).max()) > 1e-4  # categorical codes matter
    with pytest.raises(ValueError, match="codes must be"):
        jax.eval_shape(lambda v: g.apply(v, z, cat[:, :1], cont, train=False), v)

    x = _data(5, (4, 16, 16, 1))
    for trunk, learn_std in ((DCGANTrunk(16, 1, base_features=4), True), (MLPTrunk((16,)), False)):
        d = InfoGANDiscriminator(
            trunk,
            num_categorical=2,
            categorical_values=3,
            num_continuous=3,
            learn_std=learn_std,
            q_hidden=8,
            q_norm=learn_std,
        )
        v = _numpy_init(d, x)
        logits, (cat_logits, mean, log_std) = _apply(d, v, x)
        assert logits.shape == (4,) and cat_logits.shape == (4, 2, 3)
        assert mean.shape == (4, 3)
        assert (log_std is None) == (not learn_std)
        if learn_std:
            assert log_std.shape == (4, 3)
            assert float(log_std.min()) >= d.min_log_std
            assert "q_norm" in v["batch_stats"]
        # One trunk, its parameters once, next to the two heads.
        heads = {"adversarial", "q_hidden", "q_out"} | ({"q_norm"} if learn_std else set())
        assert set(v["params"]) == {"trunk"} | heads
    only_cont = InfoGANDiscriminator(MLPTrunk((16,)), num_categorical=0, num_continuous=2)
    out = jax.eval_shape(lambda: only_cont.init_with_output(KEY, x, train=False)[0])
    _, (no_cat, mean, _) = out
    assert no_cat is None and mean.shape == (4, 2)


# --------------------------------------------------------------------------- scores


def test_majority_assignment_accuracy_hand_example():
    # code 0: classes 3, 3, 5 -> 3 (2 right); code 1: 7, 7 -> 7 (2 right);
    # code 2: 3, 1, 1, 1 -> 1 (3 right); code 3 never occurs -> -1.
    codes = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    classes = [3, 3, 5, 7, 7, 3, 1, 1, 1]
    acc, assignment = majority_assignment_accuracy(codes, classes, num_codes=4)
    assert acc == pytest.approx(7 / 9)
    np.testing.assert_array_equal(assignment, [3, 7, 1, -1])
    # Ties go to the smaller class; two codes may share a class.
    acc, assignment = majority_assignment_accuracy([0, 0, 1], [4, 2, 2])
    np.testing.assert_array_equal(assignment, [2, 2])
    assert acc == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="equal length"):
        majority_assignment_accuracy([0, 1], [1])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        majority_assignment_accuracy([0, 2], [1, 1], num_codes=2)


# --------------------------------------------------------------------------- the step


def test_infogan_runs_and_its_step_adds_the_mi_loss_to_d_q_and_g(tmp_path):
    """InfoGAN end to end (grids, cat_code_accuracy, digits_fid, info_loss logged); then one
    more step: its info_loss is the MI bound of Q on the step's own fakes, and it trains Q
    and G."""
    wd = tmp_path / "info"
    cfg = _tiny(infogan_base_config(), str(wd), **{"model.name": "mlp", "info.lambda_cont": 0.5})
    task = build_infogan_task(cfg)
    state = train_and_evaluate(cfg, build_task=lambda c: task)
    assert int(state.step) == 4
    for name in ("final.png", "step_000002.png"):
        cat_grid = Image.open(wd / "samples" / name)
        # 10 rows (code values) x 3 columns of 8x8 images, enlarged 8x, padding 2.
        assert cat_grid.size == ((3 * 10 + 2) * 8, (10 * 10 + 2) * 8)
        for i in range(2):
            path = continuous_grid_path(str(wd / "samples" / name), i)
            assert Image.open(path).size == cat_grid.size
    with open(wd / "eval.json") as fh:
        scores = json.load(fh)
    assert 0.1 <= scores["cat_code_accuracy"] <= 1.0
    assert 1 <= scores["cat_code_classes"] <= 10
    assert np.isfinite(scores["digits_fid"])
    assert [r["step"] for r in read_metrics(str(wd)) if "info_loss" in r] == [1, 2, 3, 4]

    @jax.jit
    def expected_info_loss(state):
        """The key layout of gan_step (n_critic=1) and of the InfoGAN conditioning."""
        keys = jax.random.split(step_key(state.key, state.step), 3)
        kz, kc, ku = jax.random.split(keys[0], 3)
        z = jax.random.normal(kz, (8, 8))
        cat = jax.random.randint(kc, (8, 1), 0, 10, dtype=jnp.int32)
        cont = jax.random.uniform(ku, (8, 2), minval=-1.0, maxval=1.0)
        fake = state.g.apply_fn(state.g.variables(), z, cat, cont, train=True)
        _, (cat_logits, mean, log_std) = state.d.apply_fn(state.d.variables(), fake, train=True)
        assert log_std is None  # the fixed-variance form by default
        return losses.categorical_code_loss(cat_logits, cat) + 0.5 * losses.continuous_code_loss(
            mean, cont
        )

    expected = float(expected_info_loss(state))
    before = _params(state)  # the step donates its input state
    batch = {k: jnp.asarray(v) for k, v in task.source.get(np.arange(8)).items()}
    new, m = task.train_step(state, batch)
    np.testing.assert_allclose(float(m["info_loss"]), expected, rtol=1e-4)
    np.testing.assert_allclose(
        float(m["d_loss"]), float(m["d_adv_loss"] + m["info_loss"]), rtol=1e-5
    )
    # Q's head enters only the MI term: it moved, so the term's gradient reached it.
    for layer in ("q_hidden", "q_out"):
        moved = np.abs(np.asarray(new.d.params[layer]["kernel"]) - before["d"][layer]["kernel"])
        assert moved.max() > 0, layer
    # G minimises the MI term too: its loss is the adversarial one plus the (positive) MI
    # term of the updated Q, near a 10-way cross-entropy this early.
    assert float(m["g_loss"] - m["g_adv_loss"]) > 1.0


def test_cgan_runs_writes_a_row_per_class_and_resumes_exactly(tmp_path):
    """cGAN (DCGAN-style, label maps) end to end; 2 + 2 steps == 4 steps."""
    cfg = _tiny(cgan_base_config(), str(tmp_path / "full"))
    task = build_cgan_task(cfg)  # one compiled step for the three runs
    full = train_and_evaluate(cfg, build_task=lambda c: task)
    half = _tiny(cgan_base_config(), str(tmp_path / "half"), steps=2)
    train_and_evaluate(half, build_task=lambda c: task)
    resumed = train_and_evaluate(
        _tiny(cgan_base_config(), str(tmp_path / "half")), build_task=lambda c: task
    )
    assert int(resumed.step) == int(full.step) == 4
    _assert_trees_equal(_params(full), _params(resumed))

    grid = Image.open(tmp_path / "full" / "samples" / "final.png")
    assert grid.size == ((3 * 10 + 2) * 8, (10 * 10 + 2) * 8)  # 10 classes x 3 columns
    with open(tmp_path / "full" / "eval.json") as fh:
        scores = json.load(fh)
    assert 0.0 <= scores["class_accuracy"] <= 1.0 and np.isfinite(scores["digits_fid"])
    assert any("eval/class_accuracy" in r for r in read_metrics(str(tmp_path / "full")))
    with open(tmp_path / "full" / "config.json") as fh:
        assert json.load(fh)["family"] == "cgan"


def test_cgan_learns_which_mode_each_label_is(tmp_path):
    """On the ring of 8 Gaussians (label = mode), class k goes to mode k (from 1/8 to
    all samples within 300 steps; about 200 suffice)."""
    cfg = _tiny(
        cgan_base_config(),
        str(tmp_path / "ring"),
        dataset="ring8",
        steps=300,
        batch_size=128,
        g_lr=1e-3,
        d_lr=1e-3,
        log_every=300,
        sample_every=0,
        checkpoint_every=300,
        **{"model.name": "mlp", "model.hidden": (64, 64)},
    )
    task = build_cgan_task(cfg)
    before = task.evaluate(task.init_state(jax.random.PRNGKey(0)))
    train_and_evaluate(cfg, build_task=lambda c: task)
    with open(tmp_path / "ring" / "eval.json") as fh:
        after = json.load(fh)
    assert before["class_accuracy"] < 0.4, before
    assert after["class_accuracy"] > 0.9, after


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_before_compiling(tmp_path):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    cfg = _tiny(cgan_base_config(), dataset=f"folder:{folder}")
    with pytest.raises(ValueError, match=r"needs class labels.*num_classes == 0"):
        build_cgan_task(cfg)
    with pytest.raises(ValueError, match="unknown conditioning"):
        build_cgan_task(_tiny(cgan_base_config(), **{"model.conditioning": "film"}))
    with pytest.raises(ValueError, match="BatchNorm"):
        build_cgan_task(_tiny(cgan_base_config(), gp_weight=10.0, loss="wasserstein"))
    with pytest.raises(ValueError, match="InfoGAN needs codes"):
        build_infogan_task(
            _tiny(infogan_base_config(), **{"info.num_categorical": 0, "info.num_continuous": 0})
        )
    with pytest.raises(ValueError, match="categorical_values"):
        build_infogan_task(_tiny(infogan_base_config(), **{"info.categorical_values": 1}))
