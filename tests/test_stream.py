"""Stream mode: budget and threshold managers on a tiny pool, vmapped over seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax.data import Data, make_pool, make_split
from aljax.loop import Config, Hyper
from aljax.stream import StreamConfig, make_stream


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int32)
    return Data(pool=make_pool(x, y, 64), eval=make_split(x[:20], y[:20]), test=make_split(x[:20], y[:20]))


BASE = Config(n_initial=4, query_size=2, rounds=5, n_classes=2, initial="random")


def test_budget_manager_spends_the_budget_on_distinct_valid_rows(data):
    run = jax.jit(jax.vmap(make_stream(StreamConfig(BASE, manager="budget", window=8)), in_axes=(None, None, 0)))
    state, info, seen = run(data, Hyper(), jax.random.split(jax.random.key(0), 3))
    assert info.n_labeled.shape == (3, 6) and seen.shape == (3, 5)
    for s in range(3):
        n = int(state.n_labeled[s])
        order = np.asarray(state.order[s, :n])
        assert 4 + 5 <= n <= 4 + 10  # most of the budget is spent, never more
        assert len(set(order.tolist())) == n and np.all(order < 60)
        assert int(jnp.sum(state.labeled[s])) == n
        assert np.all(np.diff(np.asarray(seen[s])) >= 0) and seen[s, -1] <= 56
    # the spending never runs ahead of an even spend over the 56 arrivals
    assert np.all(np.asarray(info.n_labeled[:, 1:] - 4) <= np.ceil(10 * np.asarray(seen) / 56))
    # seeds see different streams
    assert len({tuple(np.asarray(o[4:]).tolist()) for o in state.order}) > 1


def test_threshold_manager_queries_only_what_passes(data):
    # least confidence = -max p lies in [-1, -0.5]: a threshold of 0 never passes, -1 always does
    never = jax.jit(make_stream(StreamConfig(BASE, manager="threshold", threshold=0.0)))(data, Hyper(), jax.random.key(1))
    always = jax.jit(make_stream(StreamConfig(BASE, manager="threshold", threshold=-1.0)))(data, Hyper(), jax.random.key(1))
    assert int(never[0].n_labeled) == 4 and int(never[2][0]) == 56
    assert int(always[0].n_labeled) == 14 and np.asarray(always[2]).tolist() == [2, 4, 6, 8, 10]


def test_bad_stream_config_says_how_to_fix():
    with pytest.raises(ValueError, match="per-sample"):
        StreamConfig(Config(strategy="kcenter"))
    with pytest.raises(ValueError, match="manager"):
        StreamConfig(manager="nope")
