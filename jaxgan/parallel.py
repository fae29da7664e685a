"""Many devices, many hosts, many seeds: the same train step, placed differently.

A family writes its step once, ``train_step(state, batch) -> (state, metrics)``, for the
global batch. This module runs it

* **on one device** (``parallel='none'``, the default): ``jax.jit`` as the family builds it;
* **with ``jax.jit`` and shardings** (``parallel='sharding'``, the recommended path, and the
  one for many hosts): a 1-D mesh ``('data',)`` over all devices of all processes; the state
  is created already replicated (``jax.jit(init, out_shardings=P())``), each batch is a global
  array split over ``'data'`` (``P('data')``), assembled with
  ``jax.make_array_from_process_local_data`` from the slice each process reads, and the
  step is ``jax.jit(step, in_shardings, out_shardings, donate_argnums=0)``. The step needs no
  change at all: its arrays are global, XLA inserts the all-reduces (BatchNorm statistics
  are those of the global batch, like on one device);
* **with ``jax.pmap``** (``parallel='pmap'``, single host): the step is built with an
  ``axis_name`` (``make_train_step(..., axis_name='batch', jit=False)``) and its networks
  with ``bn_axis_name='batch'``; it then ``pmean``s gradients, BatchNorm statistics and
  metrics, gathers the critic outputs of batch-coupled losses, and draws its random numbers
  for the global batch (see :mod:`jaxgan.train.gan_step`). The state lives replicated on
  the devices for the whole run (built once, then broadcast); only checkpoints, samples
  and evaluations take device 0's copy.

Every family supports both. Both parallel paths compute what one device computes on the
same global batch (tested to 1e-5 on 8 simulated CPU devices for DCGAN with BatchNorm,
WGAN-GP, RaLSGAN, the conditional GAN and InfoGAN with BatchNorm, CycleGAN with its image
pool, SRResNet / SRGAN with BatchNorm and ESRGAN's relativistic losses).

**Many hosts.** Launch the same command on every host with ``--parallel sharding``.
:func:`maybe_initialize_distributed` (called by the training loop) starts
``jax.distributed`` when the environment says so: ``JAXGAN_COORDINATOR_ADDRESS`` (or
``JAX_COORDINATOR_ADDRESS``) = ``host:port`` of process 0, ``JAXGAN_NUM_PROCESSES``,
``JAXGAN_PROCESS_ID``; or ``JAXGAN_DISTRIBUTED=1`` for JAX's cluster auto-detection (Cloud
TPU pods, SLURM, Open MPI, ...). Every process reads only its contiguous slice of the global
batch (:mod:`jaxgan.data.pipeline`); all processes write the checkpoint together through
orbax, and a checkpoint restores on any device count (it holds one copy of the replicated
state). Only process 0 writes logs, samples and scores.

**Many seeds.** :func:`stack_states` + :func:`vmap_step` train N independent runs (own init
key, own data order) in one compiled step: ``python -m experiments.sweep``.

**Adopting it in a family.** Nothing is needed for ``parallel='sharding'``: the loop wraps
``Task.train_step`` (any step that is correct for a global batch). For ``parallel='pmap'``
the family's task builder, when ``config.parallel == 'pmap'``, builds its networks with the
BatchNorm ``axis_name`` and its step with ``axis_name=AXIS`` (averaging gradients and
metrics with ``jax.lax.pmean``, gathering outputs whose losses are not batch means, drawing
random numbers for the global batch and keeping its own rows), and returns
``Task(axis_name=AXIS, batch_chunks=k, ...)`` where ``k`` is the number of consecutive
equal chunks the step cuts its batch into (``n_critic``). The GAN step of
:mod:`jaxgan.train.gan_step` (shared by the unconditional and conditional families) does the
step's part; :func:`jaxgan.train.unconditional.build_gan_task` shows the task builder's.
State that couples the samples of a batch is updated on the gathered global batch, the same
way on every device: CycleGAN's image pools (:mod:`jaxgan.train.cyclegan`). The SR steps
(:mod:`jaxgan.train.superres`) gather the critic outputs of ESRGAN's relativistic losses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

if TYPE_CHECKING:
    from jaxgan.checkpoint import Checkpointer
    from jaxgan.train.loop import Task

AXIS = "batch"  # the pmap axis name of the steps and of BatchNorm
DATA = "data"  # the mesh axis the batch is split over
KINDS = ("none", "pmap", "sharding")

StepFn = Callable[[Any, Any], tuple[Any, dict]]


# --------------------------------------------------------------------------- batches


def pmean(tree: Any, axis_name: str | None) -> Any:
    """The average of ``tree`` over the devices of the pmap axis ``axis_name``; ``tree``
    itself when ``axis_name`` is None (one device, or ``jax.jit`` with shardings, whose
    arrays are already global)."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def gather_rows(tree: Any, axis_name: str | None) -> Any:
    """The global batch of every array of ``tree`` (each device's rows, concatenated in
    device order) under the pmap axis ``axis_name``; ``tree`` itself when None."""
    return tree if axis_name is None else jax.lax.all_gather(tree, axis_name, tiled=True)


