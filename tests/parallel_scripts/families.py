"""The other families' steps on N simulated devices against one device, both parallel paths.

Run in a subprocess (the device count is fixed when JAX starts)::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python families.py OUT.json

Settings (tiny networks; XLA's CPU compile time dominates):

* ``cgan``: conditional DCGAN, label maps concatenated to the image, BatchNorm in G and D;
* ``infogan``: InfoGAN on the DCGAN trunk with BatchNorm, and BatchNorm in the Q head;
* ``cyclegan``: CycleGAN with an image pool smaller than the batch (it fills and swaps
  within the first step: the pool couples the batch);
* ``srgan_psnr``: SRResNet (BatchNorm) on the pixel loss, the task from ``build_sr_task``;
* ``srgan``: SRGAN's adversarial stage (BatchNorm in SRResNet and the discriminator);
* ``esrgan``: ESRGAN's adversarial stage (RRDB generator, relativistic average losses).

Each trains ``STEPS`` steps on one device, under ``jax.pmap`` and under ``jax.jit`` with
shardings, from the same state on the same global batches, and writes the largest
differences of parameters, BatchNorm statistics, pools and metrics to OUT.json; then a batch
that does not divide over the devices is tried with CycleGAN. Plain SGD, as in
``step_equivalence.py`` (Adam's first update turns rounding-level gradients into moves of
``lr``).
"""

from __future__ import annotations

import json
import sys
import time

import jax
from equivalence import compare, max_diff, with_sgd  # this folder (run as scripts)

from jaxgan import parallel
from jaxgan.train.loop import Task

STEPS = 2
BATCH = 16


# --------------------------------------------------------------------------- configs


def gan_config(base, kind: str):
    c = base()
    c.parallel = kind
    c.batch_size = BATCH
    c.latent_dim = 8
    c.dataset = "digits"
    c.image_size = 16  # two stages: BatchNorm in the generator and the discriminator
    c.model.name = "dcgan"
    c.model.base_features = 4
    return c


def cgan(kind: str) -> Task:
    from jaxgan.train.conditional import build_cgan_task, cgan_base_config

    return build_cgan_task(gan_config(cgan_base_config, kind))


def infogan(kind: str) -> Task:
    from jaxgan.train.conditional import build_infogan_task, infogan_base_config

    c = gan_config(infogan_base_config, kind)
    c.info.q_hidden = 8  # with BatchNorm (d_norm 'batch')
    c.model.base_features = 8  # 4 is so ill-conditioned that rounding shows at 1e-5
    return build_infogan_task(c)


def cyclegan(kind: str, batch_size: int = BATCH) -> Task:
    from jaxgan.train.cyclegan import SMOKE, base_config, build_cyclegan_task

    c = base_config()
    c.update_from_flattened_dict(SMOKE)
    # 16: instance norm over the 2x2 maps of 8x8 images amplifies rounding beyond 1e-5
    c.update(parallel=kind, batch_size=batch_size, image_size=16, pool_size=6, quiet=True)
    return build_cyclegan_task(c)


def sr_config(family: str, stage: str, kind: str):
    from jaxgan.train.superres import SMOKE, base_config

    c = base_config()
    c.update_from_flattened_dict(SMOKE)
    c.update(family=family, stage=stage, parallel=kind, batch_size=BATCH, quiet=True)
    c.update(patch_size=8, eval_max_size=16, sample_crop=8)
    c.model.features = 4
    c.model.d_dense = 4
    if family == "srgan":
        c.model.generator = "srresnet"
        c.pixel_loss = "l2"
        c.adversarial_weight = 1e-3
    return c


def srgan_psnr(kind: str) -> Task:
    from jaxgan.train.superres import build_sr_task

    return build_sr_task(sr_config("srgan", "psnr", kind))


def sr_gan(family: str, kind: str) -> Task:
    """The adversarial stage, from a fresh generator (``build_sr_task`` wants a PSNR run)."""
    from jaxgan.data.superres import SRPatchSource, load_sr_images
    from jaxgan.train.superres import make_init_fn, make_train_step, step_config

    c = sr_config(family, "gan", kind)
    axis = parallel.AXIS if kind == "pmap" else None
    source = SRPatchSource(
        load_sr_images(c.dataset, "train", scale=c.scale),
        c.patch_size,
        c.scale,
        patches_per_image=4,
        seed=0,
    )
    return Task(
        meta={},
        init_state=make_init_fn(c, None, bn_axis_name=axis),
        train_step=make_train_step("gan", step_config(c), None, axis),
        source=source,
        examples_per_step=BATCH,
        write_samples=lambda state, path: None,
        axis_name=axis,
    )


# name -> (task builder of a parallel kind, SGD learning rate: the parameters move by much
# more than the tolerance, while the tiny networks' large gradients keep rounding small)
SETTINGS = {
    "cgan": (cgan, 0.05),
    "infogan": (infogan, 0.002),
    "cyclegan": (cyclegan, 0.002),
    "srgan_psnr": (srgan_psnr, 0.05),
    "srgan": (lambda kind: sr_gan("srgan", kind), 0.05),
    "esrgan": (lambda kind: sr_gan("esrgan", kind), 0.01),
}


def loop(workdir: str, reference: dict) -> dict:
    """SRGAN's PSNR stage through the training loop with parallel='pmap' (samples, scores,
    checkpoints), one step, then resumed to ``STEPS``: against the one-device steps."""
    from jaxgan.train.loop import train_and_evaluate
    from jaxgan.train.superres import build_sr_task

    def build(c):
        return with_sgd(build_sr_task(c), SETTINGS["srgan_psnr"][1])

    c = sr_config("srgan", "psnr", "pmap")
    c.update(steps=1, log_every=1, sample_every=1, checkpoint_every=1, tensorboard=False)
    train_and_evaluate(c, workdir, build_task=build)
    c.steps = STEPS
    state = train_and_evaluate(c, workdir, build_task=build)  # resumes at step 1
    with open(f"{workdir}/metrics.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    return {
        "params": max_diff(reference, {"g": state.g.params}),
        "step": int(state.step),
        "logged_steps": [r["step"] for r in rows if "pixel" in r],
        "scored": any("eval/psnr_y" in r for r in rows),
        "single_device": all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(state)),
    }


def divisibility_errors() -> dict:
    errors: dict = {}
    for kind in ("sharding", "pmap"):
        try:
            parallel.for_task(kind, cyclegan(kind, batch_size=12))
            errors[kind] = None
        except ValueError as e:
            errors[kind] = str(e)
    return errors


def main() -> None:
    out_path = sys.argv[1]
    names = sys.argv[2:] or list(SETTINGS)
    result: dict = {"devices": jax.device_count(), "errors": divisibility_errors()}
    for name in names:
        t0 = time.time()
        build, lr = SETTINGS[name]
        result[name], params = compare(build("none"), build("pmap"), lr, STEPS)
        result[name]["seconds"] = time.time() - t0
        print(name, json.dumps(result[name]), flush=True)
        if name == "srgan_psnr":
            t0 = time.time()
            result["loop"] = loop(out_path + ".run", params)
            result["loop"]["seconds"] = time.time() - t0
            print("loop", json.dumps(result["loop"]), flush=True)
    with open(out_path, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
