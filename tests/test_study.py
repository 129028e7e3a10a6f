"""The study's statistics against hand-computed values, and a tiny end-to-end study."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from aljax.compare import at_labels, auc, labels_to_reach, paired, reach_summary, summary
from aljax.data import Raw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import study  # noqa: E402

LABELS = np.array([10, 20, 30, 40])
ACC = np.array([
    [0.50, 0.70, 0.80, 0.90],
    [0.40, 0.60, 0.60, 0.85],
    [0.30, 0.40, 0.50, 0.60],
])


def test_labels_to_reach_is_the_first_crossing_per_seed():
    np.testing.assert_array_equal(labels_to_reach(LABELS, ACC, 0.6), [20, 20, 40])
    np.testing.assert_array_equal(labels_to_reach(LABELS, ACC, 0.85), [40, 40, np.nan])
    r = reach_summary(LABELS, ACC, 0.85)
    assert (r["mean"], r["n"], r["never"], r["seeds"]) == (40, 2, 1, 3)
    assert reach_summary(LABELS, ACC, 0.95)["n"] == 0 and reach_summary(LABELS, ACC, 0.95)["never"] == 3


def test_auc_is_the_mean_accuracy_over_the_budget():
    # seed 0: trapezoids (0.6 + 0.75 + 0.85) * 10 / 30
    np.testing.assert_allclose(auc(LABELS, ACC)[0], (0.6 + 0.75 + 0.85) / 3)
    np.testing.assert_allclose(auc(LABELS, ACC, upto=30)[1], (0.5 + 0.6) / 2)
    np.testing.assert_allclose(auc(LABELS, np.full((2, 4), 0.7)), [0.7, 0.7])


def test_paired_difference_wins_and_t_interval():
    a, b = np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.8, 0.8, 0.5, 0.7])
    p = paired(a, b)  # differences 0.1, 0, 0.2, -0.1: mean 0.05, sd sqrt(0.05/3)
    half = 3.182446305284263 * np.sqrt(0.05 / 3) / 2  # t_{0.975, 3}
    np.testing.assert_allclose([p["mean"], p["low"], p["high"]], [0.05, 0.05 - half, 0.05 + half])
    assert (p["wins"], p["ties"], p["losses"], p["n"]) == (0.5, 0.25, 0.25, 4)
    with pytest.raises(ValueError, match="equal-length"):
        paired(a, b[:3])


def test_at_labels_and_summary_edges():
    np.testing.assert_array_equal(at_labels(LABELS, ACC, 30), [0.8, 0.6, 0.5])
    with pytest.raises(ValueError, match="no fit at 35 labels"):
        at_labels(LABELS, ACC, 35)
    assert np.isnan(summary([]).get("mean")) and summary([0.5])["n"] == 1


def test_study_covers_the_registry_but_auto_labeling_and_sampled_acquisitions():
    names = study.study_strategies()
    assert names[0] == "random" and "most_confident" not in names
    assert {"bald", "batchbald", "mean_std"} <= set(study.SAMPLED)
    assert set(names) == set(study.STRATEGIES) - {"most_confident", *study.SAMPLED}


def test_seed_keys_do_not_depend_on_the_chunk():
    a = jax.random.key_data(study.seed_keys(0, 5))[3]
    b = jax.random.key_data(study.seed_keys(3, 4))[0]
    np.testing.assert_array_equal(a, b)


def tiny_raw(n_train=60, n_test=30, seed=0) -> Raw:
    """Two classes of 4x4 images, bright in the top or bottom half, with noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 90, (n, 4, 4))
        x[y == 0, :2] += 150
        x[y == 1, 2:] += 150
        return x.astype(np.uint8), y.astype(np.int32)

    return Raw(*make(n_train), *make(n_test), name="tiny")


TINY = study.Setting("T", "tiny", "tiny", pool_size=40, n_initial=2, budget=10, at=(4, 10),
                     targets=(0.6, 0.99), query_size=2, dev_size=20)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = study.run_setting(TINY, tiny_raw(), out, ["random", "margin"], n_seeds=3, chunk=2,
                               query_sizes=(2, 4), query_strategies=("margin",),
                               combinators=(("margin", "random"), ("not_registered", "random")))
    results = {"meta": {"mode": "test", "strategies": ["random", "margin"], "left_out": ["most_confident"],
                        "notes": ["a note"]}, "settings": {"T": result}}
    (out / "study.json").write_text(json.dumps(results))
    study.write_report(results, out)
    return out, result


