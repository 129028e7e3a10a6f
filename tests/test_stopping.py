"""Stopping criteria: κ by hand, the round each criterion stops at, masking, and the loop's new info."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax.data import Data, make_pool, make_split
from aljax.loop import Config, Hyper, RoundInfo, make_run
from aljax.stopping import cohen_kappa, stop_at, stop_rounds


def test_cohen_kappa_by_hand():
    a = jnp.array([0, 0, 1, 1])
    ones = jnp.ones(4, bool)
    assert cohen_kappa(a, a, ones, 2) == pytest.approx(1.0)
    # p_o = 1/2, p_e = 1/2 -> κ = 0
    assert cohen_kappa(a, jnp.array([0, 1, 0, 1]), ones, 2) == pytest.approx(0.0)
    # a masked disagreeing row does not count
    assert cohen_kappa(jnp.array([0, 1, 1]), jnp.array([0, 1, 0]), jnp.array([True, True, False]), 2) == pytest.approx(1.0)


def info_of(**fields):
    rounds = len(next(iter(fields.values())))
    base = {name: jnp.zeros(rounds) for name in RoundInfo.__dataclass_fields__}
    return RoundInfo(**{**base, **{k: jnp.asarray(v) for k, v in fields.items()}})


def test_stop_rounds_and_masking():
    info = info_of(
        n_labeled=[10, 20, 30, 40, 50],
        eval_correct=[100, 200, 260, 250, 300],
        min_confidence=[0.1, 0.3, 0.6, 0.5, 0.9],
        agreement=[0.0, 0.99, 0.99, 0.5, 0.99],
        test_accuracy=[0.1, 0.2, 0.3, 0.4, 0.5],
    )
    stops = stop_rounds(info, budget=30, target_eval_correct=250, min_confidence=0.8, kappa=0.95, window=2)
    assert {k: int(v) for k, v in stops.items()} == {"budget": 2, "target_eval_correct": 2, "min_confidence": 4, "kappa": 2}
    assert int(stop_rounds(info, kappa=0.95, window=3)["kappa"]) == 5  # never: the time axis' length
    stopped = stop_at(info, stops["budget"])
    np.testing.assert_array_equal(stopped.n_labeled, [10, 20, 30, 30, 30])
    np.testing.assert_allclose(stopped.test_accuracy, [0.1, 0.2, 0.3, 0.3, 0.3])
    # seeds as a leading axis, one stop per seed
    both = jax.tree.map(lambda a: jnp.stack([a, a]), info)
    np.testing.assert_array_equal(stop_at(both, jnp.array([0, 4])).n_labeled, [[10] * 5, [10, 20, 30, 40, 50]])


def test_loop_reports_stopping_info():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int32)
    data = Data(pool=make_pool(x, y, 44), eval=make_split(x[:10], y[:10]), test=make_split(x[:10], y[:10]))
    config = Config(n_initial=4, query_size=2, rounds=3, n_classes=2, initial="kmeans")
    state, info = jax.jit(make_run(config))(data, Hyper(), jax.random.key(0))
    assert info.min_confidence.shape == info.agreement.shape == (4,)
    assert jnp.all((info.min_confidence >= 0.5) & (info.min_confidence <= 1.0))
    assert jnp.all(info.agreement <= 1.0 + 1e-6)
    first = np.asarray(state.order[:4])
    assert len(set(first.tolist())) == 4 and np.all(first < 40)  # k-means cold start: distinct, valid rows
