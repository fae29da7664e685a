"""The GAN state pytree: one Flax ``TrainState`` per network, the step and the RNG key.

Everything a run needs to continue lives here, so checkpointing this pytree (orbax) and
the step-indexed input pipeline make a resumed run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state


class TrainState(train_state.TrainState):
    """A Flax ``TrainState`` with the BatchNorm statistics of the network (``{}`` if none)."""

    batch_stats: Any = struct.field(default_factory=dict)

    def variables(self, params: Any = None) -> dict[str, Any]:
        """The Flax variable dict ``{'params': ..., 'batch_stats': ...}`` of this network."""
        v = {"params": self.params if params is None else params}
        if self.batch_stats:
            v["batch_stats"] = self.batch_stats
        return v


class GANState(struct.PyTreeNode):
    """Generator and discriminator states, the number of generator steps done, the key.

    ``key`` is a raw ``uint32[2]`` PRNG key (checkpoint-friendly); the key of step ``s`` is
    ``jax.random.fold_in(key, s)`` and every draw inside a step splits it further.
    """

    g: TrainState
    d: TrainState
    step: jax.Array
    key: jax.Array


def create_train_state(
    module: Any, tx: optax.GradientTransformation, key: jax.Array, *inputs: Any, **kwargs: Any
) -> TrainState:
    """Initialise ``module`` on example ``inputs`` and wrap it in a :class:`TrainState`."""
    variables = module.init(key, *inputs, **kwargs)
    return TrainState.create(
        apply_fn=module.apply,
        params=variables["params"],
        tx=tx,
        batch_stats=variables.get("batch_stats", {}),
    )


def step_key(key: jax.Array, step: jax.Array) -> jax.Array:
    """The key of one step: ``fold_in(key, step)``; never reused for two draws."""
    return jax.random.fold_in(key, step)


def tree_is_finite(tree: Any) -> jax.Array:
    """A device boolean: every floating leaf of ``tree`` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)
