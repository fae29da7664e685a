"""Translate a folder of images with a trained CycleGAN.

    python -m jaxgan.translate WORKDIR IN_DIR OUT_DIR --direction AtoB   # G: A -> B
    python -m jaxgan.translate WORKDIR IN_DIR OUT_DIR --direction BtoA   # F: B -> A

Reads ``WORKDIR/config.json`` and the newest checkpoint (no training data needed), and
writes one PNG per input image, under the same relative path with a ``.png`` suffix.
Images are converted to the model's channels and, by default, centre-cropped and resized
to the training size; ``--size 0`` keeps each image's size (cropped to a multiple of 4:
the generator is fully convolutional, so it translates larger images too).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from PIL import Image

from jaxgan.checkpoint import Checkpointer
from jaxgan.data.folder import list_image_files
from jaxgan.data.validate import prepare_image
from jaxgan.images import save_image, to_uint8

DIRECTIONS = ("AtoB", "BtoA")


def load_cyclegan(workdir: str):
    """``(config, state, translators, (shape_x, shape_y))`` of a CycleGAN workdir's newest
    checkpoint; no training data is read.

    ``translators['AtoB'|'BtoA'](params, images)``; G's params are ``state.g.params``, F's
    ``state.f.params``; ``shape_x``/``shape_y`` are the image shapes of domains A and B.

    Raises:
      FileNotFoundError: no ``config.json`` or no checkpoint.
      ValueError: the workdir holds another family's run.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} has no config.json: is it a jaxgan workdir?")
    with open(path) as fh:
        config = ml_collections.ConfigDict(json.load(fh))
    if config.get("family") != "cyclegan":
        raise ValueError(
            f"{workdir} holds a {config.get('family')!r} run; translate needs a CycleGAN run"
        )
    from jaxgan.train.cyclegan import make_init_state, make_translator

    probe = Checkpointer(workdir, {})
    try:
        if probe.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {probe.directory}")
        meta = probe.read_meta()
    finally:
        probe.close()
    shape_x = tuple(meta["sample_shape"])
    shape_y = tuple(meta.get("sample_shape_y", shape_x))
    init_state = make_init_state(config, shape_x, shape_y)
    ckpt = Checkpointer(workdir, meta)
    try:
        state = ckpt.restore(jax.eval_shape(init_state, jax.random.PRNGKey(0)))
    finally:
        ckpt.close()
    return config, state, make_translator(config, shape_x, shape_y), (shape_x, shape_y)


def _crop_to_multiple(img: Image.Image, m: int) -> Image.Image:
    w, h = img.size
    nw, nh = w - w % m, h - h % m
    if nw == 0 or nh == 0:
        raise ValueError(f"image of {w}x{h} pixels is smaller than {m}x{m}")
    left, top = (w - nw) // 2, (h - nh) // 2
    return img.crop((left, top, left + nw, top + nh))


def translate_folder(
    workdir: str, in_dir: str, out_dir: str, direction: str = "AtoB", size: int | None = None
) -> list[str]:
    """Translate every image of ``in_dir`` into ``out_dir``; return the written paths.

    ``size``: ``None`` = the training image size; ``0`` = each image's own size (cropped
    to a multiple of 4); ``n`` = centre-crop and resize to ``n`` x ``n``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not os.path.isdir(in_dir):
        raise ValueError(f"input folder {in_dir} does not exist or is not a directory")
    files = list_image_files(in_dir)
    if not files:
        raise ValueError(f"input folder {in_dir} holds no image files")
    config, state, translators, (shape_x, shape_y) = load_cyclegan(workdir)
    fn = translators[direction]
    params = state.g.params if direction == "AtoB" else state.f.params
    channels = (shape_x if direction == "AtoB" else shape_y)[-1]
    size = shape_x[0] if size is None else size
    if size and size % 4:
        raise ValueError(f"size must be a multiple of 4 (or 0), got {size}")
    written = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                if not size:
                    img = _crop_to_multiple(img, 4)
                x = prepare_image(img, size or None, channels)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read image file {path}: {e}") from e
        y = np.asarray(fn(params, x[None]))[0]
        rel = os.path.splitext(os.path.relpath(path, in_dir))[0] + ".png"
        out = os.path.join(out_dir, rel)
        written.append(save_image(to_uint8(y), out))
    return written


def main(argv: Sequence[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(prog="python -m jaxgan.translate", description=__doc__)
    p.add_argument("workdir", help="a CycleGAN run's workdir (config.json + checkpoints)")
    p.add_argument("in_dir", help="folder of images to translate")
    p.add_argument("out_dir", help="where the translated PNGs go")
    p.add_argument("--direction", choices=DIRECTIONS, default="AtoB")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="square size to translate at (default: the training size; 0: keep each size)",
    )
    args = p.parse_args(argv)
    from jaxgan.host import reuse_freed_memory_on_cpu

    # Before JAX computes: a CycleGAN 256x256 generator forward 1.50 -> 0.72 s on 2 cores.
    reuse_freed_memory_on_cpu()
    written = translate_folder(args.workdir, args.in_dir, args.out_dir, args.direction, args.size)
    print(f"translated {len(written)} images {args.direction} into {args.out_dir}")
    return written


if __name__ == "__main__":
    main()
