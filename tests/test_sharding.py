"""Pool/seed sharding on 8 simulated CPU devices gives the unsharded result.

XLA_FLAGS must be set before jax is imported, so the sharded runs happen in a subprocess and the
rest of the suite keeps its single device. The subprocess is pinned to the CPU platform
(JAX_PLATFORMS=cpu): on a GPU machine JAX would otherwise pick the GPU and find one device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from aljax.sharding import make_mesh, pad_pool

HERE = Path(__file__).parent

SCRIPT = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {here!r})
from distributed_worker import CONFIG, N_SEEDS, small_data
from aljax.data import Data, make_pool
from aljax.loop import Hyper, make_run
from aljax.sharding import make_mesh, pad_pool, shard_data, shard_seeds

full = small_data()
# 252 valid rows: the sharded run pads them to 256 (8 x 32) with rows that are never chosen.
data = Data(make_pool(np.asarray(full.pool.x[:252]), np.asarray(full.pool.y[:252])), full.eval, full.test)
keys = jax.random.split(jax.random.key(0), N_SEEDS)
run = jax.jit(jax.vmap(make_run(CONFIG), in_axes=(None, None, 0)))
out = {{"devices": jax.device_count()}}
s, i = run(data, Hyper(), keys)
out["plain"] = [s.order.tolist(), i.eval_correct.tolist()]
mesh = make_mesh(pool=4, seeds=2)
s, i = run(shard_data(pad_pool(data, 8), mesh), Hyper(), shard_seeds(keys, mesh))
out["sharded"] = [s.order.tolist(), i.eval_correct.tolist()]
out["labeled_spec"] = str(s.labeled.sharding.spec)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def runs():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(here=str(HERE))], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_simulated_devices(runs):
    assert runs["devices"] == 8


def test_sharded_pool_and_seeds_equal_unsharded(runs):
    order, correct = runs["sharded"]
    assert order == runs["plain"][0]
    assert correct == runs["plain"][1]


def test_label_mask_stays_sharded(runs):
    assert "pool" in runs["labeled_spec"] and "seeds" in runs["labeled_spec"]


def test_padded_rows_never_chosen(runs):
    assert max(max(row) for row in runs["sharded"][0]) < 252


def test_mesh_size_must_match_devices():
    with pytest.raises(ValueError, match="needs"):
        make_mesh(pool=jax.device_count() + 1)


def test_pad_pool_adds_invalid_rows():
    from distributed_worker import small_data

    data = small_data()
    padded = pad_pool(data, 3)
    assert padded.pool.size == 258 and int(padded.pool.valid.sum()) == 256
    assert pad_pool(data, 8) is data
