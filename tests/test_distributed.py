"""Two processes on localhost (jax.distributed over gloo, the pool split across them) give the
single-process result. Both sides run on the CPU platform, whatever accelerator the machine has: the
workers with JAX_PLATFORMS=cpu, the single process on its CPU device, so the results are exact."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker  # noqa: E402

from aljax.loop import Hyper  # noqa: E402
from aljax.sharding import make_mesh  # noqa: E402
from aljax import distributed  # noqa: E402
from aljax.precision import on_exact_device  # noqa: E402

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_pool_equal_single_process(tmp_path):
    port = free_port()
    outs = [tmp_path / f"out{i}.npz" for i in range(2)]
    cmd = [sys.executable, distributed_worker.__file__, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [
        subprocess.Popen(cmd + ["--process-id", str(i), "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=dict(os.environ, JAX_PLATFORMS="cpu"))
        for i, out in enumerate(outs)
    ]
    with on_exact_device() as cpu:  # meanwhile, the same experiment in this single process (one CPU device)
        state, info = distributed.run_seeds(distributed_worker.CONFIG, distributed_worker.small_data(), Hyper(),
                                            distributed_worker.N_SEEDS, make_mesh(devices=[cpu]))
    try:
        logs = [p.communicate(timeout=150)[0].decode() for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("distributed workers timed out after 150 s")
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-2000:]
    for out in outs:
        result = np.load(out)
        assert int(result["devices"]) == 2  # the mesh spans both processes: pool axis of 2
        np.testing.assert_array_equal(result["order"], state.order)
        np.testing.assert_array_equal(result["eval_correct"], info.eval_correct)
    assert len({tuple(o) for o in state.order}) == distributed_worker.N_SEEDS  # the seeds really differ
