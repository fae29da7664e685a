"""Entry points for the many-hosts test (each run in its own subprocess).

``train WORKDIR OUT``: train a tiny DCGAN (BatchNorm in G) with ``parallel='sharding'``
through the ordinary loop. With ``JAXGAN_COORDINATOR_ADDRESS`` / ``JAXGAN_NUM_PROCESSES`` /
``JAXGAN_PROCESS_ID`` in the environment this is one process of several (each reads only its
slice of every batch); the script first checks that the global batch assembled from the
processes' slices is the global batch of the pipeline. Process 0 writes OUT (.npz): the final
parameters and the batch check.

``restore WORKDIR OUT``: on however many devices this process has, restore the latest
checkpoint of WORKDIR into a single-device state and write its parameters to OUT (.npz).

Both use plain SGD (see ``step_equivalence.py`` for why the comparison avoids Adam).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from jaxgan import parallel


def config(workdir: str):
    from jaxgan.train.unconditional import base_config

    c = base_config()
    c.dataset = "digits"
    c.image_size = 8
    c.model.name = "dcgan"
    c.model.base_features = 4
    c.latent_dim = 8
    c.batch_size = 16
    c.steps = 3
    c.log_every = 1
    c.sample_every = 0
    c.checkpoint_every = 2
    c.tensorboard = False
    c.quiet = True
    c.parallel = "sharding"
    c.workdir = workdir
    return c


def build_task(config):
    """The unconditional task with plain SGD and no evaluation (keeps the test short)."""
    import optax

    from jaxgan.train.unconditional import build_gan_task

    task = build_gan_task(config)
    tx = optax.sgd(0.05)

    def init_state(key):
        s = task.init_state(key)
        g = s.g.replace(tx=tx, opt_state=tx.init(s.g.params))
        return s.replace(g=g, d=s.d.replace(tx=tx, opt_state=tx.init(s.d.params)))

    return dataclasses.replace(task, init_state=init_state, evaluate=None)


def flat_params(state) -> dict[str, np.ndarray]:
    import jax

    tree = {"g": state.g.params, "d": state.d.params, "g_bs": state.g.batch_stats}
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree.leaves_with_path(tree)
    }


def check_global_batch(c) -> float:
    """Largest difference between the assembled global batch of step 0 and the pipeline's."""
    import jax
    from jax.experimental import multihost_utils

    from jaxgan.data import batch_iterator

    task = build_task(c)
    n = task.examples_per_step
    local = batch_iterator(
        task.source,
        n,
        seed=c.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        prefetch=0,
    ).make_batch(0)
    glob = parallel.global_batch(local, parallel.make_mesh())
    full = multihost_utils.process_allgather(glob["x"], tiled=True)
    want = batch_iterator(task.source, n, seed=c.seed, prefetch=0).make_batch(0)["x"]
    return float(np.max(np.abs(np.asarray(full) - want)))


def main() -> None:
    mode, workdir, out = sys.argv[1:4]
    started = parallel.maybe_initialize_distributed()
    import jax

    c = config(workdir)
    if mode == "train":
        batch_diff = check_global_batch(c)
        from jaxgan.train.loop import train_and_evaluate

        state = train_and_evaluate(c, workdir, build_task=build_task)
        if jax.process_index() == 0:
            np.savez(
                out,
                batch_diff=batch_diff,
                process_count=jax.process_count(),
                device_count=jax.device_count(),
                distributed=started,
                **flat_params(parallel.local_copy(state)),
            )
    elif mode == "restore":
        from jaxgan.checkpoint import Checkpointer

        task = build_task(c)
        ckpt = Checkpointer(workdir, task.meta)
        target = jax.jit(task.init_state)(jax.random.PRNGKey(99))
        state = ckpt.restore(target)
        ckpt.close()
        np.savez(
            out,
            step=int(state.step),
            device_count=jax.device_count(),
            single_device=all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(state)),
            **flat_params(state),
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
