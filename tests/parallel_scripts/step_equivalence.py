"""Train steps on N simulated devices against one device, both parallel paths.

Run in a subprocess (the device count is fixed when JAX starts)::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python step_equivalence.py OUT.json

For each setting (DCGAN with BatchNorm in G and D + non-saturating loss; WGAN-GP with an MLP
critic and two critic updates per step; RaLSGAN with MLPs) it trains a few steps on one
device, under ``jax.pmap`` and under ``jax.jit`` with shardings, from the same state on the
pipeline's global batches, and writes the largest differences of parameters, BatchNorm
statistics and metrics to OUT.json. Then the training loop runs RaLSGAN with
``parallel='pmap'`` (2 steps, then resumed to 4 from its checkpoint), to be compared with the
one-device steps; and batches that do not divide over the devices are tried.

The networks are trained with plain SGD here: Adam's first update is about
``lr * g / (|g| + eps)``, so a gradient that is zero up to rounding (its sign decided by the
order of a sum) moves a weight by up to ``lr`` either way on different devices counts. SGD
keeps the comparison a test of the gradients, losses and statistics, which are what the
parallel paths compute; the optimizer's update is the same code on every path.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import jax
import numpy as np
import optax

from jaxgan import parallel
from jaxgan.data import batch_iterator
from jaxgan.train.unconditional import base_config, build_gan_task

STEPS = {"dcgan": 2, "wgan_gp": 2, "ralsgan": 4}


def config(name: str, parallel_kind: str):
    c = base_config()
    c.parallel = parallel_kind
    c.batch_size = 16
    c.latent_dim = 8
    c.tensorboard = False
    c.quiet = True
    c.dataset = "ring8"
    c.model.name = "mlp"
    c.model.hidden = (16, 16)
    c.loss = "ralsgan"
    if name == "wgan_gp":
        c.loss = "wasserstein"
        c.gp_weight = 10.0
        c.n_critic = 2
        c.b1, c.b2 = 0.0, 0.9
    if name == "dcgan":
        c.dataset = "digits"
        c.image_size = 16  # two stages: BatchNorm in the generator and the discriminator
        c.model.name = "dcgan"
        c.model.base_features = 4
        c.loss = "non_saturating"
    return c


def max_diff(a, b, relative: bool = False) -> float:
    """Largest |a - b| over the leaves (divided by max(1, |a|) if ``relative``)."""
    la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
    assert len(la) == len(lb) and la, (len(la), len(lb))
    out = 0.0
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = np.maximum(1.0, np.abs(x)) if relative else 1.0
        out = max(out, float(np.max(np.abs(x - y) / scale)))
    return out


def with_sgd(task, lr: float = 0.02):
    """The task with plain SGD for both networks (see the module docstring)."""
    tx = optax.sgd(lr)

    def init_state(key):
        s = task.init_state(key)
        g = s.g.replace(tx=tx, opt_state=tx.init(s.g.params))
        return s.replace(g=g, d=s.d.replace(tx=tx, opt_state=tx.init(s.d.params)))

    return dataclasses.replace(task, init_state=init_state)


def run(name: str) -> tuple[dict, dict]:
    """(differences to one device per path, the one-device parameters)."""
    c = config(name, "none")
    one = with_sgd(build_gan_task(c))
    pm = with_sgd(build_gan_task(config(name, "pmap")))
    it = batch_iterator(one.source, one.examples_per_step, seed=c.seed, prefetch=0)
    batches = [it.make_batch(i) for i in range(STEPS[name])]
    # One initialisation (compiling init is as slow as compiling a step on CPU); the pmap
    # state differs only in its apply functions (networks with the BatchNorm axis name).
    first = jax.device_get(jax.jit(one.init_state)(jax.random.PRNGKey(c.seed)))
    pm_nets = jax.eval_shape(pm.init_state, jax.random.PRNGKey(c.seed))
    pm_first = first.replace(
        g=first.g.replace(apply_fn=pm_nets.g.apply_fn),
        d=first.d.replace(apply_fn=pm_nets.d.apply_fn),
    )
    mesh = parallel.make_mesh()
    paths = {
        "one": (parallel.DataParallel(one), jax.device_put(first)),
        "pmap": (parallel.PmapParallel(pm), parallel.replicate(pm_first)),
        "sharding": (
            parallel.ShardingParallel(one, mesh),
            jax.device_put(first, parallel.replicated_sharding(mesh)),
        ),
    }
    out: dict = {}
    for kind, (par, state) in paths.items():
        t0 = time.time()
        for b in batches:
            state, metrics = par.train_step(state, par.put_batch(b))
        state = par.final_state(state)
        out[kind] = {
            "params": {"g": state.g.params, "d": state.d.params},
            "stats": {"g": state.g.batch_stats, "d": state.d.batch_stats},
            "metrics": metrics,
            "step": int(state.step),
            "seconds": time.time() - t0,
        }
    res: dict = {"has_batch_stats": bool(jax.tree.leaves(out["one"]["stats"]))}
    for kind in ("pmap", "sharding"):
        res[kind] = {
            "params": max_diff(out["one"]["params"], out[kind]["params"]),
            "stats": max_diff(out["one"]["stats"], out[kind]["stats"])
            if res["has_batch_stats"]
            else 0.0,
            "metrics": max_diff(out["one"]["metrics"], out[kind]["metrics"], relative=True),
            "step": out[kind]["step"],
            "seconds": out[kind]["seconds"],
        }
    # the steps moved the parameters by much more than the tolerance
    res["moved"] = max_diff({"g": first.g.params, "d": first.d.params}, out["one"]["params"])
    res["metric_names"] = sorted(out["one"]["metrics"])
    return res, out["one"]["params"]


def loop(workdir: str, reference: dict) -> dict:
    """RaLSGAN through the training loop with parallel='pmap', resumed halfway."""
    from jaxgan.train.loop import train_and_evaluate

    def build(c):
        return dataclasses.replace(with_sgd(build_gan_task(c)), evaluate=None)

    c = config("ralsgan", "pmap")
    c.update(steps=2, log_every=1, sample_every=2, checkpoint_every=2)
    train_and_evaluate(c, workdir, build_task=build)
    c.steps = STEPS["ralsgan"]
    state = train_and_evaluate(c, workdir, build_task=build)  # resumes at step 2
    final = {"g": state.g.params, "d": state.d.params}
    with open(f"{workdir}/metrics.jsonl") as fh:
        logged = [json.loads(line)["step"] for line in fh]
    return {
        "params": max_diff(reference, final),
        "step": int(state.step),
        "logged_steps": logged,
        "single_device": all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(state)),
    }


def divisibility_errors() -> dict:
    errors: dict = {}
    c = config("dcgan", "none")
    c.batch_size = 12
    for kind in ("sharding", "pmap"):
        c.parallel = kind
        try:
            parallel.for_task(kind, build_gan_task(c))
            errors[kind] = None
        except ValueError as e:
            errors[kind] = str(e)
    try:
        parallel.split_for_pmap({"x": np.zeros((20, 2))}, 8, chunks=2)
        errors["split"] = None
    except ValueError as e:
        errors["split"] = str(e)
    return errors


def main() -> None:
    out_path = sys.argv[1]
    result: dict = {"devices": jax.device_count(), "errors": divisibility_errors()}
    for name in STEPS:
        result[name], params = run(name)
    result["loop"] = loop(out_path + ".run", params)  # params: RaLSGAN on one device
    with open(out_path, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