def test_tiny_study_json_structure(tiny_study):
    out, r = tiny_study
    assert r["paired_initial_labels"] is True and r["seeds"] == 3
    margin = r["strategies"]["margin"]
    assert margin["labels"] == [2, 4, 6, 8, 10]
    assert set(margin["at"]) == {"4", "10"} and set(margin["reach"]) == {"0.60", "0.99"}
    assert margin["vs_random"]["auc"]["n"] == 3 and "vs_random" not in r["strategies"]["random"]
    assert [c["variant"] for c in r["combinators"]] == ["margin"]
    q = r["query_size"]["margin"]
    assert q["common_labels"] == [6, 10] and q["sizes"]["4"]["rounds"] == 2
    assert q["sizes"]["2"]["vs_base_auc"]["mean"] == 0  # the base against itself
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["T_margin_q2_s3.json", "T_margin_q4_s3.json", "T_random_q2_s3.json"]
    stored = json.loads((out / "runs" / "T_margin_q2_s3.json").read_text())
    assert np.asarray(stored["acc"]).shape == (3, 5)
    # every paired number equals the difference of the per-seed curves stored in runs/
    ref = json.loads((out / "runs" / "T_random_q2_s3.json").read_text())
    np.testing.assert_allclose(margin["vs_random"]["at"]["10"]["mean"],
                               np.mean(np.asarray(stored["acc"])[:, -1] - np.asarray(ref["acc"])[:, -1]))


def test_tiny_study_report_and_figures(tiny_study):
    out, r = tiny_study
    report = (out / "report.md").read_text()
    assert "## Setting T: tiny" in report and "| margin |" in report and "Query size, margin" in report
    assert f"{100 * r['strategies']['margin']['auc']['mean']:.1f}" in report
    assert "- a note" in report
    for name in ("T_curves.png", "T_vs_random.png", "T_query_size.png"):
        assert (out / name).stat().st_size > 1000


def test_other_settings_of_the_same_mode_are_kept(tiny_study):
    out, r = tiny_study
    assert study.kept_settings(out, "test", ["A"]) == {"T": json.loads(json.dumps(r))}
    assert study.kept_settings(out, "test", ["T"]) == {}
    assert study.kept_settings(out, "full", ["A"]) == {}
    assert study.kept_settings(out / "nothing", "test", ["A"]) == {}


def test_stored_runs_are_reused(tiny_study, capsys):
    out, _ = tiny_study
    data = study.dev_data(tiny_raw(), TINY.pool_size, TINY.dev_size)
    again = study.cached_run(out, TINY, data, "random", 2, 3, chunk=3, fresh=False)
    assert "reused" in capsys.readouterr().out and len(again["acc"]) == 3


def test_missing_dataset_is_a_one_line_error(tmp_path, capsys):
    assert study.main(["--settings", "C", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "aljax.fetch --dataset fashion_mnist" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_killed_run_resumes_from_its_chunk_checkpoints(tmp_path, monkeypatch, capsys):
    data = study.dev_data(tiny_raw(), TINY.pool_size, TINY.dev_size)
    run_seeds = study.seeds.run_seeds

    class Killed(Exception):
        pass

    def killed_after_one_chunk(*args, on_chunk, **kwargs):
        def save_then_die(*chunk):
            on_chunk(*chunk)
            raise Killed

        return run_seeds(*args, on_chunk=save_then_die, **kwargs)

    monkeypatch.setattr(study.seeds, "run_seeds", killed_after_one_chunk)
    with pytest.raises(Killed):
        study.cached_run(tmp_path, TINY, data, "margin", 2, 3, chunk=2, fresh=False)
    assert len(list((tmp_path / "runs").glob("*.partial/chunks/chunk-*.npz"))) == 1
    monkeypatch.undo()
    resumed = study.cached_run(tmp_path, TINY, data, "margin", 2, 3, chunk=2, fresh=False)
    assert "resuming: 1/2 chunks" in capsys.readouterr().out
    whole = study.cached_run(tmp_path / "other", TINY, data, "margin", 2, 3, chunk=2, fresh=False)
    assert resumed["acc"] == whole["acc"] and resumed["initial"] == whole["initial"]
    assert not list((tmp_path / "runs").glob("*.partial"))  # checkpoints go once the run is stored
