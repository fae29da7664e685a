"""How well XLA's and PyTorch's CPU convolutions use the cores: ESRGAN's dense-block layers.

    python -m benchmarks.conv_threads [--repeats 20] [--json PATH]

For each convolution of an ESRGAN residual dense block (3x3, stride 1, zero 'SAME'
padding: 64, 96, 128, 160 -> 32 and 192 -> 64 channels) it times the forward pass and
forward + backward (input and weight gradients) on the same 4,096 pixels laid out three
ways: batch 4 of 32x32 (the RRDB trunk at the benchmark's 128x128 patches), batch 16 of
16x16, and batch 1 of 32x128 (four 32x32 images side by side), in jaxgan's two forms under
``jax.jit``: :func:`jaxgan.nets.layers.conv_padded` (XLA's convolution, with the padding
as its attribute) and :func:`jaxgan.nets.layers.conv_taps` (matrix products over the
kernel's taps; what ``Conv`` runs on CPU for the 32-output layers), against
``torch.nn.functional.conv2d`` in eager mode, float32, the median of ``--repeats`` calls.
Each framework runs twice, in a fresh process pinned to one core
(``os.sched_setaffinity`` before the framework loads, so that its thread pools have one
thread) and in one with all the cores this process may use, and the table gives GFLOP/s
and the speedup from one core to all of them.

Why it exists: XLA's YNNPACK convolutions of these shapes run on one thread (a batch of
32x32 images with 32 or 64 outputs is one tile), so the scanned RRDB trunk ran at about
half of PyTorch's speed on the 2-core benchmark machine although the per-core rates are
close; the matrix products of ``conv_taps`` are split across the cores (see ``benchmarks/NOTES.md``,
"Why half" and "ESRGAN's dense layers as matrix products"). Without PyTorch installed,
only jaxgan is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.run import usable_cores
from benchmarks.timing import median_seconds

# (in, out) channels of a dense block's five convolutions (features 64, growth 32).
LAYERS: tuple[tuple[int, int], ...] = ((64, 32), (96, 32), (128, 32), (160, 32), (192, 64))
# (batch, height, width): the same pixels, laid out three ways.
SHAPES: tuple[tuple[int, int, int], ...] = ((4, 32, 32), (16, 16, 16), (1, 32, 128))
FRAMEWORKS = ("jax", "torch")
# jaxgan's forms of these layers, each a row of the table ("jax conv_padded", ...).
JAX_FORMS = ("conv_padded", "conv_taps")


def gflop(batch: int, h: int, w: int, cin: int, cout: int) -> float:
    """The multiply-adds of one 3x3 'SAME' convolution's forward pass, as GFLOP (2 each)."""
    return 2 * batch * h * w * 9 * cin * cout / 1e9


def time_jax(
    layers: tuple[tuple[int, int], ...], shapes: tuple[tuple[int, int, int], ...], repeats: int
) -> list[dict[str, Any]]:
    """Forward, and forward + both gradients, per layer and shape, of jaxgan's two forms:
    ``conv_padded`` (XLA's convolution) and ``conv_taps`` (matrix products over the taps,
    what ``Conv`` runs for the 32-output layers)."""
    import jax
    import numpy as np

    from jaxgan.nets.layers import conv_padded, conv_taps

    pads = ((1, 1), (1, 1))
    rng = np.random.default_rng(0)
    rows = []
    forms = {"conv_padded": conv_padded, "conv_taps": conv_taps}
    for name in JAX_FORMS:
        conv = forms[name]
        fwd = jax.jit(lambda x, k, conv=conv: conv(x, k, pads))

        def fwd_bwd(x, k, g, conv=conv):
            y, pullback = jax.vjp(lambda x, k: conv(x, k, pads), x, k)
            return (y, *pullback(g))

        both = jax.jit(fwd_bwd)
        for b, h, w in shapes:
            for cin, cout in layers:
                x = jax.device_put(rng.standard_normal((b, h, w, cin), np.float32))
                k = jax.device_put(rng.standard_normal((3, 3, cin, cout), np.float32))
                g = jax.device_put(rng.standard_normal((b, h, w, cout), np.float32))
                t_f = median_seconds(
                    lambda x=x, k=k, fwd=fwd: jax.block_until_ready(fwd(x, k)), repeats
                )
                t_fb = median_seconds(
                    lambda x=x, k=k, g=g, both=both: jax.block_until_ready(both(x, k, g)),
                    repeats,
                )
                rows.append(_row(f"jax {name}", b, h, w, cin, cout, t_f, t_fb))
    return rows