def split_rows(tree: Any) -> Any:
    """Arrays made inside a step for the global batch (noise, random codes), constrained
    to be split over ``'data'`` like the batch when the step runs under
    ``parallel='sharding'`` (inside :func:`shard_step`'s mesh); ``tree`` itself otherwise.

    Drawn from a replicated key, such arrays are replicated as far as XLA's sharding
    propagation sees, and so is everything computed from them until it meets the sharded
    batch: without this constraint every device ran the generator on the whole batch (a
    DCGAN 32 step on two CPU devices took 140 ms, against 77 ms on one). Arrays whose
    leading axis the mesh does not divide are left as they are. An ``Explicit`` ``'data'``
    axis (a mesh of the caller's) is resharded (``jax.sharding.reshard``); a ``Manual``
    one (inside ``shard_map``, where each device already holds its own rows) is left.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or DATA not in mesh.axis_names:
        return tree
    n = mesh.shape[DATA]
    kind = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))[DATA]
    if kind == AxisType.Manual:
        return tree
    spec = PartitionSpec(DATA)
    place = jax.sharding.reshard if kind == AxisType.Explicit else jax.lax.with_sharding_constraint

    def constrain(a: Any) -> Any:
        if getattr(a, "ndim", 0) == 0 or a.shape[0] % n:
            return a
        return place(a, spec)

    return jax.tree.map(constrain, tree)


def check_divisible(batch_size: int, n_devices: int, chunks: int = 1) -> None:
    """Raise a clear ValueError unless each of the ``chunks`` consecutive parts of a batch of
    ``batch_size`` rows splits evenly over ``n_devices`` devices."""
    if chunks < 1 or batch_size % chunks:
        raise ValueError(f"a batch of {batch_size} rows cannot be cut into {chunks} chunks")
    b = batch_size // chunks
    if b % n_devices:
        per = f" per critic update (n_critic={chunks})" if chunks > 1 else ""
        raise ValueError(
            f"the batch of B={b} examples{per} cannot be split evenly over {n_devices} "
            f"devices: use a batch size divisible by {n_devices} (e.g. "
            f"{max(n_devices, b - b % n_devices)} or {b - b % n_devices + n_devices})"
        )


def split_for_pmap(batch: Any, n_devices: int, chunks: int = 1) -> Any:
    """Lay a batch out as ``(n_devices, rows / n_devices, ...)`` for ``jax.pmap``.

    With ``chunks = k > 1`` (a step that cuts its batch into ``k`` consecutive chunks, e.g.
    one per critic update) device ``d``'s chunk ``i`` is its share of the global chunk ``i``,
    so the pmapped step sees the same chunks as one device.
    """

    def split(a: Any) -> Any:
        check_divisible(a.shape[0], n_devices, chunks)
        per = a.shape[0] // (chunks * n_devices)
        xp = np if isinstance(a, np.ndarray) else jnp
        a = a.reshape((chunks, n_devices, per) + a.shape[1:])
        return xp.swapaxes(a, 0, 1).reshape((n_devices, chunks * per) + a.shape[3:])

    return jax.tree.map(split, batch)


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
    """The global batch (split over the mesh's ``'data'`` axis) from this process's slice.

    Each process passes only the rows it read (the pipeline gives process ``p`` of ``P`` the
    contiguous slice ``p``); the global batch is their concatenation in process order.
    """
    sharding = data_sharding(mesh)
    n_proc = jax.process_count()

    def put(a: Any) -> jax.Array:
        check_divisible(a.shape[0] * n_proc, mesh.size)
        return jax.make_array_from_process_local_data(sharding, np.asarray(a))

    return jax.tree.map(put, local_batch)


# --------------------------------------------------------------------------- pmap


def replicate(tree: Any, devices: Sequence[Any] | None = None, axis_name: str = AXIS) -> Any:
    """A copy of ``tree`` on every (local) device, in the layout ``jax.pmap`` expects.

    Broadcast on device (one compiled identity), not through the host; call it once, when
    the state is created or restored, never per step. ``axis_name`` is the step's: the
    arrays then carry the sharding the pmapped step returns, so its first call is not
    compiled twice.
    """
    devices = list(devices) if devices is not None else jax.local_devices()
    ids = np.arange(len(devices))
    broadcast = jax.pmap(lambda _, t: t, axis_name, in_axes=(0, None), devices=devices)
    return broadcast(ids, tree)


def _first_row(x: Any) -> Any:
    if isinstance(x, jax.Array):
        return x.addressable_shards[0].data[0]  # on that device: no transfer
    return x[0]


def unreplicate(tree: Any) -> Any:
    """The first device's copy of a pmapped pytree (leading device axis), as single-device
    arrays of their own (a copy: later steps may donate the replicated buffers). For
    checkpoints and the state the loop returns; never per step."""
    return jax.tree.map(_first_row, tree)


def local_copy(tree: Any) -> Any:
    """One device's copy of a replicated pytree (pmapped, or replicated with a
    ``NamedSharding``), without copying data: usable by single-device code (sampling,
    evaluation) on any process."""

    def first(x: Any) -> Any:
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            shard = x.addressable_shards[0]
            return shard.data if shard.data.shape == x.shape else shard.data[0]
        return x  # already on one device (or on the host)

    return jax.tree.map(first, tree)


def pmap_step(
    step_fn: StepFn, axis_name: str = AXIS, devices: Sequence[Any] | None = None
) -> StepFn:
    """``jax.pmap`` of a step built with ``axis_name``; the state is donated.

    The state and batch carry a leading device axis (:func:`replicate`,
    :func:`split_for_pmap`). The metrics, ``pmean``-ed by the step, come back as plain
    scalars (``out_axes=None``), not one copy per device.
    """
    return jax.pmap(
        step_fn, axis_name=axis_name, donate_argnums=0, out_axes=(0, None), devices=devices
    )


# --------------------------------------------------------------------------- sharding


def make_mesh(n: int | None = None, devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh ``('data',)`` over ``n`` devices (default: all devices of all processes).

    The axis type is ``Auto`` (``jax.make_mesh`` defaults to ``Explicit`` in jax 0.10): the
    steps are written for global arrays and XLA chooses the collectives. Each process's
    devices are kept together and in process order, so the concatenation of the processes'
    data slices is the global batch.
    """
    devices = list(devices) if devices is not None else jax.devices()
    if n is not None:
        if n > len(devices):
            raise ValueError(f"asked for a mesh of {n} devices, but only {len(devices)} exist")
        devices = devices[:n]
    mesh = jax.make_mesh((len(devices),), (DATA,), axis_types=(AxisType.Auto,), devices=devices)
    procs = [d.process_index for d in mesh.devices.flat]
    if procs != sorted(procs):  # a topology-aware order that interleaves hosts
        ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
        mesh = Mesh(np.array(ordered), (DATA,), axis_types=(AxisType.Auto,))
    return mesh


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (``P()``): the state."""
    return NamedSharding(mesh, PartitionSpec())


def data_sharding(mesh: Mesh) -> NamedSharding:
    """The leading axis is split over ``'data'`` (``P('data')``): the batch."""
    return NamedSharding(mesh, PartitionSpec(DATA))


def init_sharded(init_fn: Callable[[jax.Array], Any], key: jax.Array, mesh: Mesh) -> Any:
    """``init_fn(key)`` created directly replicated on the mesh (no host round trip)."""
    with jax.set_mesh(mesh):
        return jax.jit(init_fn, out_shardings=replicated_sharding(mesh))(key)


def shard_step(step_fn: StepFn, mesh: Mesh) -> StepFn:
    """``jax.jit`` of a global step: state replicated, batch split over ``'data'``, metrics
    replicated; the state is donated. Called and lowered (``step.lower(state, batch)``)
    inside ``mesh``, so that :func:`split_rows` sees it."""
    rep, data = replicated_sharding(mesh), data_sharding(mesh)
    jitted = jax.jit(step_fn, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=0)

    def step(state: Any, batch: Any) -> tuple[Any, dict]:
        with jax.set_mesh(mesh):
            return jitted(state, batch)

    def lower(state: Any, batch: Any) -> Any:
        with jax.set_mesh(mesh):
            return jitted.lower(state, batch)

    step.lower = lower  # like a jax.jit object's: to compile ahead of time or inspect
    return step


# --------------------------------------------------------------------------- many hosts


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def maybe_initialize_distributed(env: Mapping[str, str] | None = None) -> bool:
    """Start ``jax.distributed`` if the environment asks for it; return whether it did.

    * ``JAXGAN_COORDINATOR_ADDRESS`` (or ``JAX_COORDINATOR_ADDRESS``) ``host:port`` of
      process 0, ``JAXGAN_NUM_PROCESSES``, ``JAXGAN_PROCESS_ID``: explicit settings (what is
      missing is left to JAX's cluster detection);
    * ``JAXGAN_DISTRIBUTED=1``: no settings, JAX detects the cluster (Cloud TPU pods, SLURM,
      Open MPI, ...).

    Otherwise (one process) it does nothing. It must run before any JAX computation; it
    does nothing if ``jax.distributed`` is already initialised.
    """
    env = os.environ if env is None else env
    if jax.distributed.is_initialized():
        return False
    address = env.get("JAXGAN_COORDINATOR_ADDRESS") or env.get("JAX_COORDINATOR_ADDRESS")
    num_processes = _env_int(env, "JAXGAN_NUM_PROCESSES")
    process_id = _env_int(env, "JAXGAN_PROCESS_ID")
    auto = env.get("JAXGAN_DISTRIBUTED", "").lower() in ("1", "true", "yes", "auto")
    if not (auto or address or num_processes is not None or process_id is not None):
        return False
    jax.distributed.initialize(
        coordinator_address=address or None, num_processes=num_processes, process_id=process_id
    )
    return True


# --------------------------------------------------------------------------- the loop's view


class DataParallel:
    """How the training loop places state and batches and runs the step (``'none'``: one
    device, exactly the family's jitted step). Use :func:`for_task` to get one."""

    kind = "none"

    def __init__(self, task: Task):
        self.task = task

    def init_state(self, key: jax.Array) -> Any:
        """The initial state, placed for :meth:`train_step`."""
        return jax.jit(self.task.init_state)(key)

    def restore(self, ckpt: Checkpointer, state: Any) -> Any:
        """The latest checkpoint of ``ckpt``, placed like ``state``."""
        return ckpt.restore(state)

    def put_batch(self, batch: Any) -> Any:
        """This process's batch, placed for :meth:`train_step`."""
        return batch

    def train_step(self, state: Any, batch: Any) -> tuple[Any, dict]:
        return self.task.train_step(state, batch)

    def host_state(self, state: Any) -> Any:
        """A single-device view of the state for sampling, evaluation and reading ``step``."""
        return state

    def checkpoint_state(self, state: Any) -> Any:
        """What to save: one copy of the state."""
        return state

    def final_state(self, state: Any) -> Any:
        """What the loop returns."""
        return state


class PmapParallel(DataParallel):
    """``jax.pmap`` over the local devices of a single host (see the module docstring)."""

    kind = "pmap"

    def __init__(self, task: Task):
        super().__init__(task)
        if getattr(task, "axis_name", None) is None:
            raise ValueError(
                f"the {task.meta.get('family', 'this')!r} family has no pmap step; "
                "use --parallel sharding (any family) or none"
            )
        if jax.process_count() > 1:
            raise ValueError("parallel='pmap' runs on one host here; use 'sharding' on many")
        self.devices = jax.local_devices()
        self.chunks = int(getattr(task, "batch_chunks", 1))
        check_divisible(task.examples_per_step, len(self.devices), self.chunks)
        self._step = pmap_step(task.train_step, task.axis_name, self.devices)

    def init_state(self, key: jax.Array) -> Any:
        return replicate(jax.jit(self.task.init_state)(key), self.devices, self.task.axis_name)

    def restore(self, ckpt: Checkpointer, state: Any) -> Any:
        restored = ckpt.restore(local_copy(state))
        return replicate(restored, self.devices, self.task.axis_name)

    def put_batch(self, batch: Any) -> Any:
        return split_for_pmap(batch, len(self.devices), self.chunks)

    def train_step(self, state: Any, batch: Any) -> tuple[Any, dict]:
        return self._step(state, batch)

    def host_state(self, state: Any) -> Any:
        return local_copy(state)

    def checkpoint_state(self, state: Any) -> Any:
        return unreplicate(state)

    def final_state(self, state: Any) -> Any:
        return unreplicate(state)


class ShardingParallel(DataParallel):
    """``jax.jit`` with ``NamedSharding`` over all devices of all processes."""

    kind = "sharding"

    def __init__(self, task: Task, mesh: Mesh | None = None):
        super().__init__(task)
        self.mesh = mesh if mesh is not None else make_mesh()
        check_divisible(
            task.examples_per_step, self.mesh.size, int(getattr(task, "batch_chunks", 1))
        )
        self._step = shard_step(task.train_step, self.mesh)

    def init_state(self, key: jax.Array) -> Any:
        return init_sharded(self.task.init_state, key, self.mesh)

    def put_batch(self, batch: Any) -> Any:
        return global_batch(batch, self.mesh)

    def train_step(self, state: Any, batch: Any) -> tuple[Any, dict]:
        return self._step(state, batch)

    def host_state(self, state: Any) -> Any:
        return local_copy(state)


def for_task(kind: str, task: Task) -> DataParallel:
    """The placement ``kind`` ('none', 'pmap' or 'sharding') for ``task``; checks the batch
    against the device count before anything is compiled."""
    if kind == "none":
        return DataParallel(task)
    if kind == "pmap":
        return PmapParallel(task)
    if kind == "sharding":
        return ShardingParallel(task)
    raise ValueError(f"unknown parallel {kind!r}; use one of {KINDS}")


# --------------------------------------------------------------------------- many seeds


def stack_states(states: Sequence[Any]) -> Any:
    """Stack N states (same structure) along a new leading axis, for :func:`vmap_step`."""
    if not states:
        raise ValueError("stack_states needs at least one state")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def unstack_states(stacked: Any) -> list[Any]:
    """The N states of a stacked state (:func:`stack_states` undone)."""
    n = jax.tree.leaves(stacked)[0].shape[0]
    return [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)]


def vmap_step(step_fn: StepFn) -> StepFn:
    """N independent runs in one compiled step: ``(stacked_state, stacked_batch) ->
    (stacked_state, metrics with a leading run axis)``; the state is donated."""
    return jax.jit(jax.vmap(step_fn), donate_argnums=0)


def stack_batches(batches: Sequence[Any]) -> Any:
    """Stack the N runs' batches (numpy, on the host) for :func:`vmap_step`."""
    return jax.tree.map(lambda *xs: np.stack(xs), *batches)
