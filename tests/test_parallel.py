"""Many devices, many hosts, many seeds (jaxgan.parallel, experiments.sweep).

The device counts are fixed when JAX starts, so every multi-device check runs in a
subprocess with simulated CPU devices (``--xla_force_host_platform_device_count``); this
process keeps its single device. Every subprocess has a timeout: a hang fails the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxgan import parallel

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "parallel_scripts"
TOL = 1e-5


def _env(devices: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAXGAN_", "JAX_COORDINATOR", "XLA_FLAGS"))
    }
    # Optimisation level 0: the programs are tiny, and XLA's CPU compile time dominates.
    env["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["TQDM_DISABLE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _start(script: str, args: list[str], devices: int, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *args],
        env=_env(devices, **extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(procs: list[subprocess.Popen], timeout: float) -> None:
    """Wait for all; on a timeout or a failure kill the rest and fail with their output."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for p in procs:
            left = max(1.0, deadline - time.monotonic())
            out, _ = p.communicate(timeout=left)
            outputs.append(out)
            assert p.returncode == 0, f"{p.args} exited with {p.returncode}:\n{out[-4000:]}"
    except subprocess.TimeoutExpired:
        pytest.fail(f"subprocess timed out after {timeout} s: {procs[len(outputs)].args}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


# --------------------------------------------------------------------------- 8 devices


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("eight") / "result.json"
    _finish([_start("step_equivalence.py", [str(out)], devices=8)], timeout=600)
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp", "ralsgan"])
@pytest.mark.parametrize("path", ["pmap", "sharding"])
def test_steps_on_8_devices_equal_one_device(eight_devices, name, path):
    assert eight_devices["devices"] == 8
    res = eight_devices[name]
    assert res["moved"] > 100 * TOL  # the steps did change the parameters
    got = res[path]
    assert got["step"] >= 2
    assert got["params"] < TOL, got
    assert got["metrics"] < TOL, got  # relative (gp and gradient norms are not O(1))
    if name == "dcgan":  # BatchNorm in G and D: the statistics are the global batch's
        assert res["has_batch_stats"]
        assert got["stats"] < TOL, got
    if name == "wgan_gp":
        assert "gp" in res["metric_names"]


def test_sharded_step_runs_the_generator_on_each_devices_rows_only(eight_devices):
    # The compiled per-device program of the sharded DCGAN step (batch 16 of 16x16 images
    # on 8 devices) holds images of 2 rows, none of all 16: the noise drawn inside the step
    # is split like the batch (parallel.split_rows); drawn replicated, every device had run
    # the generator on the whole batch (26 such arrays, all results still equal).
    images = eight_devices["images"]
    assert images["global"] == 0, images
    assert images["per_device"] > 10, images


def test_pmap_through_the_loop_resumes_and_matches_one_device(eight_devices):
    loop = eight_devices["loop"]
    assert loop["step"] == 4 and loop["logged_steps"] == [1, 2, 3, 4]
    assert loop["params"] < TOL, loop
    assert loop["single_device"]  # the loop returns one copy, not the replicas


def test_indivisible_batch_is_a_clear_error_before_compiling(eight_devices):
    errors = eight_devices["errors"]
    for kind in ("sharding", "pmap"):
        assert errors[kind] is not None, kind
        assert "B=12" in errors[kind] and "8 devices" in errors[kind], errors[kind]
    assert "B=10" in errors["split"] and "n_critic=2" in errors["split"], errors["split"]


@pytest.fixture(scope="module")
def families_on_8_devices(tmp_path_factory) -> dict:
    """Conditional GAN, InfoGAN, CycleGAN, SRGAN and ESRGAN in ONE subprocess (compiling
    dominates; one JAX start-up for all of them)."""
    out = tmp_path_factory.mktemp("families") / "result.json"
    _finish([_start("families.py", [str(out)], devices=8)], timeout=600)
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", ["cgan", "infogan", "cyclegan", "srgan_psnr", "srgan", "esrgan"])
@pytest.mark.parametrize("path", ["pmap", "sharding"])
def test_other_families_on_8_devices_equal_one_device(families_on_8_devices, name, path):
    res = families_on_8_devices[name]
    assert families_on_8_devices["devices"] == 8
    assert res["moved"] > 100 * TOL  # the steps did change the parameters
    got = res[path]
    assert got["step"] == 2
    assert got["params"] < TOL, got
    assert got["metrics"] < TOL, got  # relative
    if name == "cyclegan":  # the pools fill and swap within the first step (batch 16 > 6)
        assert res["pool_counts"] == [6, 6]
        assert got["pools"] < TOL, got
    else:  # BatchNorm in G and/or D (and InfoGAN's Q head): the global batch's statistics
        assert res["has_batch_stats"]
        assert got["stats"] < TOL, got
    if name == "infogan":
        assert "info_loss" in res["metric_names"]
    if name == "esrgan":
        assert "adversarial" in res["metric_names"]


def test_pmap_loop_of_an_sr_run_resumes_and_matches_one_device(families_on_8_devices):
    loop = families_on_8_devices["loop"]
    assert loop["step"] == 2 and loop["logged_steps"] == [1, 2]
    assert loop["scored"] and loop["single_device"]
    assert loop["params"] < TOL, loop


def test_indivisible_cyclegan_batch_is_a_clear_error(families_on_8_devices):
    errors = families_on_8_devices["errors"]
    for kind in ("sharding", "pmap"):
        assert errors[kind] is not None, kind
        assert "B=12" in errors[kind] and "8 devices" in errors[kind], errors[kind]


# --------------------------------------------------------------------------- in process


def test_check_divisible_names_batch_and_devices():
    parallel.check_divisible(16, 8)
    parallel.check_divisible(32, 8, chunks=2)
    with pytest.raises(ValueError, match=r"B=12 .* 8 devices"):
        parallel.check_divisible(12, 8)
    with pytest.raises(ValueError, match=r"B=12 .*n_critic=2.* 8 devices"):
        parallel.check_divisible(24, 8, chunks=2)


def test_split_for_pmap_gives_each_device_its_share_of_every_chunk():
    rows = np.arange(2 * 8)  # 2 critic chunks of B=8 rows, 4 devices
    out = parallel.split_for_pmap({"x": rows}, 4, chunks=2)["x"]
    assert out.shape == (4, 4)
    for d in range(4):
        # device d: rows [2d, 2d+2) of chunk 0, then the same rows of chunk 1
        np.testing.assert_array_equal(out[d], [2 * d, 2 * d + 1, 8 + 2 * d, 8 + 2 * d + 1])
    np.testing.assert_array_equal(
        parallel.split_for_pmap({"x": rows}, 4)["x"].reshape(-1), rows
    )  # one chunk: contiguous slices


def test_maybe_initialize_distributed_reads_the_environment():
    assert parallel.maybe_initialize_distributed({}) is False  # one process: nothing to do
    with pytest.raises(ValueError, match="JAXGAN_NUM_PROCESSES"):
        parallel.maybe_initialize_distributed({"JAXGAN_NUM_PROCESSES": "two"})
    assert not jax.distributed.is_initialized()


def test_unknown_parallel_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown parallel 'tpu'"):
        parallel.for_task("tpu", None)


# --------------------------------------------------------------------------- many hosts


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _params(npz) -> dict[str, np.ndarray]:
    return {k: npz[k] for k in npz.files if k.startswith("[")}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def test_two_processes_match_one_process_and_restore_on_one_device(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    multi, single = tmp_path / "multi", tmp_path / "single"
    procs = [
        _start(
            "multihost.py",
            ["train", str(multi), str(tmp_path / f"multi_{i}.npz")],
            devices=2,
            JAXGAN_COORDINATOR_ADDRESS=address,
            JAX_COORDINATOR_BIND_ADDRESS=address,  # loopback only
            JAXGAN_NUM_PROCESSES="2",
            JAXGAN_PROCESS_ID=str(i),
        )
        for i in range(2)
    ]
    procs.append(_start("multihost.py", ["train", str(single), str(tmp_path / "single.npz")], 4))
    _finish(procs, timeout=400)
    m = np.load(tmp_path / "multi_0.npz")  # written by process 0 only
    assert not (tmp_path / "multi_1.npz").exists()
    s = np.load(tmp_path / "single.npz")
    assert int(m["process_count"]) == 2 and bool(m["distributed"])
    assert int(m["device_count"]) == 4 and int(s["device_count"]) == 4
    assert float(m["batch_diff"]) == 0.0  # the slices of the processes make the global batch
    assert _max_diff(_params(m), _params(s)) < TOL
    # logs and samples come from process 0 alone: one row per step
    rows = [json.loads(line) for line in (multi / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]

    # The checkpoint both processes wrote (4 devices) restores on one device.
    _finish([_start("multihost.py", ["restore", str(multi), str(tmp_path / "r.npz")], 1)], 200)
    r = np.load(tmp_path / "r.npz")
    assert int(r["device_count"]) == 1 and bool(r["single_device"]) and int(r["step"]) == 3
    assert _max_diff(_params(r), _params(m)) == 0.0


# --------------------------------------------------------------------------- many seeds


def test_vmapped_seeds_equal_separate_runs_and_resume(tmp_path):
    out = tmp_path / "seeds.json"
    _finish([_start("seeds.py", [str(tmp_path / "sweep"), str(out)], devices=1)], timeout=400)
    res = json.loads(out.read_text())
    assert res["steps"] == [4, 4]
    assert max(res["diffs"]) < TOL, res["diffs"]  # vmapped (and resumed) == alone
    assert res["spread"] > 100 * TOL  # the seeds are different runs
    assert res["mismatch"] is not None and "[0, 1]" in res["mismatch"]
    for seed in ("0", "1"):
        assert res["logged_steps"][seed] == [1, 2, 3, 4]
        assert {"step_000002.png", "step_000004.png", "final.png"} <= set(res["samples"][seed])
    runs = res["summary"]["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert "modes" in res["summary"]["over_seeds"]
    modes = [r["modes"] for r in runs]
    assert res["summary"]["over_seeds"]["modes"]["mean"] == pytest.approx(np.mean(modes))


def test_split_rows_constrains_batch_arrays_only_inside_a_data_mesh():
    import jax.numpy as jnp
    from jax.sharding import AxisType, PartitionSpec

    tree = {"z": jnp.ones((4, 3)), "s": jnp.float32(2.0)}
    assert parallel.split_rows(tree) is tree  # no mesh: untouched

    mesh = jax.make_mesh((1,), (parallel.DATA,), axis_types=(AxisType.Auto,))
    with jax.set_mesh(mesh):
        auto = jax.jit(parallel.split_rows).lower(tree).as_text()
    assert '<@mesh, [{"data"}, {}]>' in auto, auto  # z's rows over 'data'
    assert auto.count("sharding_constraint") == 1  # the scalar is left alone
    mesh = jax.make_mesh((1,), (parallel.DATA,), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):  # an Explicit axis is resharded (a constraint would assert)
        out = jax.jit(parallel.split_rows)(tree)
    assert out["z"].sharding.spec == PartitionSpec(parallel.DATA, None)
    other = jax.make_mesh((1,), ("model",), axis_types=(AxisType.Auto,))
    with jax.set_mesh(other):  # no 'data' axis: untouched
        assert "sharding_constraint" not in jax.jit(parallel.split_rows).lower(tree).as_text()


def test_stack_and_unstack_states_round_trip():
    states = [{"a": np.full((2,), i, np.float32), "b": np.int32(i)} for i in range(3)]
    stacked = parallel.stack_states(states)
    assert stacked["a"].shape == (3, 2) and stacked["b"].shape == (3,)
    for i, s in enumerate(parallel.unstack_states(stacked)):
        np.testing.assert_array_equal(s["a"], states[i]["a"])
        assert int(s["b"]) == i


def test_parse_seeds():
    from experiments.sweep import parse_seeds

    assert parse_seeds("0,1,2,3") == [0, 1, 2, 3]
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError, match="distinct"):
        parse_seeds("1,1")
    with pytest.raises(ValueError, match="cannot read"):
        parse_seeds("a")
