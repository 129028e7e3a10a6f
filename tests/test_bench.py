"""The benchmark's accounting (its timings are printed, never asserted)."""

import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "experiments"))
import bench  # noqa: E402

from aljax.loop import Config, Hyper, make_rounds, make_run  # noqa: E402


def test_buffer_rows_follow_the_phases():
    np.testing.assert_array_equal(bench.buffer_rows(Config(rounds=39)), np.full(40, 400))
    rows = bench.buffer_rows(Config(rounds=39, phases=3))
    np.testing.assert_array_equal(rows, [10] + [140] * 13 + [270] * 13 + [400] * 13)
    np.testing.assert_array_equal(bench.buffer_rows(Config(rounds=4, phases=2), start=400), [420, 420, 440, 440])


def test_buffer_rows_match_the_engine(tiny):
    config = Config(n_initial=4, query_size=3, rounds=6, phases=3, initial="random")
    state, info = jax.jit(make_run(config))(tiny, Hyper(), jax.random.key(0))
    assert bench.buffer_rows(config).shape == info.steps.shape
    assert state.order.shape[0] == bench.buffer_rows(config)[-1]
    more = Config(n_initial=4, query_size=3, rounds=2, phases=2)
    state, _ = jax.jit(make_rounds(more))(tiny, Hyper(), state)
    assert state.order.shape[0] == bench.buffer_rows(more, start=config.budget)[-1]


def test_cost_counts_two_buffer_reads_per_step_and_one_pool_pass_per_fit():
    d, c = bench.D, bench.C
    flops, moved = bench.cost(np.array([[3, 5]]), np.array([10, 20]), n_eval=7, n_pool=100)
    assert flops == (3 * 4 * 10 + 5 * 4 * 20) * d * c + 8 * 2 * 7 * d * c + 2 * 2 * 100 * d * c
    assert moved == (3 * 8 * 10 + 5 * 8 * 20) * d + 8 * 4 * 7 * d + 2 * 4 * 100 * d


def test_gal_round_adds_the_full_protocols_training_and_scoring_at_the_measured_rates():
    import bench_deep

    r = bench_deep.gal_round({"1 seed": 100.0}, {"1 seed": 1000.0},
                             {"train_images_per_s": 50.0, "score_images_per_s": 500.0})
    assert r["train_images"] == 50 * 1024 and r["score_images"] == 59_000 * 20  # deep.py --mode gpu, gal2017_aljax_old
    assert r["aljax_s"]["1 seed"] == r["train_images"] / 100 + r["score_images"] / 1000
    assert r["torch_s"] == 2 * r["aljax_s"]["1 seed"]