def time_torch(
    layers: tuple[tuple[int, int], ...], shapes: tuple[tuple[int, int, int], ...], repeats: int
) -> list[dict[str, Any]]:
    """The same with ``torch.nn.functional.conv2d`` (NCHW, eager), ``padding=1``."""
    import torch

    torch.manual_seed(0)
    rows = []
    for b, h, w in shapes:
        for cin, cout in layers:
            x = torch.randn(b, cin, h, w, requires_grad=True)
            k = torch.randn(cout, cin, 3, 3, requires_grad=True)
            g = torch.randn(b, cout, h, w)

            def forward(x=x, k=k) -> None:
                with torch.no_grad():
                    torch.nn.functional.conv2d(x, k, padding=1)

            def forward_backward(x=x, k=k, g=g) -> None:
                x.grad = k.grad = None
                torch.nn.functional.conv2d(x, k, padding=1).backward(g)

            t_f = median_seconds(forward, repeats)
            t_fb = median_seconds(forward_backward, repeats)
            rows.append(_row("torch", b, h, w, cin, cout, t_f, t_fb))
    return rows


def _row(fw: str, b: int, h: int, w: int, cin: int, cout: int, t_f: float, t_fb: float):
    return {
        "framework": fw,
        "shape": f"{b}x{h}x{w}",
        "layer": f"{cin} -> {cout}",
        "forward_ms": 1e3 * t_f,
        "forward_backward_ms": 1e3 * t_fb,
        "forward_gflops": gflop(b, h, w, cin, cout) / t_f,
        "forward_backward_gflops": 3 * gflop(b, h, w, cin, cout) / t_fb,
    }


def pin_to_cores(n: int) -> int:
    """Restrict this process to the first ``n`` cores it may use; returns how many it got.
    Call before JAX or PyTorch load: their thread pools size themselves by it."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, allowed[: max(1, n)])
    return usable_cores()


def worker(framework: str, cores: int, repeats: int, smoke: bool) -> list[dict[str, Any]]:
    """Pin to ``cores``, then time ``framework``'s convolutions (``smoke``: tiny sizes)."""
    got = pin_to_cores(cores)
    layers, shapes = (((8, 4),), ((2, 8, 8),)) if smoke else (LAYERS, SHAPES)
    if framework == "torch":
        import torch

        torch.set_num_threads(got)
        rows = time_torch(layers, shapes, repeats)
    elif framework == "jax":
        rows = time_jax(layers, shapes, repeats)
    else:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return [{**r, "cores": got} for r in rows]


def run(repeats: int, smoke: bool = False) -> list[dict[str, Any]]:
    """Every framework on one core and on all, each in a fresh pinned process."""
    all_cores = usable_cores()
    frameworks = [f for f in FRAMEWORKS if f == "jax" or importlib.util.find_spec("torch")]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows: list[dict[str, Any]] = []
    for fw in frameworks:
        for cores in sorted({1, all_cores}):
            cmd = [sys.executable, "-m", "benchmarks.conv_threads", "--worker", fw]
            cmd += ["--cores", str(cores), "--repeats", str(repeats)] + ["--smoke"] * smoke
            print(f"timing {fw} on {cores} core(s) ...", file=sys.stderr, flush=True)
            out = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{fw} worker on {cores} core(s) failed:\n{out.stderr}")
            rows.extend(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per framework, shape and layer: forward and forward + backward GFLOP/s on
    one core and on all, and the speedup between them."""
    lines = [
        "| framework | pixels as | layer | fwd GFLOP/s, 1 core | all cores | speedup "
        "| fwd+bwd GFLOP/s, 1 core | all cores | speedup |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_key: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["framework"], r["shape"], r["layer"]), {})[r["cores"]] = r
    for (fw, shape, layer), per_cores in by_key.items():
        one, many = per_cores[min(per_cores)], per_cores[max(per_cores)]
        cells = [fw, shape, layer]
        for key in ("forward_gflops", "forward_backward_gflops"):
            cells += [f"{one[key]:.0f}", f"{many[key]:.0f}", f"{many[key] / one[key]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--cores", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.cores, args.repeats, args.smoke)))
        return 0
    rows = run(args.repeats, args.smoke)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
