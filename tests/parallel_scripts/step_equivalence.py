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

The networks are trained with plain SGD (see ``equivalence.py``, which also holds the
comparison itself).
"""

from __future__ import annotations

import dataclasses
import json
import sys

import jax
import numpy as np
from equivalence import compare, max_diff, with_sgd  # this folder (run as scripts)

from jaxgan import parallel
from jaxgan.data import batch_iterator
from jaxgan.train.unconditional import base_config, build_gan_task

STEPS = {"dcgan": 2, "wgan_gp": 2, "ralsgan": 4}
LR = 0.02  # plain SGD (see equivalence.py)


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


def run(name: str) -> tuple[dict, dict]:
    """(differences to one device per path, the one-device parameters)."""
    one = build_gan_task(config(name, "none"))
    return compare(one, build_gan_task(config(name, "pmap")), LR, STEPS[name])


def loop(workdir: str, reference: dict) -> dict:
    """RaLSGAN through the training loop with parallel='pmap', resumed halfway."""
    from jaxgan.train.loop import train_and_evaluate

    def build(c):
        return dataclasses.replace(with_sgd(build_gan_task(c), LR), evaluate=None)

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


def global_batch_images() -> dict:
    """Arrays of images of the whole global batch in the compiled sharded DCGAN step: there
    should be none, every device works on its own rows. The generator's noise is drawn
    from a replicated key; unless the step splits it (``parallel.split_rows``), every
    device runs the generator on the whole batch."""
    import re

    c = config("dcgan", "sharding")
    par = parallel.ShardingParallel(build_gan_task(c))
    state = par.init_state(jax.random.PRNGKey(0))
    task = par.task
    it = batch_iterator(
        task.source, task.examples_per_step, seed=0, prefetch=0, transform=task.transform
    )
    batch = par.put_batch(it.make_batch(0))
    text = par._step.lower(state, batch).compile().as_text()
    size = c.image_size
    per_device = c.batch_size // jax.device_count()
    found = {
        n: len(re.findall(rf"f32\[{n},{size},{size},\d+\]", text))
        for n in (c.batch_size, per_device)
    }
    return {"global": found[c.batch_size], "per_device": found[per_device]}


def main() -> None:
    out_path = sys.argv[1]
    result: dict = {"devices": jax.device_count(), "errors": divisibility_errors()}
    for name in STEPS:
        result[name], params = run(name)
    result["loop"] = loop(out_path + ".run", params)  # params: RaLSGAN on one device
    result["images"] = global_batch_images()
    with open(out_path, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
