"""Seed sweep: N independent runs of one experiment, trained together in one compiled step.

    python -m experiments.sweep --experiment dcgan --seeds 0,1,2,3 --workdir runs/dcgan_seeds
    python -m experiments.sweep --experiment gan --seeds 0,1,2,3,4,5,6,7 --steps 5000 \\
        --workdir runs/gan_seeds
    python -m experiments.sweep --experiment wgan_gp --seeds 0,1 --smoke --workdir /tmp/s

Every other option is the experiment's own (``--steps``, ``--batch_size``, ``--smoke``, ...).
Run ``i`` is exactly the run ``python -m experiments.<name> --seed S_i`` would train (its own
initialisation and its own data order), but the N states are stacked and one
``jax.vmap``-ed step updates them all (:func:`jaxgan.parallel.vmap_step`): one compile, and
on an accelerator N small models fill the device instead of one. It writes

* ``DIR/seed_<S>/metrics.jsonl``, ``DIR/seed_<S>/samples/*.png``, ``DIR/seed_<S>/eval.json``:
  each run's logs, sample grids and final scores, as a single run writes them;
* ``DIR/checkpoints/``: one checkpoint of the stacked state (all runs at the same step,
  saved atomically), from which the sweep resumes when run again with the same seeds;
* ``DIR/summary.json``: every run's scores, with mean and standard deviation over seeds,
  also printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import parallel
from jaxgan.checkpoint import Checkpointer, CheckpointMismatchError
from jaxgan.config import parse_config
from jaxgan.train.logging import MetricWriter
from jaxgan.train.loop import NonFiniteError, Task


def parse_seeds(text: str) -> list[int]:
    """``'0,1,2'`` -> [0, 1, 2]; ``'0-3'`` -> [0, 1, 2, 3]; distinct non-negative ints."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds: cannot read {part!r}; use e.g. 0,1,2,3 or 0-3") from None
    if not seeds:
        raise ValueError("--seeds: give at least one seed, e.g. 0,1,2,3")
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds must be distinct non-negative integers, got {seeds}")
    return seeds


def _seed_config(config: ml_collections.ConfigDict, seed: int, workdir: str):
    c = ml_collections.ConfigDict(config.to_dict())
    c.seed = seed
    c.workdir = os.path.join(workdir, f"seed_{seed}")
    return c


@jax.jit
def _track(first_bad: jax.Array, step: jax.Array, metrics: dict) -> jax.Array:
    """Per run: the first step whose metrics were not all finite (-1: none yet)."""
    finite = jnp.stack([jnp.isfinite(v).reshape(v.shape[0], -1).all(1) for v in metrics.values()])
    bad = ~finite.all(0)
    return jnp.where((first_bad < 0) & bad, step, first_bad)


def _check(first_bad: jax.Array, seeds: Sequence[int], ckpt: Checkpointer) -> None:
    bad = np.asarray(jax.device_get(first_bad))
    if (bad < 0).all():
        return
    ckpt.wait()
    runs = ", ".join(
        f"seed {s} at step {int(b)}" for s, b in zip(seeds, bad, strict=True) if b >= 0
    )
    last = ckpt.latest_step()
    kept = (
        f"the last good checkpoint (step {last}) is kept in {ckpt.directory}"
        if last is not None
        else "no checkpoint was written before it"
    )
    raise NonFiniteError(f"training diverged ({runs}): non-finite metrics; {kept}")


