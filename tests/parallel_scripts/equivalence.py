"""What the multi-device scripts share: train a task one device / pmap / sharding from one
state and measure the differences. Imported by the scripts of this folder (run as scripts,
so this folder is on ``sys.path``).

The networks are trained with plain SGD: Adam's first update is about
``lr * g / (|g| + eps)``, so a gradient that is zero up to rounding (its sign decided by the
order of a sum) moves a weight by up to ``lr`` either way on different device counts. SGD
keeps the comparison a test of the gradients, losses and statistics, which are what the
parallel paths compute; the optimizer's update is the same code on every path.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
import optax

from jaxgan import parallel
from jaxgan.data import batch_iterator
from jaxgan.train.loop import Task

NETS = ("g", "f", "d", "d_x", "d_y")  # the TrainStates a family's state may hold


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


def with_sgd(task: Task, lr: float) -> Task:
    """The task with plain SGD for every network of its state."""
    tx = optax.sgd(lr)

    def init_state(key):
        s = task.init_state(key)
        nets = {n: getattr(s, n) for n in NETS if getattr(s, n, None) is not None}
        return s.replace(
            **{n: ts.replace(tx=tx, opt_state=tx.init(ts.params)) for n, ts in nets.items()}
        )

    return dataclasses.replace(task, init_state=init_state)


def part(state, field: str) -> dict:
    return {
        n: getattr(getattr(state, n), field) for n in NETS if getattr(state, n, None) is not None
    }


def compare(one: Task, pm: Task, lr: float, steps: int = 2) -> tuple[dict, dict]:
    """Train ``one`` (parallel 'none') and ``pm`` (its 'pmap' twin) ``steps`` steps from the
    same state on the same global batches, on one device, under ``jax.pmap`` and under
    ``jax.jit`` with shardings: (differences to one device per path, the one-device
    parameters)."""
    assert pm.axis_name is not None and one.axis_name is None
    one, pm = with_sgd(one, lr), with_sgd(pm, lr)
    it = batch_iterator(
        one.source, one.examples_per_step, seed=0, prefetch=0, transform=one.transform
    )
    batches = [it.make_batch(i) for i in range(steps)]
    key = jax.random.PRNGKey(0)
    first = jax.device_get(jax.jit(one.init_state)(key))
    # The pmap state: the same arrays, with the pmap task's networks (BatchNorm axis) as
    # the static apply functions.
    pm_first = jax.tree.unflatten(
        jax.tree.structure(jax.eval_shape(pm.init_state, key)), jax.tree.leaves(first)
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
        state = jax.device_get(par.final_state(state))
        out[kind] = {
            "params": part(state, "params"),
            "stats": part(state, "batch_stats"),
            "pools": [getattr(state, p) for p in ("pool_x", "pool_y") if hasattr(state, p)],
            "metrics": metrics,
            "step": int(state.step),
            "seconds": time.time() - t0,
        }
    ref = out["one"]
    res: dict = {
        "has_batch_stats": bool(jax.tree.leaves(ref["stats"])),
        "pool_counts": [int(p.count) for p in ref["pools"]],
        "moved": max_diff(part(first, "params"), ref["params"]),
        "metric_names": sorted(ref["metrics"]),
    }
    for kind in ("pmap", "sharding"):
        got = out[kind]
        res[kind] = {
            "params": max_diff(ref["params"], got["params"]),
            "stats": max_diff(ref["stats"], got["stats"]) if res["has_batch_stats"] else 0.0,
            "pools": max_diff(ref["pools"], got["pools"]) if ref["pools"] else 0.0,
            "metrics": max_diff(ref["metrics"], got["metrics"], relative=True),
            "step": got["step"],
            "seconds": got["seconds"],
        }
    res["seconds_one"] = ref["seconds"]
    return res, ref["params"]
