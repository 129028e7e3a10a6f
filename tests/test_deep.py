"""experiments/deep.py: every strategy of both protocols runs, seeds are paired, units are saved and
resumed, the GPU mode's protocols run at tiny sizes, and the report states one counting rule."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import deep  # noqa: E402

from aljax.precision import backend  # noqa: E402


def tiny(experiment: deep.Experiment, strategies: tuple[str, ...]) -> deep.Experiment:
    """``experiment``'s protocol (fitter mode, decay, subset, wrappers) at seconds-sized settings: a small
    dropout MLP in place of the CNN (wrappers kept), 3 passes, 4 MC samples, 6 -> 12 labels by 3."""
    model = experiment.model.replace("cnn_batchbald2019", "mlp(hidden=16,dropout=0.5)")
    model = model.replace(deep.SCRIPT_NET, "mlp(hidden=16,dropout=0.5)").replace(deep.PAPER_NET,
                                                                                 "mlp(hidden=16,dropout=0.5)")
    fitter = (experiment.fitter.replace("Dense_0/kernel", "W1").replace("max_epochs=50", "max_epochs=3")
              .replace("max_epochs=30", "max_epochs=3").replace("epoch_points=5056", "epoch_points=32")
              .replace("epoch_points=1024", "epoch_points=32"))
    return dataclasses.replace(experiment, model=model.replace("samples=100", "samples=3"), fitter=fitter,
                               strategies=strategies, query_sizes=(3,), budget=12, n_initial=6, mc_samples=4,
                               configs=20, chunk=None, subset=None if experiment.subset is None else 40,
                               dev_size=0, learning_rate=1e-2)


def test_gpu_mode_protocols_run_at_tiny_sizes_and_resume_unit_by_unit(tmp_path, monkeypatch, capsys):
    gpu = deep.MODES["gpu"]
    assert gpu.seeds >= 16 and [e.name for e in gpu.experiments][:2] == ["gal2017", "batchbald2019"]
    gal, kirsch = gpu.experiments[:2]
    assert set(gal.strategies) == {"random", "bald", "variation_ratios", "max_entropy", "mean_std", "epig"}
    assert gal.budget == 300 and kirsch.budget == 200 and kirsch.query_sizes[0] == 10
    assert gal.strategy_spec("bald") == "subsample(bald(samples=100,chunk=256),2000)"
    small = dataclasses.replace(gpu, seeds=2, chunk=2, synthetic=True, at=(9, 12), targets=(0.6,),
                                experiments=(tiny(gal, ("random", "bald")), tiny(kirsch, ("batchbald",))))
    monkeypatch.setitem(deep.MODES, "gpu", small)

    assert deep.main(["--mode", "gpu", "--out", str(tmp_path), "--max-minutes", "0"]) == 0  # nothing started
    assert not (tmp_path / "units").exists() and "3 units left" in capsys.readouterr().out
    assert deep.main(["--mode", "gpu", "--out", str(tmp_path)]) == 0
    saved = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert saved == ["batchbald2019_q3_batchbald.json", "gal2017_q3_bald.json", "gal2017_q3_random.json"]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "units").iterdir()}
    capsys.readouterr()
    assert deep.main(["--mode", "gpu", "--out", str(tmp_path)]) == 0  # resumes: every unit is already saved
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "units").iterdir()} == stamps
    assert "final acc" not in capsys.readouterr().out

    results = json.loads((tmp_path / "deep.json").read_text())
    size = results["experiments"]["gal2017"]["sizes"]["3"]
    assert size["paired_initial_labels"] and set(size["summary"]) == {"random", "bald"}
    reach = size["summary"]["bald"]["reach"]["0.60"]
    assert {"median", "q1", "q3", "mean", "low", "high", "never", "mean_curve"} <= set(reach)
    assert "final_vs_random" in size["summary"]["bald"]
    report = (tmp_path / "report.md").read_text()
    assert "subsample(bald(samples=4),40)" in report and "Counting rule" in report and "curve" in report
    assert results["command"] == f"python experiments/deep.py --mode gpu --out {tmp_path}"
    assert results["machine"]["kind"] == backend().upper()
    assert size["seeds_ran"]["bald"]["chunk"] == 2 and size["seeds_ran"]["bald"]["schedule"] in ("continuous",
                                                                                                 "lockstep")
    paragraphs = reproduce_after_tables(report)
    assert len(paragraphs) == 2  # one per (experiment, acquisition size)
    for line in paragraphs:  # --out changes where units live, not the numbers: the command leaves it out
        assert "`python experiments/deep.py --mode gpu`" in line and f"Ran on: {backend().upper()} (" in line
        assert "chunk of 2 seeds" in line and "Elsewhere:" in line


def reproduce_after_tables(report: str) -> list[str]:
    """The paragraph after each Markdown table of ``report``, each checked to be a Reproduce line that
    names a backticked command."""
    lines, after = report.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("|") and (i + 1 == len(lines) or not lines[i + 1].startswith("|")):
            following = next(text for text in lines[i + 1:] if text.strip())
            assert following.startswith("Reproduce ") and ": `" in following, following
            after.append(following)
    return after


def test_the_committed_report_renders_from_its_json_with_a_reproduce_line_under_each_table():
    """docs/deep/deep.json predates the recorded command, machine and schedule: the report falls back to the
    mode's command, the recorded device string, and the schedule derived from the mode and the plan."""
    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "docs" / "deep" / "deep.json").read_text())
    assert "command" not in results and "machine" not in results
    report = deep.report(results, results["mode"], deep.MODES[results["mode"]], root / "docs" / "deep")
    assert report == (root / "docs" / "deep" / "report.md").read_text()  # the committed report is this rendering
    [line] = reproduce_after_tables(report)
    assert "`python experiments/deep.py --mode cpu`" in line and "Ran on: CPU (cpu (cpu, 1 device" in line
    assert "continuous lanes, 4 seeds" in line and "not recorded in this JSON" in line


