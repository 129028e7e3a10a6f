"""The benchmark's accounting (its timings are printed, never asserted)."""

import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "experiments"))
import bench  # noqa: E402

from aljax.data import DataError  # noqa: E402
from aljax.loop import Config, Hyper, make_rounds, make_run  # noqa: E402
from aljax.precision import backend  # noqa: E402


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


RAN_ON = {"kind": "CPU", "device": "cpu", "devices": 1, "cores": 2}


def fake_result() -> dict:
    """A result with one row of every table (the numbers are placeholders, the fields the tables read)."""
    run = {"rounds": 9, "aljax_s": 1.0, "numpy_s": 2.0, "speedup": 2.0, "compile_s": 1.0, "compilations": 1,
           "gflops": 1.0, "gbs": 1.0, "aljax_correct": 300, "numpy_correct": 300, "same_curve": True, "phases": 1}
    return {
        "command": "python experiments/bench.py --quick", "ran_on": RAN_ON, "numpy_threads": "1",
        "machine": {"matmul_gflops": 100.0, "matmul_n": 1024, "bandwidth_gbs": 10.0, "jax_copy_gbs": 9.0,
                    "numpy_copy_gbs": 10.0},
        "article": {"c": run, "d": run},
        "fit_steps": [{"seeds": 1, "rows": 400, "step_us": 10.0, "per_seed_step_us": 10.0, "gflops": 1.0,
                       "fraction_of_peak": 0.01, "gbs": 1.0, "fraction_of_bandwidth": 0.1}],
        "seeds": [{"schedule": "continuous", "seeds": 16, "group": 4, "phases": 1, "per_seed_s": 0.1,
                   "numpy_per_seed_s": 0.2, "speedup_per_seed": 2.0, "executed_gflops": 1.0, "fraction_of_peak": 0.01,
                   "wasted_steps": 0.1, "compilations": 1}],
        "cli": [{"seeds": 16, "command": "aljax run --seeds 16 --quiet --out OUT", "chunk_size": 64,
                 "schedule": "continuous", "wall_s": 3.0, "compile_s": 1.0, "per_seed_s": 0.2,
                 "numpy_per_seed_s": 0.2, "speedup_per_seed": 1.0}],
        "pool": [{"pool": 4000, "round_s": 0.1, "score_s": 0.01, "score_gbs": 1.0, "fraction_of_bandwidth": 0.1,
                  "numpy_score_s": 0.01, "peak_rss_gb": 1.0}],
        "pool_strategies": [{"strategy": "kcenter", "pool": 4000, "labels": 200, "query_size": 10, "new_s": 0.01,
                             "full_s": 0.02, "speedup": 2.0, "same_rows": 10, "same_prefix": 10}],
    }


def reproduce_after_blocks(text: str) -> list[str]:
    """The paragraph after each code block (a table) of ``text``, each checked to be a Reproduce line
    that names a backticked command."""
    lines, after, inside = text.splitlines(), [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            inside = not inside
            if not inside:
                following = next(t for t in lines[i + 1:] if t.strip())
                assert following.startswith("Reproduce ") and ": `" in following, following
                after.append(following)
    return after


def test_every_table_of_the_report_is_followed_by_the_command_that_reproduces_it():
    after = reproduce_after_blocks(bench.markdown(fake_result()))
    assert len(after) == 6  # machine + (c)/(d), fit steps, seeds, aljax run, pool, strategies
    assert all("Ran on: CPU (1 cpu device, 2 cores)" in line and "Elsewhere: times depend" in line for line in after)
    seeds_line, cli_line = after[2], after[3]
    assert "`python experiments/bench.py --quick`" in seeds_line and "its own columns" in seeds_line
    assert "`aljax run --seeds 16 --quiet --out OUT`" in cli_line and "chunks of 64, continuous" in cli_line


def test_only_strategies_records_the_command_and_the_machine_kind(mnist, tmp_path, monkeypatch, capsys):
    row = fake_result()["pool_strategies"]
    monkeypatch.setattr(bench, "load_mnist", lambda: mnist)
    monkeypatch.setattr(bench, "machine", lambda quick: fake_result()["machine"])
    monkeypatch.setattr(bench, "pool_strategies", lambda raw, quick: row)
    assert bench.main(["--only-strategies", "--quick", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "strategies.json").read_text())
    assert saved["command"] == f"python experiments/bench.py --only-strategies --quick --out {tmp_path}"
    assert saved["ran_on"]["kind"] == backend().upper()
    [line] = reproduce_after_blocks(capsys.readouterr().out)
    assert f"`{saved['command']}`" in line and f"Ran on: {backend().upper()} (" in line


def test_missing_data_is_one_line_and_exit_2(monkeypatch, capsys):
    def missing():
        raise DataError("data/mnist/train-images-idx3-ubyte: missing; run `make data`")

    monkeypatch.setattr(bench, "load_mnist", missing)
    assert bench.main(["--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "make data" in err


def test_bench_deep_prints_its_table_with_the_command_and_the_machine_kind(tmp_path, capsys):
    import bench_deep

    argv = ["--quick", "--seeds", "2", "--batch", "8", "--model", "mlp(hidden=8,dropout=0.5)", "--out", str(tmp_path)]
    assert bench_deep.main(argv) == 0
    saved = json.loads((tmp_path / "bench_deep.json").read_text())
    assert saved["command"] == ("python experiments/bench_deep.py --quick --seeds 2 --batch 8 --model "
                                f"'mlp(hidden=8,dropout=0.5)' --out {tmp_path}")
    assert saved["ran_on"]["kind"] == backend().upper() and saved["torch"] is None  # torch: cnn_gal2017 only
    report = (tmp_path / "report.md").read_text()
    assert report in capsys.readouterr().out
    [line] = reproduce_after_blocks(report)
    assert f"`{saved['command']}`" in line and f"Ran on: {backend().upper()} (" in line
    assert "2 seeds as one vmap" in line and "PyTorch: not run" in line
