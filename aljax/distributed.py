"""Experiments across processes (hosts): ``jax.distributed`` plus the mesh of :mod:`aljax.sharding`.

Every process runs the same script with the same data and keys. After :func:`initialize`,
``jax.devices()`` lists the devices of ALL processes, so a mesh built from it spans hosts: seeds
split over the ``seeds`` axis and/or pool rows over the ``pool`` axis, one compiled program (SPMD).
:func:`run_seeds` returns the complete results (all seeds) as numpy on every process::

    initialize("10.0.0.1:1234", num_processes=2, process_id=rank)
    state, info = run_seeds(config, data, Hyper(), 64, make_mesh(seeds=jax.device_count()))
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from aljax.data import Data
from aljax.loop import Config, Hyper, RoundInfo, State, make_run
from aljax.seeds import chunk_program
from aljax.sharding import shard_data, shard_seeds


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join the process group (``coordinator`` = "host:port" of process 0, reachable by all).

    On CPU, cross-process collectives go through gloo; GPUs and TPUs use their own interconnect.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def run_seeds(config: Config, data: Data, hyper: Hyper, n_seeds: int, mesh: Mesh, seed: int = 0
              ) -> tuple[State, RoundInfo]:
    """``make_run(config)`` for seeds 0..n_seeds-1 as ONE chunk of :mod:`aljax.seeds` (seed i's key is
    ``fold_in(key(seed), i)``, as everywhere), the seeds split over ``mesh``'s ``seeds`` axis and the
    pool over its ``pool`` axis (the mesh may span processes).

    Returns (state, info) as numpy arrays with a leading seed axis, identical on every process.
    """
    program = chunk_program(make_run(config))
    state, info = program(shard_data(data, mesh), hyper, jax.random.key(seed), shard_seeds(np.arange(n_seeds), mesh))
    state = jax.tree.map(lambda a: jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a, state)
    return jax.tree.map(np.asarray, multihost_utils.process_allgather((state, info), tiled=True))
