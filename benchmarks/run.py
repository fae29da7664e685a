"""Training-step speed and memory of jaxgan against eager PyTorch references.

One command::

    python -m benchmarks.run [--smoke] [--only dcgan32,fid] [--repeats N] [--out DIR]

For every benchmark the jaxgan step (the library's jit-compiled step, called as the
ahead-of-time compiled executable of that same ``jax.jit``) and its PyTorch reference
(:mod:`benchmarks.torch_refs`: same architecture, batch, optimizer and losses, eager mode) run
in two worker processes, one per framework, started by this command. After building the
models and untimed warm-up steps (``--warmup-seconds``, below), the workers time blocks of
steps in turn
(jax, torch, then torch, jax, ...), so both see the same machine load; a block is long
enough to take about ``--block-seconds``. Throughput is ``images per step * steps / seconds``
and the reported value is the median over the repeats; the ratio is the median of the
per-repeat ratios jaxgan / PyTorch (> 1: jaxgan is faster).

Also measured:

* jaxgan compile time: ``jit(step).lower(...)`` and ``.compile()`` (ahead of time), timed
  separately; for the FID network, the first call minus a steady-state call.
* peak memory. CPU: the increase of the worker's peak resident set size (``VmHWM``, reset
  through ``/proc/self/clear_refs`` after the models are built and freed memory is returned
  to the OS with ``malloc_trim``) over the steps, and XLA's own buffer plan
  (``compiled.memory_analysis()``: arguments + outputs + temporaries - aliased). GPU:
  ``torch.cuda.max_memory_allocated`` and jax's ``device.memory_stats()['peak_bytes_in_use']``.

Threads: both frameworks get every core this process may use (``usable_cores``, which
honours ``taskset`` and container CPU sets; ``nproc`` counts the machine's): PyTorch
through ``torch.set_num_threads`` (and one inter-op thread), XLA by default. PyTorch's OpenMP
threads are run with ``OMP_WAIT_POLICY=PASSIVE`` (``--torch-omp-wait default`` keeps
libgomp's spinning default): on a shared machine the spinning threads wait for each other
and collapse (DCGAN 32x32 went from ~40 to ~11 img/s at load ~6 on 2 cores).

Warm-up: each framework takes untimed steps until ``--warmup-seconds`` (default 15) have
passed or it has taken 25 steps, at least two. One step is not enough: the C heap of a
jaxgan process grows in bursts during its first tens of steps (one DCGAN 64 step at step 18
faulted in 152 k new pages, 1.2 s of system time, and doubled its time; none in the 42 steps
after it), and such a burst inside a 3-step block had made its median 30% slow. Both
frameworks get the same warm-up. A burst can still come later (one came in the first timed
block, after 20 warm-up steps); the workers report page faults and system time per block
(``*_page_faults_per_step``, ``*_sys_step_s`` in the JSON), and the default repeats (5) let
the median ratio stand with two such blocks.

Memory allocator: both workers call :func:`jaxgan.host.reuse_freed_memory` (glibc keeps
freed memory instead of unmapping every large block), which jaxgan's training loop also
does on CPU; ``--malloc default`` keeps glibc's defaults for both.

Results go to ``DIR/{full,smoke}.json`` and ``.md`` (machine, versions, date, load) and the
table is printed. ``--smoke`` runs tiny sizes, one repeat of one step, to check that
everything runs (``tests/test_benchmarks.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

# ------------------------------------------------------------------------------- benchmarks


@dataclasses.dataclass(frozen=True)
class Bench:
    """One benchmark: a jaxgan step, its PyTorch reference, full and smoke sizes."""

    name: str
    title: str
    step: str  # what one timed step is
    full: dict[str, Any]
    smoke: dict[str, Any]
    # Default repeats at full size: 5 (3 for CycleGAN 256), so that the median ratio
    # stands when up to two blocks hold a jaxgan heap-growth burst (see the module docstring).
    repeats: int
    target: float | None  # required ratio jaxgan / PyTorch on CPU (None: no target)
    needs: str = ""  # a jaxgan module that must exist, else the benchmark is a TODO
    note: str = ""


BENCHES: tuple[Bench, ...] = (
    Bench(
        "dcgan32",
        "DCGAN 32x32",
        "D step + G step (non-saturating BCE, Adam)",
        dict(resolution=32, batch=64, width=64),
        dict(resolution=8, batch=4, width=4),
        repeats=5,
        target=1.5,
    ),
    Bench(
        "dcgan64",
        "DCGAN 64x64",
        "D step + G step (non-saturating BCE, Adam)",
        dict(resolution=64, batch=64, width=64),
        dict(resolution=16, batch=4, width=4),
        repeats=5,
        target=1.5,
    ),
    Bench(
        "wgangp32",
        "WGAN-GP 32x32",
        "generator step = 5 critic steps (with penalty) + 1 G step",
        dict(resolution=32, batch=64, width=64, n_critic=5),
        dict(resolution=8, batch=4, width=4, n_critic=2),
        repeats=5,
        target=1.0,
        note="images/s counts the real images the critic sees: n_critic * batch per step",
    ),
    Bench(
        "cyclegan128",
        "CycleGAN 128x128, 9 blocks",
        "G+F step and D_X+D_Y step (LSGAN, cycle, identity, pool 50)",
        dict(image_size=128, batch=1, width=64, n_blocks=9, d_layers=3),
        dict(image_size=16, batch=1, width=4, n_blocks=1, d_layers=1),
        repeats=5,
        target=1.0,
        needs="jaxgan.train.cyclegan",
    ),
    Bench(
        "cyclegan256",
        "CycleGAN 256x256, 9 blocks",
        "G+F step and D_X+D_Y step (LSGAN, cycle, identity, pool 50)",
        dict(image_size=256, batch=1, width=64, n_blocks=9, d_layers=3),
        dict(image_size=16, batch=1, width=4, n_blocks=1, d_layers=1),
        repeats=3,
        target=1.0,
        needs="jaxgan.train.cyclegan",
    ),
    Bench(
        "esrgan",
        "ESRGAN x4, 23 RRDB blocks",
        "GAN stage: G step (VGG19 conv5_4 L1 + RaGAN + L1) + D step",
        dict(
            batch=4,
            patch=128,
            scale=4,
            features=64,
            growth=32,
            n_blocks=23,
            d_features=64,
            d_stages=5,
        ),
        dict(
            batch=1, patch=32, scale=4, features=8, growth=4, n_blocks=1, d_features=4, d_stages=2
        ),
        repeats=5,
        target=1.0,
        needs="jaxgan.train.superres",
        note=(
            "the paper's generator (23 RRDB blocks, features 64, growth 32); reduced for CPU "
            "to batch 4 (BasicSR: 16) of 128x128 HR / 32x32 LR patches; random VGG19 weights "
            "for the perceptual loss"
        ),
    ),
    Bench(
        "fid",
        "FID features (InceptionV3)",
        "forward pass: resize 32x32 -> 299x299, pool3 (2048)",
        dict(batch=50, image_size=32, dims=2048, resize=True),
        dict(batch=2, image_size=75, dims=64, resize=False),
        repeats=5,
        target=None,
        note="not a training step: no target; random weights (no weights file is read)",
    ),
)
BENCH_BY_NAME = {b.name: b for b in BENCHES}

# ---------------------------------------------------------------------------- worker side


class Runner:
    """What a worker times: ``step()`` enqueues one step, ``sync()`` waits for it."""

    images_per_step: int = 1
    info: dict[str, Any]

    def step(self) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def memory(self) -> dict[str, Any]:
        return {}


def _jax_dcgan(
    resolution: int,
    batch: int,
    width: int,
    n_critic: int = 1,
    wgan_gp: bool = False,
    latent: int = 100,
) -> Runner:
    import jax
    import jax.numpy as jnp
    import optax

    from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
    from jaxgan.state import GANState, create_train_state
    from jaxgan.train.gan_step import StepConfig, make_train_step

    g = DCGANGenerator(resolution, 3, width)
    d = DCGANDiscriminator(resolution, 3, width, norm="none" if wgan_gp else "batch")
    if wgan_gp:  # Gulrajani et al.: Adam(1e-4, 0, 0.9), lambda 10
        cfg = StepConfig(loss="wasserstein", n_critic=n_critic, gp_weight=10.0, latent_dim=latent)
        tx_g = tx_d = optax.adam(1e-4, b1=0.0, b2=0.9)
    else:  # Radford et al.: Adam(2e-4, 0.5)
        cfg = StepConfig(loss="non_saturating", latent_dim=latent)
        tx_g = tx_d = optax.adam(2e-4, b1=0.5, b2=0.999)
    kg, kd, ks, kx = jax.random.split(jax.random.PRNGKey(0), 4)
    state = GANState(
        g=create_train_state(g, tx_g, kg, jnp.zeros((1, latent)), train=False),
        d=create_train_state(d, tx_d, kd, jnp.zeros((1, resolution, resolution, 3)), train=False),
        step=jnp.array(0, jnp.int32),
        key=ks,
    )
    x = jax.random.uniform(kx, (n_critic * batch, resolution, resolution, 3), minval=-1.0)
    return JaxStepRunner(make_train_step(cfg), state, {"x": x}, n_critic * batch)


def _jax_cyclegan(image_size: int, batch: int, width: int, n_blocks: int, d_layers: int) -> Runner:
    import jax

    from jaxgan.train import cyclegan

    config = cyclegan.base_config()
    config.model.g_features = width
    config.model.d_features = width
    config.model.n_blocks = n_blocks
    config.model.d_layers = d_layers
    shape = (image_size, image_size, 3)
    state = cyclegan.make_init_state(config, shape, shape)(jax.random.PRNGKey(0))
    step = cyclegan.make_train_step(cyclegan.StepConfig())
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    batch_xy = {
        "x": jax.random.uniform(kx, (batch, *shape), minval=-1.0),
        "y": jax.random.uniform(ky, (batch, *shape), minval=-1.0),
    }
    return JaxStepRunner(step, state, batch_xy, batch)


def _jax_esrgan(
    batch: int,
    patch: int,
    scale: int,
    features: int,
    growth: int,
    n_blocks: int,
    d_features: int,
    d_stages: int,
) -> Runner:
    import jax
    import numpy as np

    from jaxgan.nets.vgg import CONV_CHANNELS
    from jaxgan.train import superres

    config = superres.base_config()
    config.family, config.stage, config.scale, config.patch_size = "esrgan", "gan", scale, patch
    m = config.model
    m.generator, m.features, m.growth, m.n_blocks = "rrdb", features, growth, n_blocks
    m.d_features, m.d_stages, m.d_kernel, m.d_dense = d_features, d_stages, 4, 100
    config.b1, config.b2 = 0.9, 0.99  # BasicSR's ESRGAN optimizer
    config.vgg_weights = "random"  # only switches the perceptual term on; weights below
    cfg = superres.step_config(config)
    rng = np.random.default_rng(0)
    vgg = {
        name: {
            "kernel": (rng.normal(size=(3, 3, ci, co)) * np.sqrt(2 / (9 * ci))).astype(np.float32),
            "bias": np.zeros(co, np.float32),
        }
        for name, (ci, co) in CONV_CHANNELS.items()
    }
    state = superres.make_init_fn(config)(jax.random.PRNGKey(0))
    step = superres.make_train_step("gan", cfg, vgg)
    k_lr, k_hr = jax.random.split(jax.random.PRNGKey(1))
    sr_batch = {
        "lr": jax.random.uniform(k_lr, (batch, patch // scale, patch // scale, 3), minval=-1.0),
        "hr": jax.random.uniform(k_hr, (batch, patch, patch, 3), minval=-1.0),
    }
    return JaxStepRunner(step, state, sr_batch, batch)


def _jax_fid(batch: int, image_size: int, dims: int, resize: bool) -> Runner:
    import jax

    from benchmarks.torch_refs import fid_state_dict
    from jaxgan.metrics.fid import InceptionFeatures
    from jaxgan.nets.inception import params_from_torch_state_dict

    variables = jax.device_put(params_from_torch_state_dict(fid_state_dict(0)))
    features = InceptionFeatures(variables, dims=dims, input_range=(0.0, 1.0), resize=resize)
    images = jax.random.uniform(jax.random.PRNGKey(0), (batch, image_size, image_size, 3))
    return JaxCallRunner(lambda: features(images), batch)


class JaxStepRunner(Runner):
    """A library train step ``step(state, batch) -> (state, metrics)``.

    A ``jax.jit`` object, or a step with ``lower(state, batch)`` like one, is compiled
    ahead of time (``lower`` and ``compile`` timed apart) and its executable is what runs,
    called with ``(state, batch, *step.bound_args)`` when the step binds further
    arguments (ESRGAN's VGG parameters). A plain function wrapping one is called as is,
    and its compile time is its first call minus its second.
    """

    def __init__(self, step: Any, state: Any, batch: dict, images_per_step: int) -> None:
        import jax

        self.state, self.batch, self.out = state, batch, None
        self.images_per_step = images_per_step
        self.compiled = None
        if hasattr(step, "lower"):
            t = time.perf_counter()
            lowered = step.lower(state, batch)
            t_lower = time.perf_counter() - t
            t = time.perf_counter()
            self.compiled = lowered.compile()
            t_compile = time.perf_counter() - t
            bound = tuple(getattr(step, "bound_args", ()))
            compiled = self.compiled
            self.fn = (lambda s, b: compiled(s, b, *bound)) if bound else compiled
            self.info = {"lower_s": t_lower, "compile_s": t_compile, "compile_method": "aot"}
        else:
            self.fn = step
            t = time.perf_counter()
            self.step()
            jax.block_until_ready((self.state, self.out))
            first = time.perf_counter() - t
            t = time.perf_counter()
            self.step()
            jax.block_until_ready((self.state, self.out))
            steady = time.perf_counter() - t
            self.info = {"compile_s": max(first - steady, 0.0), "compile_method": "first-steady"}

    def step(self) -> None:
        self.state, self.out = self.fn(self.state, self.batch)

    def sync(self) -> None:
        import jax

        jax.block_until_ready((self.state, self.out))

    def memory(self) -> dict[str, Any]:
        m = None if self.compiled is None else self.compiled.memory_analysis()
        if m is None:
            return {}
        plan = (
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        )
        return {"xla_temp_mb": m.temp_size_in_bytes / 2**20, "xla_total_mb": plan / 2**20}


class JaxCallRunner(Runner):
    """A jitted function of no arguments; compile time = first call - a steady call."""

    def __init__(self, fn: Callable[[], Any], images_per_step: int) -> None:
        import jax

        self.fn, self.out = fn, None
        t = time.perf_counter()
        jax.block_until_ready(fn())
        first = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(fn())
        steady = time.perf_counter() - t
        self.images_per_step = images_per_step
        self.info = {"compile_s": max(first - steady, 0.0), "compile_method": "first-steady"}

    def step(self) -> None:
        self.out = self.fn()

    def sync(self) -> None:
        import jax

        jax.block_until_ready(self.out)


class TorchRunner(Runner):
    """A ``torch_refs.make_*`` step."""

    def __init__(self, made: tuple[Callable[[], Any], int], device: str) -> None:
        self.fn, self.images_per_step = made
        self.device = device
        self.info = {}

    def step(self) -> None:
        self.fn()

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


def build_jax(name: str, kw: dict[str, Any]) -> Runner:
    """The jaxgan runner of benchmark ``name`` with sizes ``kw``."""
    if name in ("dcgan32", "dcgan64"):
        return _jax_dcgan(**kw)
    if name == "wgangp32":
        return _jax_dcgan(**kw, wgan_gp=True)
    if name.startswith("cyclegan"):
        return _jax_cyclegan(**kw)
    if name == "esrgan":
        return _jax_esrgan(**kw)
    if name == "fid":
        return _jax_fid(**kw)
    raise ValueError(f"no jaxgan runner for {name!r}")


def build_torch(name: str, kw: dict[str, Any], device: str) -> Runner:
    """The PyTorch reference runner of benchmark ``name`` with sizes ``kw``."""
    from benchmarks import torch_refs as tr

    if name in ("dcgan32", "dcgan64"):
        return TorchRunner(tr.make_dcgan(**kw, device=device), device)
    if name == "wgangp32":
        return TorchRunner(tr.make_wgan_gp(**kw, device=device), device)
    if name.startswith("cyclegan"):
        kw = dict(kw)
        ngf = kw.pop("width")
        return TorchRunner(tr.make_cyclegan(**kw, ngf=ngf, ndf=ngf, device=device), device)
    if name == "esrgan":
        return TorchRunner(tr.make_esrgan(**kw, device=device), device)
    if name == "fid":
        return TorchRunner(tr.make_fid(**kw, device=device), device)
    raise ValueError(f"no PyTorch runner for {name!r}")


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    """Free what can be freed, then make the peak RSS (VmHWM) the current RSS."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def usable_cores() -> int:
    """The cores this process may run on (``taskset``, container CPU sets), which
    ``os.cpu_count()`` ignores: PyTorch gets one thread per core, as XLA sizes its pools."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity on this platform
        return os.cpu_count() or 1


class Worker:
    """One framework's process: builds runners and times them on command."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.runner: Runner | None = None
        self.rss0 = 0
        if framework == "torch":
            import torch

            from benchmarks.torch_refs import set_threads

            set_threads(usable_cores())
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            if self.device == "cuda":
                torch.backends.cudnn.benchmark = True
            self.threads = torch.get_num_threads()
        else:
            import jax

            self.device = jax.devices()[0].platform
            self.threads = usable_cores()

    def setup(self, name: str, kw: dict[str, Any]) -> dict[str, Any]:
        self.runner = None
        _reset_peak_rss()
        if self.framework == "jax":
            runner = build_jax(name, kw)
        else:
            runner = build_torch(name, kw, self.device)
        self.runner = runner
        self._reset_device_peak()
        _reset_peak_rss()
        self.rss0 = _rss_kb("VmRSS")
        return {"images_per_step": runner.images_per_step, **runner.info}

    def _reset_device_peak(self) -> None:
        if self.framework == "torch" and self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def time(self, iters: int) -> tuple[float, float, int, float]:
        """Wall-clock and process CPU seconds (all threads) of ``iters`` steps, and the
        minor page faults and system CPU seconds among them."""
        assert self.runner is not None
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        c = time.process_time()
        t = time.perf_counter()
        for _ in range(iters):
            self.runner.step()
        self.runner.sync()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        return wall, cpu, r1.ru_minflt - r0.ru_minflt, r1.ru_stime - r0.ru_stime

    def memory(self) -> dict[str, Any]:
        assert self.runner is not None
        out: dict[str, Any] = {"peak_rss_delta_mb": (_rss_kb("VmHWM") - self.rss0) / 1024}
        out.update(self.runner.memory())
        if self.device != "cpu":
            if self.framework == "torch":
                import torch

                out["device_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            else:
                import jax

                stats = jax.devices()[0].memory_stats() or {}
                if "peak_bytes_in_use" in stats:
                    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
        return out

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "threads": self.threads}


def worker_main(framework: str) -> None:
    """Serve JSON-line commands on stdin; answers go to the original stdout only."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed (libraries, XLA) goes to stderr
    sys.stdout = sys.stderr
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.environ.get("JAXGAN_BENCH_MALLOC", "reuse") == "reuse":
        # Both frameworks alike, as jaxgan's training loop does on CPU (see jaxgan.host).
        from jaxgan.host import reuse_freed_memory

        reuse_freed_memory()
    worker: Worker | None = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "exit":
                break
            if worker is None:
                worker = Worker(framework)
            if cmd == "describe":
                reply: Any = worker.describe()
            elif cmd == "setup":
                reply = worker.setup(msg["name"], msg["kw"])
            elif cmd == "time":
                reply = worker.time(int(msg["iters"]))
            elif cmd == "memory":
                reply = worker.memory()
            elif cmd == "teardown":
                worker.runner = None
                gc.collect()
                reply = None
            else:
                raise ValueError(f"unknown command {cmd!r}")
            answer = {"ok": reply}
        except Exception as e:  # reported to the parent, which records the failure
            answer = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        proto.write(json.dumps(answer) + "\n")
        proto.flush()


# ---------------------------------------------------------------------------- parent side


class WorkerError(RuntimeError):
    """A command failed inside a worker."""


class WorkerProc:
    """The parent's handle on a worker process."""

    def __init__(self, framework: str, env: dict[str, str], log: TextIO) -> None:
        self.framework = framework
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.run", "--worker", framework],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=root,
            env=env,
        )

    def call(self, cmd: str, **kw: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"the {self.framework} worker died (see its log)")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.framework}: {answer['error']}\n{answer['traceback']}")
        return answer["ok"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("exit")
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def worker_env(framework: str, torch_omp_wait: str, malloc: str = "reuse") -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["JAXGAN_BENCH_MALLOC"] = malloc
    if framework == "torch":
        if torch_omp_wait == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        env.pop("JAX_PLATFORMS", None)
    return env


def run_bench(
    bench: Bench,
    kw: dict[str, Any],
    repeats: int,
    block_s: float,
    workers: dict[str, WorkerProc],
    smoke: bool,
    warmup_s: float = 15.0,
) -> dict[str, Any]:
    """Set both runners up, warm them, time interleaved blocks; the result record."""
    res: dict[str, Any] = {"name": bench.name, "sizes": kw, "repeats": repeats}
    setup = {}
    for fw in ("torch", "jax"):  # jax last: its compile time runs with torch idle
        t = time.perf_counter()
        setup[fw] = workers[fw].call("setup", name=bench.name, kw=kw)
        setup[fw]["setup_s"] = time.perf_counter() - t
    ips = {fw: setup[fw]["images_per_step"] for fw in setup}
    if ips["jax"] != ips["torch"]:
        raise WorkerError(f"images per step differ: {ips}")
    res["images_per_step"] = ips["jax"]
    res["jax_setup"], res["torch_setup"] = setup["jax"], setup["torch"]
    # Warm-up (the first steps allocate; see the module docstring); the last warm-up step
    # sizes the blocks.
    iters, warmup_steps = {}, {}
    for fw in ("jax", "torch"):
        warm = workers[fw].call("time", iters=1)[0]
        n, spent = 1, warm
        while not smoke and n < 25 and (n < 2 or spent < warmup_s):
            warm = workers[fw].call("time", iters=1)[0]
            n, spent = n + 1, spent + warm
        warmup_steps[fw] = n
        iters[fw] = 1 if smoke else max(1, min(50, round(block_s / max(warm, 1e-6))))
    res["iters_per_block"], res["warmup_steps"] = iters, warmup_steps
    wall: dict[str, list[float]] = {"jax": [], "torch": []}
    cpu: dict[str, list[float]] = {"jax": [], "torch": []}
    faults_per_step: dict[str, list[float]] = {"jax": [], "torch": []}
    sys_per_step: dict[str, list[float]] = {"jax": [], "torch": []}
    for r in range(repeats):
        for fw in ("jax", "torch") if r % 2 == 0 else ("torch", "jax"):
            w, c, faults, sys_s = workers[fw].call("time", iters=iters[fw])
            wall[fw].append(w / iters[fw])
            cpu[fw].append(c / iters[fw])
            faults_per_step[fw].append(faults / iters[fw])
            sys_per_step[fw].append(sys_s / iters[fw])
    for fw in ("jax", "torch"):
        res[f"{fw}_step_s"] = wall[fw]
        res[f"{fw}_cpu_step_s"] = cpu[fw]
        res[f"{fw}_page_faults_per_step"] = faults_per_step[fw]
        res[f"{fw}_sys_step_s"] = sys_per_step[fw]
        res[f"{fw}_img_s"] = res["images_per_step"] / statistics.median(wall[fw])
        res[f"{fw}_memory"] = workers[fw].call("memory")
        workers[fw].call("teardown")
    ratios = [t / j for j, t in zip(wall["jax"], wall["torch"], strict=True)]
    res["ratio_per_repeat"] = ratios
    res["ratio"] = statistics.median(ratios)
    res["cpu_ratio"] = statistics.median(cpu["torch"]) / statistics.median(cpu["jax"])
    return res


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, versions, date, load."""
    mem_gb = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem_gb = round(int(f.readline().split()[1]) / 2**20, 1)

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "nproc": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu": cpu_description(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "jax": version("jax"),
        "jaxlib": version("jaxlib"),
        "flax": version("flax"),
        "torch": version("torch"),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU's model name with its family and model numbers and AVX-512, from
    /proc/cpuinfo (``cpuinfo``: its text; read when None). The ratios depend on the
    microarchitecture, which a model name such as 'AMD EPYC' does not tell: on this
    project's machines, Zen 4 (family 25) and Zen 5 (family 26) gave PyTorch's direct
    convolutions and XLA's matrix products very different speeds."""
    if cpuinfo is None:
        cpuinfo = ""
        with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or "unknown"
    extra = [f"{k} {fields[k]}" for k in ("cpu family", "model") if k in fields]
    if "avx512f" in fields.get("flags", "").split():
        extra.append("AVX-512")
    return f"{name} ({', '.join(extra)})" if extra else name


def _fmt(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _rate(v: float) -> str:
    """Images per second to three significant digits, whole numbers from 100 up (``:.3g``
    would print 1000 as '1e+03')."""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table with the machine description."""
    m = report["machine"]
    lines = [
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['nproc']} x {m['cpu']}, {m['memory_gb']} GB, jaxgan on "
        f"{report['devices']['jax']}, PyTorch on {report['devices']['torch']} "
        f"({report['devices']['torch_threads']} threads, OMP_WAIT_POLICY "
        f"{report['torch_omp_wait']}); malloc {report.get('malloc', 'default')} in both; "
        f"warm-up {report.get('warmup_s', 0):g} s (at most 25 steps) each; "
        f"python {m['python']}, jax {m['jax']} (jaxlib "
        f"{m['jaxlib']}), flax {m['flax']}, torch {m['torch']}; {m['date']}; load average "
        f"{m['loadavg_start'][0]:.1f} at the start, {report['loadavg_end'][0]:.1f} at the end "
        f"(the machine is shared: ratios are measured in the same run, interleaved); "
        f"total {report['total_s'] / 60:.1f} min.",
        "",
        "| benchmark | one step | batch | jaxgan img/s | PyTorch img/s | ratio jaxgan/PyTorch "
        "(wall) | ratio (CPU time) | target | met | jaxgan compile s (lower + compile) "
        "| peak memory MB jaxgan / PyTorch | XLA buffers MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        b = BENCH_BY_NAME[r["name"]]
        target = "—" if b.target is None else f"≥ {b.target:g}"
        if r["status"] != "ok":
            lines.append(
                f"| {b.title} | {b.step} | — | — | — | — | — | {target} | {r['status']} "
                f"| — | — | {r.get('reason', '')} |"
            )
            continue
        js = r["jax_setup"]
        compile_s = js.get("lower_s", 0.0) + js["compile_s"]
        how = (
            f"{js['lower_s']:.1f} + {js['compile_s']:.1f} = {compile_s:.1f}"
            if "lower_s" in js
            else f"{compile_s:.1f} (first call − steady call)"
        )
        met = "—" if b.target is None else ("yes" if r["ratio"] >= b.target else "**no**")
        mem_j, mem_t = r["jax_memory"], r["torch_memory"]
        dev_j, dev_t = mem_j.get("device_peak_mb"), mem_t.get("device_peak_mb")
        mem = (
            f"{_fmt(dev_j, 0)} / {_fmt(dev_t, 0)} (device)"
            if dev_j is not None or dev_t is not None
            else f"{_fmt(mem_j['peak_rss_delta_mb'], 0)} / {_fmt(mem_t['peak_rss_delta_mb'], 0)}"
        )
        spread = f"{min(r['ratio_per_repeat']):.2f}–{max(r['ratio_per_repeat']):.2f}"
        batch = r["sizes"].get("batch", "")
        rates = f"{_rate(r['jax_img_s'])} | {_rate(r['torch_img_s'])}"
        lines.append(
            f"| {b.title} | {b.step} | {batch} | {rates} "
            f"| **{r['ratio']:.2f}** ({spread}, {r['repeats']} rep.) | {r['cpu_ratio']:.2f} "
            f"| {target} | {met} | {how} | {mem} | {_fmt(mem_j.get('xla_total_mb'), 0)} |"
        )
    notes = [
        f"- {BENCH_BY_NAME[r['name']].title}: {BENCH_BY_NAME[r['name']].note}"
        for r in report["results"]
        if BENCH_BY_NAME[r["name"]].note
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one step: checks only")
    p.add_argument("--only", default="", help=f"comma-separated subset of {list(BENCH_BY_NAME)}")
    p.add_argument("--repeats", type=int, default=0, help="timed blocks per framework (0: default)")
    p.add_argument("--block-seconds", type=float, default=2.0, help="target length of a block")
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=15.0,
        help="untimed steps per framework before timing: this long (at most 25 steps)",
    )
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--torch-omp-wait", choices=("passive", "default"), default="passive")
    p.add_argument(
        "--malloc",
        choices=("reuse", "default"),
        default="reuse",
        help="reuse: both workers keep freed memory (jaxgan.host.reuse_freed_memory, what "
        "jaxgan's training loop does on CPU); default: glibc's defaults",
    )
    p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCH_BY_NAME)
    unknown = [n for n in names if n not in BENCH_BY_NAME]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCH_BY_NAME)}")
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.out, exist_ok=True)
    tag = "smoke" if args.smoke else "full"
    log_path = os.path.join(tempfile.gettempdir(), f"jaxgan-benchmarks-{tag}-{os.getpid()}.log")
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "command": command.strip(),
        "mode": tag,
        "machine": machine(),
        "torch_omp_wait": args.torch_omp_wait,
        "malloc": args.malloc,
        "warmup_s": 0.0 if args.smoke else args.warmup_seconds,
        "results": [],
    }
    failures = 0
    with open(log_path, "w") as log:
        workers: dict[str, WorkerProc] = {}

        def start() -> None:
            for fw in ("jax", "torch"):
                env = worker_env(fw, args.torch_omp_wait, args.malloc)
                workers[fw] = WorkerProc(fw, env, log)

        def stop() -> None:
            for w in workers.values():
                w.close()
            workers.clear()

        start()
        desc = {fw: workers[fw].call("describe") for fw in workers}
        report["devices"] = {
            "jax": desc["jax"]["device"],
            "torch": desc["torch"]["device"],
            "torch_threads": desc["torch"]["threads"],
        }
        for i, name in enumerate(names):
            bench = BENCH_BY_NAME[name]
            kw = bench.smoke if args.smoke else bench.full
            repeats = 1 if args.smoke else (args.repeats or bench.repeats)
            if bench.needs and importlib.util.find_spec(bench.needs) is None:
                reason = f"TODO: {bench.needs} does not exist yet"
                report["results"].append({"name": name, "status": "todo", "reason": reason})
                print(f"[{name}] {reason}", flush=True)
                continue
            if i > 0 and not args.smoke:  # fresh processes: clean peak memory, no caches
                stop()
                start()
            print(f"[{name}] {kw} ...", flush=True)
            try:
                res = run_bench(
                    bench, kw, repeats, args.block_seconds, workers, args.smoke, args.warmup_seconds
                )
                res["status"] = "ok"
                print(
                    f"[{name}] jaxgan {_rate(res['jax_img_s'])} img/s, PyTorch "
                    f"{_rate(res['torch_img_s'])} img/s, ratio {res['ratio']:.2f} (CPU time "
                    f"{res['cpu_ratio']:.2f}), compile "
                    f"{res['jax_setup'].get('lower_s', 0) + res['jax_setup']['compile_s']:.1f} s",
                    flush=True,
                )
            except WorkerError as e:
                failures += 1
                res = {"name": name, "status": "error", "reason": str(e).splitlines()[0]}
                print(f"[{name}] FAILED: {e}", file=sys.stderr, flush=True)
                stop()
                start()
            report["results"].append(res)
        stop()
    report["loadavg_end"] = os.getloadavg()
    report["total_s"] = time.perf_counter() - t_start
    with open(os.path.join(args.out, f"{tag}.json"), "w") as f:
        json.dump(report, f, indent=1)
    table = markdown(report)
    with open(os.path.join(args.out, f"{tag}.md"), "w") as f:
        f.write(table)
    print()
    print(table)
    if failures:
        print(f"{failures} benchmark(s) failed; worker log: {log_path}", file=sys.stderr)
    else:
        os.remove(log_path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
