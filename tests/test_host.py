"""jaxgan.host.reuse_freed_memory: glibc keeps freed memory, so a large block allocated
again after being freed reuses mapped pages instead of faulting in fresh ones."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# malloc, touch and free a 64 MiB block (as XLA's CPU runtime does with a step's buffers),
# then count the page faults of touching a second one. Run in a fresh interpreter: the
# setting is process-wide and cannot be undone.
SCRIPT = """
import ctypes, resource, sys, threading
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
mode, where = sys.argv[1:]
if mode == "reuse":
    from jaxgan.host import reuse_freed_memory
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True  # idempotent
n = 64 << 20  # above glibc's largest mmap threshold (32 MiB)
faults = []
def run():
    for _ in range(2):  # a thread's first malloc attaches it to an arena: warm up twice
        a = libc.malloc(n)
        ctypes.memset(a, 1, n)
        libc.free(a)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = libc.malloc(n)
    ctypes.memset(b, 1, n)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
if where == "thread":  # as XLA's CPU runtime: buffers allocated on a worker thread
    t = threading.Thread(target=run)
    t.start()
    t.join()
else:
    run()
print(faults[0])
"""


def _run_script(script: str, *args: str) -> list[str]:
    """The words ``script`` prints, run in a fresh interpreter (the settings are
    process-wide and cannot be undone)."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def _faults(mode: str, where: str) -> int:
    return int(_run_script(SCRIPT, mode, where)[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")
@pytest.mark.parametrize("where", ["main", "thread"])
def test_reuse_freed_memory_reuses_pages_of_a_freed_large_block(where):
    default, reuse = _faults("default", where), _faults("reuse", where)
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    # glibc's default maps the block afresh: one fault per page.
    assert default >= pages // 2, (default, pages)
    # With reuse the freed pages are still mapped, on the main thread and (one arena for
    # all threads) on another: next to no faults.
    assert reuse < pages // 20, (reuse, pages)


def test_cpu_backend_expected_once_jax_has_started():
    import jax

    from jaxgan.host import cpu_backend_expected

    jax.numpy.zeros(1).block_until_ready()  # a backend is running now
    assert cpu_backend_expected() == (jax.default_backend() == "cpu")


# Free a block larger than 2 GiB (a CycleGAN 256 step frees about that much at the top of
# the heap) and see whether glibc gives it back to the OS by lowering the program break.
# The block is never touched, so this costs address space only.
TRIM_SCRIPT = """
import ctypes, sys
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = (ctypes.c_ssize_t,)
if sys.argv[1] == "reuse":
    from jaxgan.host import reuse_freed_memory
    assert reuse_freed_memory() is True
else:  # the same settings with the largest positive trim threshold mallopt takes
    for param, value in ((-4, 0), (-8, 1), (-1, 2**31 - 1)):
        assert libc.mallopt(param, value) == 1
n = (9 << 30) // 4  # 2.25 GiB
start = libc.sbrk(0)
a = libc.malloc(n)
assert a, "malloc failed"
top = libc.sbrk(0)
libc.free(a)
print(top - start, top - libc.sbrk(0))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")
def test_reuse_freed_memory_never_trims_the_heap():
    def grown_and_returned(mode):
        return [int(v) for v in _run_script(TRIM_SCRIPT, mode)[-2:]]

    n = (9 << 30) // 4
    grown, returned = grown_and_returned("int_max")
    # The block came from the heap (no mmap), and a 2 GiB threshold gives it back on free.
    assert grown >= n and returned >= n - (64 << 20), (grown, returned)
    grown, returned = grown_and_returned("reuse")
    assert grown >= n and returned == 0, (grown, returned)


class _Applied(Exception):
    pass


@pytest.mark.parametrize(
    "module, argv",
    [
        ("jaxgan.translate", ["no_workdir", "no_in", "no_out"]),
        ("jaxgan.upscale", ["no_workdir", "no_input", "no_out"]),
        ("jaxgan.sample", ["no_workdir"]),
        ("jaxgan.fid", ["no_a", "no_b"]),
    ],
)
def test_command_line_tools_apply_the_setting_before_any_work(module, argv, monkeypatch):
    import importlib

    def applied():
        raise _Applied

    monkeypatch.setattr("jaxgan.host.reuse_freed_memory_on_cpu", applied)
    main = importlib.import_module(module).main
    # Called after the arguments are parsed and before anything is read: the paths do not
    # exist, so any earlier work would fail with another error.
    with pytest.raises(_Applied):
        main(argv)
