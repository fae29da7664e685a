"""DCGAN's convolutions one by one: jaxgan's layers against PyTorch's, forward + backward.

    python -m benchmarks.dcgan_layers [--resolution 64] [--batch 64] [--width 64]

For each 4x4 stride-2 layer of the DCGAN discriminator and generator at ``--resolution``
(the architecture of :mod:`jaxgan.nets.dcgan` and of :func:`benchmarks.torch_refs.make_dcgan`),
it times ``sum(y**2)`` and its gradient with respect to the kernel, and also with respect to
the input for every layer but the first of each network (a train step needs no gradient
of the images or of the noise): jaxgan's :class:`jaxgan.nets.layers.Conv` /
:class:`~jaxgan.nets.layers.ConvTranspose` under ``jax.jit`` against ``torch.nn.Conv2d`` /
``ConvTranspose2d`` in eager mode, no bias, float32, the median of ``--repeats`` calls after
two untimed ones, both in this process (PyTorch with one thread per core this process may
use). It prints a Markdown table with the ratio PyTorch / jaxgan time per layer (> 1:
jaxgan is faster).

This is where a train step's gap to PyTorch shows by layer: a DCGAN step also runs each
discriminator layer about three times (real and fake in the D step, fake in the G step), its
BatchNorms, activations, losses and the Adam updates. ``python -m benchmarks.run`` times the
steps themselves.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.run import usable_cores
from benchmarks.timing import median_seconds


def layer_shapes(resolution: int, width: int, channels: int = 3) -> list[dict[str, Any]]:
    """The 4x4 stride-2 layers of DCGAN at ``resolution``: the discriminator's convolutions
    (``channels`` -> width -> 2 width ... until 4x4) and the generator's transposed ones
    (4x4 -> ... -> resolution, ending at ``channels``). Each: name, kind ('conv' or
    'conv_transpose'), input size, in and out channels, whether the input gradient is
    timed too."""
    if resolution not in (8, 16, 32, 64):
        raise ValueError(f"resolution must be 8, 16, 32 or 64, got {resolution}")
    n = resolution.bit_length() - 3
    out = []
    h, c = resolution, channels
    for i in range(n):
        f = width * 2**i
        name = f"D{i} {h}x{h}x{c} -> {h // 2}x{h // 2}x{f}"
        out.append(dict(name=name, kind="conv", size=h, cin=c, cout=f, input_grad=i > 0))
        h, c = h // 2, f
    h = 4
    for i in range(n):
        f = c // 2 if i < n - 1 else channels
        name = f"G{i} {h}x{h}x{c} -> {2 * h}x{2 * h}x{f}"
        out.append(dict(name=name, kind="conv_transpose", size=h, cin=c, cout=f, input_grad=i > 0))
        h, c = 2 * h, f
    return out


def time_jax(layer: dict[str, Any], batch: int, repeats: int) -> float:
    import jax
    import jax.numpy as jnp

    from jaxgan.nets.layers import Conv, ConvTranspose

    x = jax.random.normal(
        jax.random.PRNGKey(0), (batch, layer["size"], layer["size"], layer["cin"])
    )
    if layer["kind"] == "conv":
        module = Conv(layer["cout"], (4, 4), (2, 2), padding=((1, 1), (1, 1)), use_bias=False)
    else:
        module = ConvTranspose(layer["cout"], (4, 4), (2, 2), use_bias=False)
    params = module.init(jax.random.PRNGKey(1), x)

    def loss(p, x):
        y = module.apply(p, x)
        return jnp.sum(y * y)

    grad = jax.jit(jax.grad(loss, (0, 1) if layer["input_grad"] else 0))
    return median_seconds(lambda: jax.block_until_ready(grad(params, x)), repeats)


def time_torch(layer: dict[str, Any], batch: int, repeats: int) -> float:
    import torch

    x = torch.randn(
        batch, layer["cin"], layer["size"], layer["size"], requires_grad=layer["input_grad"]
    )
    cls = torch.nn.Conv2d if layer["kind"] == "conv" else torch.nn.ConvTranspose2d
    module = cls(layer["cin"], layer["cout"], 4, 2, 1, bias=False)

    def step() -> None:
        module.zero_grad()
        x.grad = None
        y = module(x)
        (y * y).sum().backward()

    return median_seconds(step, repeats)


def run(resolution: int, batch: int, width: int, repeats: int) -> list[dict[str, Any]]:
    """Time every layer in both frameworks; one row per layer."""
    import torch

    torch.set_num_threads(usable_cores())
    rows = []
    for layer in layer_shapes(resolution, width):
        jax_s = time_jax(layer, batch, repeats)
        torch_s = time_torch(layer, batch, repeats)
        rows.append({**layer, "jax_ms": 1e3 * jax_s, "torch_ms": 1e3 * torch_s})
        print(
            f"{layer['name']}: jaxgan {1e3 * jax_s:.2f} ms, PyTorch {1e3 * torch_s:.2f} ms",
            flush=True,
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| layer | gradients | jaxgan ms | PyTorch ms | ratio PyTorch/jaxgan |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        grads = "kernel, input" if r["input_grad"] else "kernel"
        ratio = r["torch_ms"] / r["jax_ms"]
        lines.append(
            f"| {r['name']} | {grads} | {r['jax_ms']:.2f} | {r['torch_ms']:.2f} | {ratio:.2f} |"
        )
    jax_total = sum(r["jax_ms"] for r in rows)
    torch_total = sum(r["torch_ms"] for r in rows)
    lines.append(
        f"| all layers | | {jax_total:.1f} | {torch_total:.1f} | {torch_total / jax_total:.2f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=64, help="the first layer's features")
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args(argv)
    from jaxgan.host import reuse_freed_memory_on_cpu

    reuse_freed_memory_on_cpu()  # as jaxgan's training loop and benchmarks.run do
    rows = run(args.resolution, args.batch, args.width, args.repeats)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
