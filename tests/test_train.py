"""The unconditional family end to end: step semantics, resume, NaN guard, bad input."""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.checkpoint import Checkpointer, CheckpointMismatchError
from jaxgan.config import parse_config
from jaxgan.train.gan_step import StepConfig, make_train_step
from jaxgan.train.logging import read_metrics
from jaxgan.train.loop import NonFiniteError, train_and_evaluate
from jaxgan.train.unconditional import SMOKE, base_config, build_gan_task


def tiny_points_config(workdir: str = "", **over) -> object:
    c = base_config()
    c.dataset = "ring8"
    c.model.name = "mlp"
    c.model.hidden = (16, 16)
    c.latent_dim = 4
    c.batch_size = 16
    c.steps = 6
    c.log_every = 1
    c.sample_every = 3
    c.checkpoint_every = 2
    c.eval_samples = 100
    c.tensorboard = False
    c.quiet = True
    c.workdir = workdir
    for k, v in over.items():
        setattr(c, k, v)
    return c


def _params(state):
    return jax.tree.map(np.asarray, {"g": state.g.params, "d": state.d.params})


def _assert_trees_equal(a, b):
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(flat_a, flat_b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_step_updates_both_networks_and_reports_metrics():
    cfg = tiny_points_config()
    task = build_gan_task(cfg)
    state = task.init_state(jax.random.PRNGKey(0))
    before = _params(state)
    batch = {"x": jnp.asarray(task.source.get(np.arange(16))["x"])}
    state2, m = task.train_step(state, batch)
    assert int(state2.step) == 1
    for k in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
        assert np.isfinite(float(m[k])), k
    after = _params(state2)
    for net in ("g", "d"):
        diffs = [
            np.abs(x - y).max()
            for x, y in zip(jax.tree.leaves(before[net]), jax.tree.leaves(after[net]), strict=True)
        ]
        assert max(diffs) > 0, f"{net} did not change"
    # D(x), D(G(z)) are reported as probabilities for the BCE losses.
    assert 0.0 < float(m["d_real"]) < 1.0 and 0.0 < float(m["d_fake"]) < 1.0


def test_n_critic_and_clipping_and_penalty_are_bound_statically():
    cfg = tiny_points_config(loss="wasserstein", n_critic=3, clip_value=0.01, optimizer="rmsprop")
    task = build_gan_task(cfg)
    assert task.examples_per_step == 3 * cfg.batch_size
    state = task.init_state(jax.random.PRNGKey(1))
    batch = {"x": jnp.asarray(task.source.get(np.arange(48))["x"])}
    state, m = task.train_step(state, batch)
    for leaf in jax.tree.leaves(state.d.params):
        assert float(jnp.max(jnp.abs(leaf))) <= 0.01 + 1e-7
    # The WGAN critic loss is mean(fake) - mean(real) of the last critic update.
    np.testing.assert_allclose(
        float(m["d_adv_loss"]), float(m["d_fake"] - m["d_real"]), rtol=1e-5, atol=1e-6
    )

    gp = tiny_points_config(loss="wasserstein", n_critic=2, gp_weight=10.0)
    task = build_gan_task(gp)
    state = task.init_state(jax.random.PRNGKey(2))
    state, m = task.train_step(state, {"x": jnp.asarray(task.source.get(np.arange(32))["x"])})
    assert float(m["gp"]) >= 0 and np.isfinite(float(m["gp"]))
    np.testing.assert_allclose(
        float(m["d_loss"]), float(m["d_adv_loss"] + 10.0 * m["gp"]), rtol=1e-5, atol=1e-6
    )


def test_n_critic_one_equals_manual_two_phase_update():
    """The fused step (one G forward, vjp) equals a plain D update then a plain G update."""
    from jaxgan import losses

    cfg = tiny_points_config()
    task = build_gan_task(cfg)
    state = task.init_state(jax.random.PRNGKey(3))
    x = jnp.asarray(task.source.get(np.arange(16))["x"])
    new, _ = make_train_step(StepConfig(latent_dim=4), jit=False)(state, {"x": x})

    keys = jax.random.split(jax.random.fold_in(state.key, state.step), 3)
    z = jax.random.normal(keys[0], (16, 4))
    g_apply = lambda p: state.g.apply_fn({"params": p}, z, train=True)
    d_apply = lambda p, v: state.d.apply_fn({"params": p}, v, train=True)
    fake = g_apply(state.g.params)
    d_grads = jax.grad(
        lambda p: losses.minimax_discriminator_loss(d_apply(p, x), d_apply(p, fake))
    )(state.d.params)
    d = state.d.apply_gradients(grads=d_grads)
    g_grads = jax.grad(
        lambda p: losses.non_saturating_generator_loss(d_apply(d.params, g_apply(p)))
    )(state.g.params)
    g = state.g.apply_gradients(grads=g_grads)
    for a, b in zip(
        jax.tree.leaves((g.params, d.params)),
        jax.tree.leaves((new.g.params, new.d.params)),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_resume_gives_the_same_parameters(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("jaxgan.host.reuse_freed_memory_on_cpu", lambda: calls.append(1))
    full = train_and_evaluate(tiny_points_config(str(tmp_path / "full")))
    assert len(calls) == 1  # config reuse_host_memory, on by default
    half = tiny_points_config(
        str(tmp_path / "half"), steps=3, checkpoint_every=3, reuse_host_memory=False
    )
    train_and_evaluate(half)
    assert len(calls) == 1  # turned off: not called
    resumed = train_and_evaluate(tiny_points_config(str(tmp_path / "half")))
    assert int(resumed.step) == int(full.step) == 6
    _assert_trees_equal(_params(full), _params(resumed))
    _assert_trees_equal(np.asarray(full.key), np.asarray(resumed.key))
    rows = read_metrics(str(tmp_path / "full"))
    assert [r["step"] for r in rows if "g_loss" in r] == [1, 2, 3, 4, 5, 6]
    assert any("eval/modes" in r for r in rows)
    for name in ("config.json", "eval.json", "samples/final.png", "samples/step_000003.png"):
        assert os.path.exists(tmp_path / "full" / name), name


def test_resume_after_a_save_killed_midway_uses_last_complete_checkpoint(tmp_path):
    wd = str(tmp_path / "run")
    train_and_evaluate(tiny_points_config(wd, steps=4, checkpoint_every=2))
    ckdir = os.path.join(wd, "checkpoints")
    assert sorted(int(s) for s in os.listdir(ckdir) if s.isdigit()) == [2, 4]
    # A process killed while writing step 6 leaves orbax's temporary directory behind,
    # half written: it must be ignored.
    partial = os.path.join(ckdir, "6.orbax-checkpoint-tmp-1234")
    shutil.copytree(os.path.join(ckdir, "4"), partial)
    for root, _, files in os.walk(partial):
        for f in files[: len(files) // 2 + 1]:
            os.remove(os.path.join(root, f))
    task = build_gan_task(tiny_points_config(wd))
    assert Checkpointer(wd, task.meta).latest_step() == 4
    resumed = train_and_evaluate(tiny_points_config(wd, steps=6))
    full = train_and_evaluate(tiny_points_config(str(tmp_path / "full"), steps=6))
    _assert_trees_equal(_params(full), _params(resumed))


def test_nonfinite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_points_config(str(tmp_path / "nan"), steps=10, checkpoint_every=2, log_every=5)

    def build(config):
        task = build_gan_task(config)
        inner = task.train_step

        def poisoned(state, batch):
            state, m = inner(state, batch)
            m = dict(m, g_loss=jnp.where(state.step == 3, jnp.nan, m["g_loss"]))
            return state, m

        task.train_step = poisoned
        return task

    with pytest.raises(NonFiniteError, match=r"step 3: non-finite g_loss=nan.*step 2"):
        train_and_evaluate(cfg, build_task=build)
    steps = sorted(int(s) for s in os.listdir(tmp_path / "nan" / "checkpoints") if s.isdigit())
    assert steps == [2]


def test_bad_input_is_refused_before_compiling(tmp_path):
    with pytest.raises(ValueError, match="no_such_dataset_xyz"):
        build_gan_task(tiny_points_config(dataset="no_such_dataset_xyz"))
    with pytest.raises(ValueError, match="mlp"):
        cfg = tiny_points_config()
        cfg.model.name = "dcgan"
        build_gan_task(cfg)
    with pytest.raises(ValueError, match="BatchNorm"):
        cfg = tiny_points_config(dataset="digits", gp_weight=10.0)
        cfg.model.name = "dcgan"
        build_gan_task(cfg)
    # A workdir holding a checkpoint of another model.
    wd = str(tmp_path / "other")
    train_and_evaluate(tiny_points_config(wd, steps=2))
    cfg = tiny_points_config(wd, steps=4)
    cfg.model.hidden = (8, 8)
    with pytest.raises(CheckpointMismatchError, match="another model"):
        train_and_evaluate(cfg)


def test_checkpoint_of_another_parameter_layout_is_refused(tmp_path):
    """Same model description, other tree (e.g. ESRGAN's blocks before they were stacked):
    a clear error, not a silently mixed state."""
    meta = {"family": "esrgan", "model": {"n_blocks": 2}}
    old = {"params": {"block0": {"w": jnp.ones(3)}, "block1": {"w": jnp.ones(3)}}}
    ckpt = Checkpointer(str(tmp_path), meta)
    ckpt.save(1, old)
    ckpt.close()
    new = {"params": {"blocks": {"w": jnp.ones((2, 3))}}}
    ckpt = Checkpointer(str(tmp_path), meta)
    with pytest.raises(CheckpointMismatchError, match="does not fit this model's state"):
        ckpt.restore(new)
    ckpt.close()


def test_config_overrides_and_smoke():
    cfg = parse_config(
        base_config(),
        ["--smoke", "--steps", "7", "--model.hidden", "3,5", "--g_lr=0.5", "--download", "true"],
        smoke=SMOKE,
    )
    assert cfg.steps == 7 and cfg.batch_size == SMOKE["batch_size"]
    assert tuple(cfg.model.hidden) == (3, 5) and cfg.g_lr == 0.5 and cfg.download is True
    with pytest.raises(SystemExit):
        parse_config(base_config(), ["--steps", "many"])


def test_tiny_gan_learns_the_ring(tmp_path):
    """A small MLP GAN moves from no mode to all 8 modes of the ring in 2,000 steps."""
    from jaxgan.metrics import evaluate_samples

    cfg = tiny_points_config(
        str(tmp_path / "learn"),
        steps=2000,
        batch_size=128,
        latent_dim=4,
        g_lr=1e-3,
        d_lr=1e-3,
        log_every=500,
        sample_every=0,
        checkpoint_every=2000,
    )
    cfg.model.hidden = (128, 128)
    task = build_gan_task(cfg)
    init = task.init_state(jax.random.PRNGKey(cfg.seed))
    z = jax.random.normal(jax.random.PRNGKey(5), (2500, 4))
    before = evaluate_samples("ring8", np.asarray(init.g.apply_fn(init.g.variables(), z)))
    train_and_evaluate(cfg)
    with open(tmp_path / "learn" / "eval.json") as fh:
        after = json.load(fh)
    assert before["high_quality"] < 0.02 and before["modes"] <= 2, before
    assert after["high_quality"] > 0.1, after
    assert after["modes"] >= 7, after
