"""Process-level settings for running on the CPU backend.

XLA's CPU backend allocates the buffers of each execution (the activations of a train step:
hundreds of MB to GB) with the C library's ``malloc``, from its own worker threads. glibc
serves every block above its mmap threshold (32 MiB at most), and every large block asked
for on a thread with its own arena, with a fresh ``mmap``, and unmaps it when it is freed:
each step faults in, and the kernel zeroes, its whole working set again. The FID network
on 50 images took 2.0 million page faults (8 GB) per call.

:func:`reuse_freed_memory` makes glibc keep freed memory and serve all threads from one
heap. Measured on this project's 2-core benchmark machine, one fresh process per setting,
alternated (``benchmarks/NOTES.md``): FID features of 50 images 9.0 -> 4.9 s (page
faults per call 2.0 M -> 4 k), DCGAN 64x64 step 1.22 -> 1.14 s. Setting only the mmap and
trim thresholds is not enough: XLA's threads allocate from their own arenas, which still
map every large block (FID: 7.8 s, 1.3 M faults).

Nothing here runs at import. :func:`jaxgan.train.loop.train_and_evaluate` (config
``reuse_host_memory``, default on; ``--reuse_host_memory false`` turns it off) and the
command-line tools (``python -m jaxgan.fid``, ``jaxgan.translate``, ``jaxgan.upscale``,
``jaxgan.sample``) call :func:`reuse_freed_memory_on_cpu` before JAX starts a backend (a
CycleGAN 256x256 generator forward: 1.50 -> 0.72 s, 698 k -> 4 k page faults). The arena
setting only reaches threads that have not allocated yet, so calling it after JAX has
started computing leaves XLA's worker threads as they were.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import sys

__all__ = ["cpu_backend_expected", "reuse_freed_memory", "reuse_freed_memory_on_cpu"]

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# -1 disables trimming: glibc's mallopt(3) documents it, and stores the int as a size_t.
# The largest positive int (2 GiB) is not enough: a CycleGAN 256 step frees more than that at
# the top of the heap, and trimming it cost 700 k page faults (2.8 GB) and 15.6 s instead of
# 13.7 s per step.
_TRIM_THRESHOLD = -1

_applied = False


def reuse_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse rather than return it to the OS.

    Large blocks then come from the heap instead of per-allocation ``mmap`` (``M_MMAP_MAX``
    0), every thread allocates from that one heap (``M_ARENA_MAX`` 1; a thread's own arena
    would still map large blocks) and freed memory is kept (``M_TRIM_THRESHOLD`` -1: the
    heap is never trimmed), so a train step that allocates the same buffers every iteration
    reuses pages that are already mapped. The price: the process keeps its peak resident
    memory until it exits, that peak can be higher (one heap fragments: a DCGAN 64 step's
    peak RSS 344 -> 678 MB in one benchmark run; a CycleGAN 256 process holds 9.1 GB), and
    threads share one malloc arena. Affects the whole process, PyTorch included if it is
    loaded. Call it before JAX starts computing (see the module docstring).

    Returns True when the settings are in effect (Linux with glibc), False where they do
    not apply (other C libraries, other systems); calling it again is a no-op.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    ok = all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_MAX, 0),
            (_M_ARENA_MAX, 1),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
        )
    )
    _applied = ok
    return ok


def cpu_backend_expected() -> bool:
    """Whether JAX computes on the CPU, decided without starting a backend if none has been.

    After JAX has started: ``jax.default_backend() == "cpu"``. Before: the first platform of
    ``jax_platforms`` (``JAX_PLATFORMS``) when it is set, otherwise whether no accelerator
    plugin (``jax_plugins``, ``libtpu``) is installed.
    """
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return jax.default_backend() == "cpu"
    platforms = jax.config.jax_platforms
    if platforms:
        return platforms.split(",")[0].strip().lower() == "cpu"
    return not any(importlib.util.find_spec(m) for m in ("jax_plugins", "libtpu"))


def reuse_freed_memory_on_cpu() -> bool:
    """:func:`reuse_freed_memory` when :func:`cpu_backend_expected`; returns whether applied."""
    return cpu_backend_expected() and reuse_freed_memory()
