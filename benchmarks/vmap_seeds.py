"""N seeds in one vmapped step against N sequential runs: wall time, compile included.

    python benchmarks/vmap_seeds.py --experiment gan --n 1,2,4,8 --steps 200
    python benchmarks/vmap_seeds.py --experiment dcgan --n 1,4 --steps 20 --smoke

Any further option is the experiment's own (``--batch_size 64``, ``--smoke``, ...). For each
N it times

* **vmapped**: one ``jax.jit(jax.vmap(train_step))`` over N stacked states (what
  ``experiments.sweep`` runs): its compile, then ``--steps`` steps;
* **sequential**: N runs one after the other, each with its own jitted step (what N
  invocations of the experiment do): N compiles, then N x ``--steps`` steps.

Totals are compile + ``--steps`` x the steady time per step, the best of ``--repeats``
passes (other processes on a shared machine only ever slow a pass down). Batches come from
the real pipeline (each seed its own order) but are built before the clock starts, so the
table compares the device work. It prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

import jax


def _run(step, state, batches: Sequence, repeats: int) -> tuple[float, float]:
    """(seconds of the first call: compile + one step, seconds per step after it: the best
    of ``repeats`` passes over ``batches``, which damps other processes' noise)."""
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state, m = step(state, batches[0])
    jax.block_until_ready((state, m))
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for b in batches:
            state, m = step(state, b)
        jax.block_until_ready((state, m))
        best = min(best, (time.perf_counter() - t0) / len(batches))
    return first, best


def bench(
    experiment: str, ns: Sequence[int], steps: int, rest: Sequence[str], repeats: int = 3
) -> list[dict]:
    from jaxgan import parallel
    from jaxgan.config import parse_config
    from jaxgan.data import batch_iterator
    from jaxgan.train.registry import build_task

    module = importlib.import_module(f"experiments.{experiment}")
    config = parse_config(module.get_config(), list(rest), smoke=getattr(module, "SMOKE", None))
    task = build_task(config)
    init = jax.jit(task.init_state)
    rows = []
    for n in ns:
        seeds = list(range(n))
        data = [
            batch_iterator(task.source, task.examples_per_step, seed=s, prefetch=0) for s in seeds
        ]
        batches = [[next(it) for _ in range(steps)] for it in data]
        stacked = [parallel.stack_batches([b[i] for b in batches]) for i in range(steps)]

        # vmapped: one compile, then the steps of all N runs at once
        vstep = parallel.vmap_step(task.train_step)
        state = parallel.stack_states([init(jax.random.PRNGKey(s)) for s in seeds])
        v_compile, v_step = _run(vstep, state, stacked, repeats)

        # sequential: N runs, each with a task of its own (so its own compile)
        s_compile = s_step = 0.0
        for s in seeds:
            run = build_task(config)
            c, t = _run(run.train_step, init(jax.random.PRNGKey(s)), batches[s], repeats)
            s_compile, s_step = s_compile + c, s_step + t
        rows.append(
            {
                "n": n,
                "v_total": v_compile + steps * v_step,
                "s_total": s_compile + steps * s_step,
                "v_step_ms": 1e3 * v_step,
                "s_step_ms": 1e3 * s_step,  # one step of each of the N runs
                "v_compile": v_compile,
                "s_compile": s_compile,
            }
        )
    return rows


def table(rows: list[dict], experiment: str, steps: int) -> str:
    lines = [
        f"N seeds of `{experiment}`, {steps} steps each ({jax.devices()[0].device_kind}, "
        f"{jax.device_count()} device(s), jax {jax.__version__})",
        "",
        "| N | vmapped total (s) | sequential total (s) | speed-up | vmapped ms/step (all N) "
        "| sequential ms/step (all N) | compile vmapped / sequential (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['v_total']:.2f} | {r['s_total']:.2f} | "
            f"{r['s_total'] / r['v_total']:.2f}x | {r['v_step_ms']:.2f} | {r['s_step_ms']:.2f} | "
            f"{r['v_compile']:.2f} / {r['s_compile']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="gan")
    parser.add_argument("--n", default="1,2,4,8", help="numbers of seeds, e.g. 1,2,4,8")
    parser.add_argument("--steps", type=int, default=100, help="steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (best is kept)")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    ns = [int(v) for v in args.n.split(",") if v.strip()]
    if not ns or min(ns) < 1 or args.steps < 2:
        raise SystemExit("--n needs positive counts and --steps at least 2")
    rows = bench(args.experiment, ns, args.steps, rest, args.repeats)
    print(table(rows, args.experiment, args.steps))
    return rows


if __name__ == "__main__":
    main()