def test_crossings_follow_the_stated_counting_rule():
    labels = np.array([20, 30, 40, 50])
    acc = np.array([[0.5, 0.9, 0.9, 0.9], [0.5, 0.6, 0.7, 0.95], [0.1, 0.2, 0.3, 0.4]])
    r = deep.crossings(labels, acc, 0.9)
    assert (r["median"], r["q1"], r["q3"], r["n"], r["never"]) == (40.0, 35.0, 45.0, 2, 1)
    assert np.isnan(r["mean_curve"])  # the mean curve (0.37, 0.57, 0.63, 0.75) never reaches 0.9
    assert deep.crossings(labels, acc, 0.6)["mean_curve"] == 40.0


def test_published_numbers_are_converted_to_our_rule():
    assert deep.published("gal2017", "bald", 10) == "165 / 355 (mean curve, 3 repeats)"  # Table 1: 145 + 20
    assert deep.published("batchbald2019", "batchbald", 10).startswith("100 (80–120)")  # notebook + b
    assert deep.published("gal2017", "epig", 10) == "—"


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_modes_configs_build(mode):
    for exp in deep.MODES[mode].experiments:
        for q in exp.query_sizes:
            for strategy in exp.strategies:
                exp.config(strategy, q, 10)  # builds model, fitter and strategy: one-line errors otherwise


def test_mc_averaged_predict_is_the_mean_of_k_consistent_samples_its_apply_the_inner_models():
    """BatchBALD's split: the test-time predictive (``predict``) is the MC average, every ``apply`` (the
    dev split's early stopping, the strategies' logits) the inner model's; ``standardized`` scales
    inputs in every pass, and wrappers carry ``predict`` in either order and through ``chunked``."""
    import jax
    import jax.numpy as jnp

    from aljax.forward import mc_dropout_logits
    from aljax.models import chunked, make_model, predictive

    x = jax.random.normal(jax.random.key(1), (5, 4, 4, 1))
    inner = make_model("mlp(hidden=8,dropout=0.5)", 3)
    params = inner.init(jax.random.key(0), (4, 4, 1))
    assert inner.predict is None and predictive(inner) is inner.apply  # no hook: the eval-mode apply itself
    averaged = make_model("mc_averaged(mlp(hidden=8,dropout=0.5),samples=7)", 3)
    assert predictive(averaged) is averaged.predict
    probs = jax.nn.softmax(mc_dropout_logits(inner, params, x, jax.random.key(0), 7)).mean(axis=0)
    np.testing.assert_allclose(jnp.exp(averaged.predict(params, x)), probs, rtol=1e-5)
    assert not np.allclose(probs, jax.nn.softmax(inner.apply(params, x)))  # not the eval-mode pass
    np.testing.assert_array_equal(averaged.apply(params, x), inner.apply(params, x))  # dev evaluation: dropout off
    key = jax.random.key(2)
    np.testing.assert_array_equal(averaged.apply(params, x, key=key, train=True),
                                  inner.apply(params, x, key=key, train=True))
    scaled = make_model("standardized(mlp(hidden=8,dropout=0.5),mean=0.5,std=2.0)", 3)
    np.testing.assert_allclose(scaled.apply(params, x), inner.apply(params, (x - 0.5) / 2.0), rtol=1e-6)
    assert scaled.predict is None
    outside = make_model("standardized(mc_averaged(mlp(hidden=8,dropout=0.5),samples=7),mean=0.5,std=2.0)", 3)
    within = make_model("mc_averaged(standardized(mlp(hidden=8,dropout=0.5),mean=0.5,std=2.0),samples=7)", 3)
    on_scaled = averaged.predict(params, (x - 0.5) / 2.0)
    np.testing.assert_allclose(outside.predict(params, x), on_scaled, rtol=1e-5)
    np.testing.assert_allclose(within.predict(params, x), on_scaled, rtol=1e-5)
    np.testing.assert_allclose(outside.apply(params, x), scaled.apply(params, x), rtol=1e-6)
    np.testing.assert_allclose(chunked(averaged, 2).predict(params, x), averaged.predict(params, x), rtol=1e-6)
    assert chunked(inner, 2).predict is None


