"""Entry point for the seed-sweep test: vmapped runs against separate runs.

``python seeds.py WORKDIR OUT.json``: trains ``python -m experiments.sweep --experiment gan
--seeds 0,1`` (tiny MLPs on the ring) for 2 steps, resumes it to 4 steps, tries to resume it
with other seeds, then trains each seed alone as the training loop does (state from
``PRNGKey(seed)``, the pipeline's batches for ``seed``, the family's jitted step: one compile
serves both runs), and writes the largest parameter differences and what the sweep wrote to
OUT.json.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np

SEEDS = [0, 1]
OVERRIDES = {
    "model.hidden": "16,16",
    "latent_dim": "4",
    "batch_size": "16",
    "log_every": "1",
    "sample_every": "2",
    "checkpoint_every": "2",
    "eval_every": "0",
    "tensorboard": "false",
    "quiet": "true",
}


def argv(workdir: str, steps: int, seeds: list[int]) -> list[str]:
    args = ["--experiment", "gan", "--seeds", ",".join(map(str, seeds)), "--workdir", workdir]
    args += ["--steps", str(steps)]
    for k, v in OVERRIDES.items():
        args += [f"--{k}", v]
    return args


def main() -> None:
    workdir, out_path = sys.argv[1:3]
    from experiments import gan, sweep
    from jaxgan.checkpoint import CheckpointMismatchError
    from jaxgan.config import parse_config
    from jaxgan.data import batch_iterator
    from jaxgan.train.unconditional import build_gan_task

    sweep.main(argv(workdir, 2, SEEDS))
    finals = sweep.main(argv(workdir, 4, SEEDS))  # resumes from step 2
    try:
        sweep.main(argv(workdir, 4, [0, 5]))
        mismatch = None
    except CheckpointMismatchError as e:
        mismatch = str(e)

    c = parse_config(gan.get_config(), argv("", 4, [0])[4:])
    task = build_gan_task(c)
    init = jax.jit(task.init_state)
    diffs = []
    for seed, vmapped in zip(SEEDS, finals, strict=True):
        alone = init(jax.random.PRNGKey(seed))
        batches = batch_iterator(task.source, task.examples_per_step, seed=seed, prefetch=0)
        for _ in range(c.steps):
            alone, _ = task.train_step(alone, next(batches))
        a = jax.tree.leaves(jax.device_get({"g": vmapped.g.params, "d": vmapped.d.params}))
        b = jax.tree.leaves(jax.device_get({"g": alone.g.params, "d": alone.d.params}))
        diffs.append(max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True)))
    # runs with different seeds differ (different init and data order)
    p0, p1 = (jax.tree.leaves(jax.device_get(s.g.params)) for s in finals[:2])
    spread = max(float(np.max(np.abs(x - y))) for x, y in zip(p0, p1, strict=True))

    def rows(seed: int) -> list[int]:
        with open(os.path.join(workdir, f"seed_{seed}", "metrics.jsonl")) as fh:
            rows = [json.loads(line) for line in fh]
        return [r["step"] for r in rows if "d_loss" in r]  # training rows (not eval/...)

    with open(os.path.join(workdir, "summary.json")) as fh:
        summary = json.load(fh)
    result = {
        "diffs": diffs,
        "spread": spread,
        "steps": [int(s.step) for s in finals],
        "mismatch": mismatch,
        "logged_steps": {s: rows(s) for s in SEEDS},
        "samples": {
            s: sorted(os.listdir(os.path.join(workdir, f"seed_{s}", "samples"))) for s in SEEDS
        },
        "summary": summary,
    }
    with open(out_path, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
