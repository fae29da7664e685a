"""The input pipeline: deterministic, step-indexed batches with background prefetch.

The contract (what makes a resumed run see exactly the data of an uninterrupted one):
the **global** batch of step ``s`` is a pure function of ``(seed, s)``. With ``N`` examples
and global batch size ``B``, the batch holds the examples at global positions
``i = s*B, ..., (s+1)*B - 1`` of an endless stream in which position ``i`` belongs to epoch
``e = i // N`` and is example ``perm_e[i % N]``, where ``perm_e`` is the permutation drawn
by ``np.random.default_rng([seed, e])``. So every epoch visits every example exactly once,
a batch may straddle two epochs (or several, when ``B > N``), and starting at
``start_step=k`` yields batches ``k, k+1, ...`` of a fresh run.

Multi-host: process ``p`` of ``P`` gets the contiguous slice ``[p*B/P, (p+1)*B/P)`` of the
global batch and reads only that slice from the source; the slices of all processes,
concatenated in process order, are the global batch.

Batches are built ahead in worker threads (PIL decoding and numpy release the GIL) and
handed out in step order, at most ``prefetch`` ahead. The optional
``transform(batch, rng)`` (augmentation) gets a numpy ``Generator`` seeded from
``(seed, step, process_index)``, so it is deterministic and resumable too. It runs in the
worker threads: it must not mutate shared state.

This is plain numpy and threads rather than grain: the sources are already random access,
the whole order is one vectorised index computation, and the step-indexed contract is
simplest to keep (and to test) when the step is the only state.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from jaxgan.data.source import Source

Batch = dict[str, np.ndarray]
Transform = Callable[[Batch, np.random.Generator], Batch]

# Appended to the transform's seed so its stream never coincides with a permutation's.
_TRANSFORM_STREAM = 0x7A6


def _check_nonneg_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=8)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
    perm.flags.writeable = False
    return perm


def batch_indices(
    num_examples: int,
    batch_size: int,
    step: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> np.ndarray:
    """The source indices of this process's part of the global batch of ``step``.

    See the module docstring for the formula. ``batch_size`` is the global batch size.
    Returns an int64 array of length ``batch_size // process_count``.
    """
    n = _check_nonneg_int(num_examples, "num_examples")
    if n == 0:
        raise ValueError("cannot draw batches from a dataset with no examples")
    b = _check_nonneg_int(batch_size, "batch_size")
    if b == 0:
        raise ValueError("batch_size must be positive")
    step = _check_nonneg_int(step, "step")
    seed = _check_nonneg_int(seed, "seed")
    p = _check_nonneg_int(process_index, "process_index")
    count = _check_nonneg_int(process_count, "process_count")
    if count == 0 or p >= count:
        raise ValueError(f"process_index {p} must lie in [0, process_count={count})")
    if b % count:
        raise ValueError(
            f"the global batch size {b} must be divisible by the process count {count}"
        )
    local = b // count
    start = step * b + p * local
    pos = np.arange(start, start + local, dtype=np.int64)
    epochs = pos // n
    out = np.empty(local, np.int64)
    for e in range(int(epochs[0]), int(epochs[-1]) + 1):
        sel = epochs == e
        out[sel] = _epoch_permutation(n, seed, e)[pos[sel] % n]
    return out


class BatchIterator(Iterator[Batch]):
    """Endless (or ``num_steps``-long) iterator over step-indexed batches.

    Made by :func:`batch_iterator`. ``step`` is the step of the next batch. Close it (or
    use it as a context manager) to stop the worker threads early.
    """

    def __init__(
        self,
        source: Source,
        batch_size: int,
        *,
        seed: int,
        start_step: int = 0,
        process_index: int = 0,
        process_count: int = 1,
        prefetch: int = 2,
        transform: Transform | None = None,
        num_workers: int = 2,
        num_steps: int | None = None,
    ):
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self.transform = transform
        self.step = _check_nonneg_int(start_step, "start_step")
        self.prefetch = _check_nonneg_int(prefetch, "prefetch")
        workers = _check_nonneg_int(num_workers, "num_workers")
        if num_steps is not None:
            num_steps = _check_nonneg_int(num_steps, "num_steps")
        self._stop = None if num_steps is None else self.step + num_steps
        # Validate everything now (and fail here, not in a worker thread).
        batch_indices(len(source), batch_size, self.step, seed, process_index, process_count)
        self._next_submit = self.step
        self._pending: collections.deque[concurrent.futures.Future[Batch]] = collections.deque()
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, min(workers, self.prefetch)), thread_name_prefix="jaxgan-data"
            )
            if self.prefetch > 0
            else None
        )
        self._lock = threading.Lock()
        self._closed = False

    def make_batch(self, step: int) -> Batch:
        """This process's batch of ``step`` (what the iterator yields at that step)."""
        idx = batch_indices(
            len(self.source),
            self.batch_size,
            step,
            self.seed,
            self.process_index,
            self.process_count,
        )
        batch = self.source.get(idx)
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, step, self.process_index, _TRANSFORM_STREAM])
            batch = self.transform(batch, rng)
        return batch

    def _fill(self) -> None:
        assert self._pool is not None
        while len(self._pending) < self.prefetch and (
            self._stop is None or self._next_submit < self._stop
        ):
            self._pending.append(self._pool.submit(self.make_batch, self._next_submit))
            self._next_submit += 1

    def __next__(self) -> Batch:
        with self._lock:
            if self._closed:
                raise StopIteration
            if self._stop is not None and self.step >= self._stop:
                self.close()
                raise StopIteration
            if self._pool is None:
                batch = self.make_batch(self.step)
            else:
                self._fill()
                try:
                    batch = self._pending.popleft().result()
                except BaseException:
                    self.close()
                    raise
            self.step += 1
            return batch

    def close(self) -> None:
        """Stop the worker threads and drop the batches built ahead."""
        self._closed = True
        if self._pool is not None:
            for f in self._pending:
                f.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> BatchIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def batch_iterator(
    source: Source,
    batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    prefetch: int = 2,
    transform: Transform | None = None,
    num_workers: int = 2,
    num_steps: int | None = None,
) -> BatchIterator:
    """Batches for steps ``start_step, start_step + 1, ...`` (see the module docstring).

    Args:
      source: the dataset.
      batch_size: the GLOBAL batch size (all processes together); each process yields
        ``batch_size // process_count`` examples per step.
      seed: the data seed (non-negative); the same seed gives the same batches.
      start_step: the first step to yield (a resumed run passes its restored step).
      process_index, process_count: this process and how many there are.
      prefetch: batches built ahead in background threads (0: build on demand).
      transform: optional ``transform(batch, rng) -> batch`` (e.g. augmentation).
      num_workers: threads building batches (at most ``prefetch``).
      num_steps: stop after this many batches (default: never stop).

    Raises:
      ValueError: empty source, bad sizes, ``batch_size`` not divisible by
        ``process_count``, ``process_index`` out of range, negative seed or step.
    """
    return BatchIterator(
        source,
        batch_size,
        seed=seed,
        start_step=start_step,
        process_index=process_index,
        process_count=process_count,
        prefetch=prefetch,
        transform=transform,
        num_workers=num_workers,
        num_steps=num_steps,
    )


def fixed_batch(source: Source, n: int, seed: int = 0) -> Batch:
    """``n`` examples for evaluation (e.g. the real images for FID), fixed by ``seed``.

    They are the first ``n`` positions of the stream of :func:`batch_iterator` with this
    seed: distinct examples when ``n <= len(source)``, every example (then repeats) when
    it is larger.
    """
    n = _check_nonneg_int(n, "n")
    if n == 0:
        raise ValueError("fixed_batch needs n > 0")
    return source.get(batch_indices(len(source), n, 0, seed))
