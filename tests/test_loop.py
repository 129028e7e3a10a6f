import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aljax.data import seed_data
from aljax.loop import Config, Hyper, make_rounds, make_run
from aljax.precision import on_exact_device

CFG = Config(strategy="least_confidence", n_initial=4, query_size=5, rounds=6, initial="random")


@pytest.fixture(scope="module")
def seeds_run(tiny):
    run = jax.jit(jax.vmap(make_run(CFG), in_axes=(None, None, 0)))
    keys = jax.random.split(jax.random.key(1), 3)
    return keys, run(tiny, Hyper(), keys)


def test_exactly_k_new_labels_per_round_none_twice_no_padding(tiny, seeds_run):
    _, (state, info) = seeds_run
    n_valid = int(tiny.pool.valid.sum())
    assert info.n_labeled.shape == (3, CFG.rounds + 1)
    np.testing.assert_array_equal(info.n_labeled[0], CFG.n_initial + CFG.query_size * np.arange(CFG.rounds + 1))
    for s in range(3):
        order = np.asarray(state.order[s])
        assert len(set(order.tolist())) == CFG.budget  # none twice
        assert order.max() < n_valid  # padding rows are the last ones and never chosen
        assert int(state.labeled[s].sum()) == CFG.budget
        np.testing.assert_array_equal(np.flatnonzero(state.labeled[s]), np.sort(order))
    assert int(info.wrong_labels.max()) == 0  # the true oracle never mislabels


def test_vmapped_equals_unbatched_and_same_key_is_bit_identical(tiny, seeds_run):
    keys, (state, info) = seeds_run
    run = jax.jit(make_run(CFG))
    for s in range(3):
        single_state, single_info = run(tiny, Hyper(), keys[s])
        np.testing.assert_array_equal(single_state.order, state.order[s])
        np.testing.assert_array_equal(single_info.eval_correct, info.eval_correct[s])
    first, _ = run(tiny, Hyper(), keys[0])
    again, _ = run(tiny, Hyper(), keys[0])
    np.testing.assert_array_equal(first.order, again.order)
    assert not np.array_equal(state.order[0], state.order[1])  # different seeds, different initial sets


def test_jit_equals_eager(tiny):
    cfg = dataclasses.replace(CFG, rounds=1)
    eager_state, eager_info = make_run(cfg)(tiny, Hyper(), jax.random.key(3))
    jit_state, jit_info = jax.jit(make_run(cfg))(tiny, Hyper(), jax.random.key(3))
    np.testing.assert_array_equal(eager_state.order, jit_state.order)
    np.testing.assert_array_equal(eager_info.eval_correct, jit_info.eval_correct)


def test_one_trace_per_experiment_across_keys_and_hyperparameters(tiny):
    traces = []
    inner = make_run(dataclasses.replace(CFG, rounds=3))

    def counted(data, hyper, key):
        traces.append(1)
        return inner(data, hyper, key)

    run = jax.jit(counted)
    for seed, lr in ((0, 0.1), (1, 0.05), (2, 0.2)):
        jax.block_until_ready(run(tiny, Hyper(learning_rate=jnp.float32(lr)), jax.random.key(seed)))
    assert len(traces) == 1 and run._cache_size() == 1


def test_auto_labeling_rounds_continue_a_grown_state(tiny):
    state, _ = jax.jit(make_run(CFG))(tiny, Hyper(), jax.random.key(0))
    auto = Config(strategy="most_confident", n_initial=1, query_size=8, rounds=2, oracle="model")
    new, info = jax.jit(make_rounds(auto))(tiny, Hyper(), state)
    assert new.order.shape == (CFG.budget + 16,)
    np.testing.assert_array_equal(new.order[: CFG.budget], state.order)  # history kept
    assert info.n_labeled.tolist() == [CFG.budget + 8, CFG.budget + 16]
    pool_y = np.asarray(tiny.pool.y)[np.asarray(new.order)]
    assert int(info.wrong_labels[-1]) == int(np.sum(pool_y != np.asarray(new.targets)))


def test_config_errors_are_one_line():
    with pytest.raises(ValueError, match=r"unknown strategy 'nope'.*choose one of: random"):
        Config(strategy="nope")
    with pytest.raises(ValueError, match="query_size must be at least 1"):
        Config(query_size=0)
    with pytest.raises(ValueError, match="exceeds the pool of 100"):
        Config(n_initial=10, rounds=20, query_size=5).check_pool(100)


@pytest.mark.mnist
def test_article_rows_on_real_mnist(mnist):
    """The article's deterministic rows and its single least-confidence run, to the test sample, on
    the CPU device whatever the accelerator (aljax.precision: exact results run there)."""
    with on_exact_device() as cpu:
        data = jax.device_put(seed_data(mnist), cpu)
        key = jax.random.key(0)
        for n, article_correct in ((4000, 369), (400, 335), (10, 152)):
            _, info = jax.jit(make_run(Config(n_initial=n, rounds=0)))(data, Hyper(), key)
            assert int(info.eval_correct[0]) == article_correct
        state, info = jax.jit(make_run(Config(n_initial=10, rounds=39)))(data, Hyper(), key)
        assert info.eval_correct.shape == (40,) and int(info.eval_correct[-1]) == 359  # 89.75 %
        auto_all = Config(strategy="most_confident", n_initial=1, query_size=3600, rounds=1, oracle="model")
        _, info = jax.jit(make_rounds(auto_all))(data, Hyper(), state)
        assert int(info.eval_correct[0]) == 359  # 89.75 %
        assert state.order.devices() == {cpu}


def test_phases_grow_the_buffer_inside_one_program(tiny):
    cfg = dataclasses.replace(CFG, phases=3)
    assert cfg.phase_edges() == [0, 2, 4, 6]
    traces = []
    inner = make_run(cfg)

    def counted(data, hyper, key):
        traces.append(1)
        return inner(data, hyper, key)

    state, info = jax.jit(counted)(tiny, Hyper(), jax.random.key(1))
    assert len(traces) == 1 and state.order.shape == (CFG.budget,)
    np.testing.assert_array_equal(info.n_labeled, CFG.n_initial + CFG.query_size * np.arange(CFG.rounds + 1))
    assert len(set(np.asarray(state.order).tolist())) == CFG.budget
    with pytest.raises(ValueError, match="phases must be between 1 and the number of rounds"):
        dataclasses.replace(CFG, phases=7)


def test_balanced_initial_labels_take_the_same_number_of_each_class_and_pair_across_strategies(tiny):
    from aljax.loop import init_state

    config = Config(n_initial=6, query_size=3, rounds=1, initial="balanced", n_classes=3)
    keys = jax.random.split(jax.random.key(0), 4)
    states = [init_state(config, tiny, Hyper(), k) for k in keys]
    for state in states:
        first = np.asarray(state.order[:6])
        assert len(set(first.tolist())) == 6 and np.asarray(tiny.pool.valid)[first].all()
        assert np.bincount(np.asarray(tiny.pool.y)[first], minlength=3).tolist() == [2, 2, 2]
    assert len({tuple(np.asarray(s.order[:6]).tolist()) for s in states}) > 1  # random per seed
    other = dataclasses.replace(config, strategy="margin")  # the initial labels do not depend on the strategy
    np.testing.assert_array_equal(init_state(other, tiny, Hyper(), keys[0]).order, states[0].order)
    with pytest.raises(ValueError, match="multiple of n_classes"):
        Config(n_initial=5, initial="balanced", n_classes=3)
