"""Pool and seed sharding over a device mesh (``jax.sharding``).

The mesh has two axes: ``seeds`` (the vmap axis of many-seed runs) and ``pool`` (the rows of the
pool, its labels and its ``valid`` mask). The compiled experiment is unchanged: ``jax.jit`` follows
the input shardings, so a sharded pool gives a program whose scoring and selection are split over
the ``pool`` devices (XLA inserts the reductions). Evaluation splits and hyper-parameters are
replicated. Axes are ``AxisType.Auto`` (masked reductions over an Explicit axis raise sharding
errors in JAX 0.10+)::

    mesh = make_mesh(pool=8)
    data = shard_data(pad_pool(data, 8), mesh)
    state, info = jax.jit(make_run(config))(data, Hyper(), key)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from aljax.data import Data, Pool

AXES = ("seeds", "pool")


def make_mesh(pool: int | None = None, seeds: int = 1, devices=None) -> Mesh:
    """A (seeds, pool) mesh over ``devices`` (default: all); ``pool`` defaults to the devices left."""
    devices = jax.devices() if devices is None else list(devices)
    pool = len(devices) // seeds if pool is None else pool
    if seeds * pool != len(devices):
        raise ValueError(f"mesh of {seeds} seeds x {pool} pool devices needs {seeds * pool} devices, have {len(devices)}")
    return jax.make_mesh((seeds, pool), AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)


def pad_pool(data: Data, multiple: int) -> Data:
    """``data`` with its pool padded by invalid rows to a multiple of ``multiple`` rows (never selected)."""
    pad = -data.pool.size % multiple
    if pad == 0:
        return data
    pool = Pool(
        x=jnp.pad(data.pool.x, ((0, pad),) + ((0, 0),) * (data.pool.x.ndim - 1)),
        y=jnp.pad(data.pool.y, (0, pad)),
        valid=jnp.pad(data.pool.valid, (0, pad)),
    )
    return dataclasses.replace(data, pool=pool)


def shard_data(data: Data, mesh: Mesh) -> Data:
    """``data`` placed on ``mesh``: pool rows split over ``pool``, evaluation splits replicated."""
    n_pool = mesh.shape["pool"]
    if data.pool.size % n_pool:
        raise ValueError(f"pool of {data.pool.size} rows does not split over {n_pool} devices; use pad_pool first")
    rows = NamedSharding(mesh, P("pool"))
    replicated = NamedSharding(mesh, P())
    pool = Pool(x=put(data.pool.x, NamedSharding(mesh, P("pool"))), y=put(data.pool.y, rows), valid=put(data.pool.valid, rows))
    return Data(pool=pool, eval=put(data.eval, replicated), test=put(data.test, replicated))


def shard_seeds(seeds, mesh: Mesh) -> jax.Array:
    """Seed indices or typed seed keys (S,) split over the ``seeds`` axis (S a multiple of its size)."""
    if seeds.shape[0] % mesh.shape["seeds"]:
        raise ValueError(f"{seeds.shape[0]} seeds do not split over {mesh.shape['seeds']} devices")
    rows = NamedSharding(mesh, P("seeds"))
    if not jax.dtypes.issubdtype(seeds.dtype, jax.dtypes.prng_key):
        return put(jnp.asarray(seeds), rows)
    return jax.random.wrap_key_data(put(jax.random.key_data(seeds), rows), impl=jax.random.key_impl(seeds))


def put(tree, sharding: NamedSharding):
    """Every array of ``tree`` (the same value on every process) as a global array with ``sharding``.

    Each process supplies only the shards its own devices hold, so this works across hosts too.
    """
    def one(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)
