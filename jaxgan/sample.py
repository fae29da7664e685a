"""Write new samples from a trained run: ``python -m jaxgan.sample WORKDIR [--num 64]``.

Reads ``WORKDIR/config.json``, restores the newest checkpoint and writes a PNG grid (or a
scatter plot for 2D data) of fresh samples, and optionally the raw samples as ``.npy``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from jaxgan.checkpoint import Checkpointer
from jaxgan.images import save_grid, save_scatter


def load_run(workdir: str):
    """(config, task, state) of the newest checkpoint in ``workdir``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} has no config.json: is it a jaxgan workdir?")
    with open(path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    from jaxgan.train.registry import build_task

    task = build_task(config)
    ckpt = Checkpointer(workdir, task.meta)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
    target = jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
    state = ckpt.restore(target)
    ckpt.close()
    return config, task, state


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m jaxgan.sample", description=__doc__)
    p.add_argument("workdir")
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None, help="PNG path (default WORKDIR/samples/sample_SEED.png)")
    p.add_argument("--npy", default=None, help="also save the raw samples here")
    args = p.parse_args(argv)
    from jaxgan.host import reuse_freed_memory_on_cpu

    # Before JAX computes: a CycleGAN 256x256 generator forward 1.50 -> 0.72 s on 2 cores.
    reuse_freed_memory_on_cpu()
    config, task, state = load_run(args.workdir)
    z = jax.random.normal(jax.random.PRNGKey(args.seed), (args.num, config.latent_dim))
    x = np.asarray(state.g.apply_fn(state.g.variables(), z, train=False))
    out = args.out or os.path.join(args.workdir, "samples", f"sample_{args.seed}.png")
    if x.ndim == 2:
        save_scatter(x, out)
    else:
        save_grid(x, out)
    if args.npy:
        np.save(args.npy, x)
    print(f"wrote {args.num} samples of step {int(state.step)} to {out}")
    return out


if __name__ == "__main__":
    main()