def test_a_run_reports_test_accuracy_from_predict_and_stops_early_on_plain_apply():
    """A run of an ``mc_averaged`` model: test accuracy and test NLL from its MC-averaged ``predict``,
    the fit's early-stopping count (``eval_correct``) from the plain eval-mode ``apply``."""
    import jax

    from aljax.config import Config, components
    from aljax.fit import Hyper, n_correct, softmax_xent
    from aljax.schedules import make_run
    from conftest import synthetic

    data = synthetic(pad=8)
    config = Config(strategy="margin", model="mc_averaged(mlp(hidden=8,dropout=0.5),samples=4)", n_initial=6,
                    query_size=5, rounds=2, initial="random", n_classes=3, metrics="test_nll")
    state, info = jax.jit(make_run(config))(data, Hyper(max_steps=np.int32(30)), jax.random.key(0))
    model, n_test = components(config).model, data.test.y.shape[0]
    assert int(info.eval_correct[-1]) == int(n_correct(model.apply, state.params, data.eval))
    by_predict = n_correct(model.predict, state.params, data.test)
    assert float(info.test_accuracy[-1]) == float(by_predict / n_test)
    assert int(by_predict) != int(n_correct(model.apply, state.params, data.test))  # 28 against 31: told apart
    nll = float(np.mean(softmax_xent(model.predict(state.params, data.test.x), data.test.y)))
    plain = float(np.mean(softmax_xent(model.apply(state.params, data.test.x), data.test.y)))
    np.testing.assert_allclose(info.extra["test_nll"][-1], nll, rtol=1e-5)
    assert abs(nll - plain) > 1e-3  # the two passes differ: the check above tells them apart


def test_the_issues_cli_cnn_run_learns_with_its_recipe_at_tiny_sizes(mnist):
    """`aljax run --model cnn_gal2017 --strategy bald --initial random --init 20 --query-size 10 --budget
    60 --seeds 2` with everything else from the recipe (its 50 passes of ⌈N/128⌉ = 1 step; a narrower CNN,
    a 300-image pool and 500 test images to keep it cheap): well above chance (10 %) at 60 labels."""
    from aljax.cli import build_parser, build, check, resolve
    from aljax.data import Split, dev_data

    flags = ["--model", "cnn_gal2017", "--strategy", "bald", "--initial", "random", "--init", "20",
             "--query-size", "10", "--budget", "60", "--seeds", "2", "--out", "unused"]
    settings, sources = resolve(build_parser().parse_args(["run", *flags]))
    assert sources["fitter"] == sources["optimizer"] == sources["learning_rate"] == "recipe cnn_gal2017"
    settings |= {"model": "cnn_gal2017(filters=8,hidden=32)", "n_classes": 10}
    config, hyper = build(settings, check(settings))
    data = dev_data(mnist, pool_size=300, dev_size=100)
    data = dataclasses.replace(data, test=Split(data.test.x[:500], data.test.y[:500]))
    curves = deep.run_config(data, config, hyper, n_seeds=2, chunk=2)
    assert curves["labels"][-1] == 60
    assert float(np.mean(np.asarray(curves["acc"])[:, -1])) > 0.4, curves["acc"]
    assert np.asarray(hyper.learning_rate) == np.float32(0.001)
