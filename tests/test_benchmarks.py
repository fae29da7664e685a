"""The benchmark command (``python -m benchmarks.run``): its smoke mode runs every benchmark
end to end at tiny sizes (no timing assertions), and its report renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks.run import BENCHES, _rate, cpu_description, markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_smoke_runs_every_benchmark_and_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results"
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - t
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((out / "smoke.json").read_text())
    assert [r["name"] for r in report["results"]] == [b.name for b in BENCHES]
    for r in report["results"]:
        if r["status"] == "todo":  # a family that does not exist yet: said so, not skipped
            assert "TODO" in r["reason"]
            continue
        assert r["status"] == "ok", r
        assert r["jax_img_s"] > 0 and r["torch_img_s"] > 0 and r["ratio"] > 0
        assert r["jax_setup"]["compile_s"] >= 0
        if r["name"].startswith(("dcgan", "wgangp", "cyclegan", "esrgan")):  # steps with .lower
            assert r["jax_setup"]["compile_method"] == "aot", r["jax_setup"]
            assert r["jax_setup"]["lower_s"] >= 0
        assert r["jax_setup"]["images_per_step"] == r["torch_setup"]["images_per_step"]
        assert "peak_rss_delta_mb" in r["jax_memory"] and "peak_rss_delta_mb" in r["torch_memory"]
    m = report["machine"]
    assert m["nproc"] >= 1 and m["jax"] and m["torch"] and m["date"]
    table = (out / "smoke.md").read_text()
    assert "| DCGAN 32x32 |" in table and m["cpu"] in table
    assert table in proc.stdout  # the table is printed too
    print(f"smoke benchmark: {elapsed:.0f} s")


def _fake_result(name: str, status: str = "ok") -> dict:
    if status != "ok":
        return {"name": name, "status": status, "reason": "TODO: not there yet"}
    return {
        "name": name,
        "status": "ok",
        "sizes": {"batch": 64},
        "repeats": 3,
        "images_per_step": 64,
        "jax_setup": {"lower_s": 1.0, "compile_s": 2.0, "images_per_step": 64},
        "torch_setup": {"images_per_step": 64},
        "jax_img_s": 300.0,
        "torch_img_s": 150.0,
        "ratio": 2.0,
        "ratio_per_repeat": [1.9, 2.0, 2.1],
        "cpu_ratio": 1.8,
        "jax_memory": {"peak_rss_delta_mb": 10.0, "xla_total_mb": 5.0},
        "torch_memory": {"peak_rss_delta_mb": 20.0},
    }


def test_markdown_reports_ratio_target_compile_time_and_todos():
    report = {
        "command": "python -m benchmarks.run",
        "machine": {
            "nproc": 2,
            "cpu": "Some CPU",
            "memory_gb": 8.0,
            "python": "3.11",
            "jax": "0.10.2",
            "jaxlib": "0.10.2",
            "flax": "0.12.8",
            "torch": "2.13.0",
            "date": "2026-01-01T00:00:00",
            "loadavg_start": (1.0, 1.0, 1.0),
        },
        "loadavg_end": (1.5, 1.0, 1.0),
        "total_s": 120.0,
        "devices": {"jax": "cpu", "torch": "cpu", "torch_threads": 2},
        "torch_omp_wait": "passive",
        "results": [_fake_result("dcgan32"), _fake_result("esrgan", "todo")],
    }
    table = markdown(report)
    row = next(line for line in table.splitlines() if line.startswith("| DCGAN 32x32 |"))
    assert "**2.00**" in row and "≥ 1.5" in row and "| yes |" in row
    assert "1.0 + 2.0 = 3.0" in row and "10 / 20" in row
    todo = next(line for line in table.splitlines() if line.startswith("| ESRGAN"))
    assert "todo" in todo and "TODO: not there yet" in todo
    assert "2 x Some CPU" in table and "torch 2.13.0" in table
    assert "| 300 | 150 |" in row


def test_rates_print_without_exponents():
    assert [_rate(v) for v in (1003.4, 999.6, 188.2, 18.84, 0.2013)] == [
        "1003",
        "1000",
        "188",
        "18.8",
        "0.201",
    ]


def test_cpu_description_names_family_model_and_avx512():
    # Two processors; only the first is read. The model name alone ('AMD EPYC') does not
    # tell Zen 4 (family 25) from Zen 5 (family 26), which benchmark very differently.
    first = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
    first += "model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512bw\n"
    second = "processor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: Other\nflags\t: fpu\n"
    text = first + "\n" + second
    assert cpu_description(text) == "AMD EPYC (cpu family 26, model 2, AVX-512)"
    no_avx512 = text.replace(" avx512f avx512bw", "")
    assert cpu_description(no_avx512) == "AMD EPYC (cpu family 26, model 2)"
    assert cpu_description("model name\t: Some CPU\n") == "Some CPU"
    assert cpu_description() != ""  # this machine's own /proc/cpuinfo (or the platform)


def test_dcgan_layers_match_the_model_and_time_both_frameworks():
    import jax
    import jax.numpy as jnp

    from benchmarks import dcgan_layers
    from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    # The benchmarked layers are the 4x4 stride-2 kernels of jaxgan's DCGAN, in order.
    res, width = 32, 8
    layers = dcgan_layers.layer_shapes(res, width)
    d = DCGANDiscriminator(res, 3, width).init(jax.random.PRNGKey(0), jnp.zeros((1, res, res, 3)))
    g = DCGANGenerator(res, 3, width).init(jax.random.PRNGKey(0), jnp.zeros((1, 100)))

    def strided_kernels(params):
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        named = [(jax.tree_util.keystr(p), v.shape) for p, v in leaves if "kernel" in str(p)]
        return [s for _, s in sorted(named) if len(s) == 4 and s[:2] == (4, 4)]

    d_kernels = strided_kernels(d["params"])[:-1]  # the last is the 4x4 'VALID' logit layer
    want = [(4, 4, layer["cin"], layer["cout"]) for layer in layers]
    assert d_kernels + strided_kernels(g["params"]) == want
    assert [layer["input_grad"] for layer in layers] == [False, True, True] * 2

    rows = dcgan_layers.run(resolution=8, batch=2, width=4, repeats=1)
    assert [r["name"] for r in rows] == ["D0 8x8x3 -> 4x4x4", "G0 4x4x4 -> 8x8x3"]
    assert all(r["jax_ms"] > 0 and r["torch_ms"] > 0 for r in rows)
    table = dcgan_layers.markdown(rows)
    assert "| D0 8x8x3 -> 4x4x4 | kernel |" in table and "| all layers |" in table


def test_median_seconds_warms_up_then_takes_the_median_of_the_timed_calls():
    from benchmarks.timing import median_seconds

    calls = []

    def fn():
        calls.append(None)
        time.sleep(0.02 if len(calls) == 4 else 0.0)  # one slow timed call

    assert median_seconds(fn, repeats=3, warmup=2) < 0.01  # the outlier is not the median
    assert len(calls) == 5


def test_conv_threads_pins_workers_and_reports_the_speedup_per_layer():
    from benchmarks import conv_threads

    # The full-size rows: the dense block's five layers in three layouts of 4,096 pixels.
    assert conv_threads.LAYERS == ((64, 32), (96, 32), (128, 32), (160, 32), (192, 64))
    assert {b * h * w for b, h, w in conv_threads.SHAPES} == {4096}
    assert conv_threads.gflop(4, 32, 32, 192, 64) == 2 * 4096 * 9 * 192 * 64 / 1e9

    rows = conv_threads.run(repeats=1, smoke=True)  # one pinned process per framework and count
    all_cores = len(os.sched_getaffinity(0))
    labels = [f"jax {form}" for form in conv_threads.JAX_FORMS] + ["torch"]
    assert {(r["framework"], r["cores"]) for r in rows} == {
        (fw, n) for fw in labels for n in {1, all_cores}
    }
    for r in rows:
        assert r["shape"] == "2x8x8" and r["layer"] == "8 -> 4"
        flop = conv_threads.gflop(2, 8, 8, 8, 4)
        assert abs(r["forward_gflops"] * r["forward_ms"] / 1e3 - flop) < 1e-9 * flop + 1e-12
        assert r["forward_backward_ms"] > 0
    table = conv_threads.markdown(rows)
    by = {(r["framework"], r["cores"]): r for r in rows}
    for fw in labels:
        speedup = by[fw, all_cores]["forward_gflops"] / by[fw, 1]["forward_gflops"]
        assert f"| {fw} | 2x8x8 | 8 -> 4 |" in table and f"| {speedup:.2f} |" in table