def run_sweep(
    config: ml_collections.ConfigDict,
    seeds: Sequence[int],
    workdir: str,
    build_task: Callable[[ml_collections.ConfigDict], Task] | None = None,
) -> list[Any]:
    """Train one run per seed of ``config`` together (vmapped) in ``workdir``, resuming from
    its checkpoint; return the final state of each run (in the order of ``seeds``)."""
    if build_task is None:
        from jaxgan.train.registry import build_task as _build

        build_task = _build
    seeds = [int(s) for s in seeds]
    if config.get("parallel", "none") != "none":
        raise ValueError("a seed sweep vmaps its runs on one device: use --parallel none")
    configs = [_seed_config(config, s, workdir) for s in seeds]
    tasks = [build_task(c) for c in configs]  # validates data and model before compiling
    n = tasks[0].examples_per_step

    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as fh:
        json.dump({"seeds": seeds, **json.loads(config.to_json_best_effort())}, fh, indent=2)
    for c in configs:
        os.makedirs(c.workdir, exist_ok=True)
        with open(os.path.join(c.workdir, "config.json"), "w") as fh:
            json.dump(json.loads(c.to_json_best_effort()), fh, indent=2)

    meta = {**tasks[0].meta, "seeds": seeds}
    ckpt = Checkpointer(workdir, meta, max_to_keep=config.keep_checkpoints)
    init = jax.jit(tasks[0].init_state)  # one compile: the seed only enters through the key
    state = parallel.stack_states([init(jax.random.PRNGKey(s)) for s in seeds])
    if ckpt.latest_step() is not None:
        saved = ckpt.read_meta().get("seeds")
        if saved != seeds:
            raise CheckpointMismatchError(
                f"the sweep in {workdir} trains seeds {saved}, not {seeds}: use the same "
                "--seeds to resume it, or another --workdir"
            )
        state = ckpt.restore(state)
        print(f"resumed from {ckpt.directory}/{ckpt.latest_step()} (step {int(state.step[0])})")
    start = int(state.step[0])

    from jaxgan.data import batch_iterator

    iterators = [
        batch_iterator(t.source, n, seed=c.seed, start_step=start, transform=t.transform)
        for t, c in zip(tasks, configs, strict=True)
    ]
    writers = [
        MetricWriter(c.workdir, tensorboard=config.get("tensorboard", True)) for c in configs
    ]
    step_fn = parallel.vmap_step(tasks[0].train_step)
    first_bad = jnp.full((len(seeds),), -1)
    steps = int(config.steps)
    t0 = time.time()
    quiet = config.get("quiet", False)
    try:
        for step in range(start + 1, steps + 1):
            batch = parallel.stack_batches([next(it) for it in iterators])
            state, metrics = step_fn(state, batch)
            first_bad = _track(first_bad, jnp.array(step), metrics)
            if step % config.log_every == 0 or step == steps:
                _check(first_bad, seeds, ckpt)
                host = jax.device_get(metrics)
                for i, w in enumerate(writers):
                    w.write(step, {k: float(v[i]) for k, v in host.items()})
                if not quiet:
                    d, g = host.get("d_loss"), host.get("g_loss")
                    losses = (
                        ""
                        if d is None or g is None
                        else (
                            f"  d_loss {np.mean(d):.3g}±{np.std(d):.2g}"
                            f"  g_loss {np.mean(g):.3g}±{np.std(g):.2g}"
                        )
                    )
                    print(f"step {step}/{steps}{losses}  ({time.time() - t0:.0f}s)", flush=True)
            if config.sample_every and step % config.sample_every == 0:
                for t, c, s in zip(tasks, configs, parallel.unstack_states(state), strict=True):
                    t.write_samples(s, os.path.join(c.workdir, "samples", f"step_{step:06d}.png"))
            if step % config.checkpoint_every == 0 or step == steps:
                _check(first_bad, seeds, ckpt)
                ckpt.save(step, state)
        ckpt.wait()
        elapsed = time.time() - t0
        finals = parallel.unstack_states(state)
        rows = []
        for t, c, s, w in zip(tasks, configs, finals, writers, strict=True):
            t.write_samples(s, os.path.join(c.workdir, "samples", "final.png"))
            scores = t.evaluate(s) if t.evaluate is not None else {}
            if scores:
                w.write(int(s.step), {f"eval/{k}": v for k, v in scores.items()})
            row = {"seed": c.seed, "step": int(s.step), "train_seconds": elapsed, **scores}
            with open(os.path.join(c.workdir, "eval.json"), "w") as fh:
                json.dump(row, fh, indent=2)
            rows.append(row)
        _write_summary(workdir, rows)
    finally:
        for it in iterators:
            it.close()
        for w in writers:
            w.close()
        ckpt.close()
    return finals


def _write_summary(workdir: str, rows: list[dict[str, Any]]) -> None:
    names = [k for k in rows[0] if k not in ("seed", "step", "train_seconds")]
    stats = {
        k: {
            "mean": float(np.mean([r[k] for r in rows])),
            "std": float(np.std([r[k] for r in rows])),
        }
        for k in names
    }
    with open(os.path.join(workdir, "summary.json"), "w") as fh:
        json.dump({"runs": rows, "over_seeds": stats}, fh, indent=2)
    if not names:
        return
    print("| seed | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for r in rows:
        print(f"| {r['seed']} | " + " | ".join(f"{r[k]:.4g}" for k in names) + " |")
    print(
        "| mean ± std | "
        + " | ".join(f"{stats[k]['mean']:.4g} ± {stats[k]['std']:.2g}" for k in names)
        + " |"
    )


def main(argv: Sequence[str] | None = None) -> list[Any]:
    """``python -m experiments.sweep --experiment NAME --seeds 0,1,2 [options of NAME]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(
        prog="python -m experiments.sweep",
        description=__doc__,
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pre.add_argument("--experiment", required=True, help="module under experiments/, e.g. dcgan")
    pre.add_argument("--seeds", required=True, help="e.g. 0,1,2,3 or 0-7")
    if "-h" in argv or "--help" in argv:
        pre.print_help()
        if not any(a.startswith("--experiment") for a in argv):
            raise SystemExit(0)
    args, rest = pre.parse_known_args(argv)
    seeds = parse_seeds(args.seeds)
    try:
        module = importlib.import_module(f"experiments.{args.experiment}")
    except ModuleNotFoundError:
        raise SystemExit(f"--experiment: no module experiments.{args.experiment}") from None
    config = parse_config(
        module.get_config(),
        rest,
        smoke=getattr(module, "SMOKE", None),
        prog=f"python -m experiments.sweep --experiment {args.experiment} --seeds {args.seeds}",
        description=module.__doc__,
    )
    workdir = config.workdir or os.path.join("runs", f"{args.experiment}_seeds")
    print(f"sweep {args.experiment}: seeds {seeds}, workdir {workdir}")
    return run_sweep(config, seeds, workdir)


if __name__ == "__main__":
    main()
