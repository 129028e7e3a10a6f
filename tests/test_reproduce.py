"""experiments/reproduce.py end to end on a tiny synthetic dataset: JSON fields, report, figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import reproduce

from aljax.data import Raw

PLAN = reproduce.Plan(pool=40, test=20, dev=20, initial=2, query=2, budget=10, seeds=3, auto_seeds=2)


def tiny_raw(seed: int = 0) -> Raw:
    """8x8 uint8 images: one noisy prototype per class (10 classes)."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (10, 8, 8))

    def draw(n):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = np.clip(protos[y] + rng.normal(0, 60, (n, 8, 8)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int32)

    train_x, train_y = draw(PLAN.pool + PLAN.dev)
    test_x, test_y = draw(30)
    return Raw(train_x, train_y, test_x, test_y, name="tiny")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    return reproduce.reproduce(tiny_raw(), PLAN, out), out


def test_results_json_has_the_promised_fields(full):
    results, out = full
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert {"protocol", "rows", "multiseed", "timing_s", "versions"} <= results.keys()
    names = [r["name"] for r in results["rows"]]
    assert names == ["all_40", "first_10", "first_2", "active_10", "auto_all", "auto_confident"]
    by = {r["name"]: r for r in results["rows"]}
    assert len(by["active_10"]["curve"]) == 1 + (PLAN.budget - PLAN.initial) // PLAN.query
    assert by["active_10"]["curve_labels"] == list(range(PLAN.initial, PLAN.budget + 1, PLAN.query))
    assert len(by["auto_confident"]["curve"]) == (PLAN.pool - PLAN.budget) // PLAN.query
    assert by["auto_confident"]["labels"] == by["auto_all"]["labels"] == PLAN.pool
    for r in results["rows"]:
        assert r["article"] is None and r["diff_samples"] is None  # not the article's sizes
        assert r["accuracy"] == r["curve"][-1] and r["steps"] >= len(r["curve"])
    assert by["active_10"]["wrong_labels"] == 0  # the true oracle never mislabels


def test_multiseed_summaries(full):
    results, _ = full
    rows = {(s["protocol"], s["name"]): s for s in results["multiseed"]}
    assert set(rows) == {(p, n) for p in ("seed", "dev") for n in ("active_10", "random_10", "auto_confident")}
    for (protocol, name), s in rows.items():
        assert s["n_seeds"] == (PLAN.auto_seeds if name == "auto_confident" else PLAN.seeds) == len(s["values"])
        assert s["ci95_low"] <= s["mean"] <= s["ci95_high"]
        assert s["mean"] == pytest.approx(np.mean(s["values"]))
        assert s["dev_labels"] == (PLAN.dev if protocol == "dev" else 0)
    curves = {(c["protocol"], c["name"]): c for c in results["curves"]}
    assert len(curves[("seed", "active_10")]["mean"]) == len(curves[("seed", "active_10")]["labels"]) == 5


def test_report_shows_the_json_numbers(full):
    results, out = full
    report = (out / "report.md").read_text()
    for r in results["rows"]:
        line = next(line for line in report.splitlines() if line.startswith(f"| {r['name']} |"))
        assert f"| {100 * r['accuracy']:.2f} % | {r['correct']} |" in line
    for s in results["multiseed"]:
        line = next(line for line in report.splitlines() if line.startswith(f"| {s['protocol']} | {s['name']} |"))
        assert f"{100 * s['mean']:.2f} %" in line and f"{100 * s['ci95_low']:.2f} %" in line
    for file in results["figures"].values():
        assert f"]({file})" in report
        assert (out / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # atomic writes leave no temp files


def test_clusters_purity_is_a_fraction(full):
    clusters = full[0]["clusters"]
    assert 0.1 <= clusters["purity"] <= 1 and sum(clusters["sizes"]) == PLAN.pool


@pytest.mark.parametrize("argv, message", [
    (["--auto-seeds", "1"], "--auto-seeds"),
    (["--seeds", "4", "--auto-seeds", "8"], "--auto-seeds"),
    (["--pool", "405"], "multiples"),
])
def test_bad_arguments_fail_in_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("aljax reproduce: error:") and message in err
    assert err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_missing_data_fails_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "python -m aljax.fetch --dataset mnist --dest" in err and not (tmp_path / "out").exists()


def test_article_sizes_attach_the_article_numbers():
    plan = reproduce.Plan()
    assert plan.is_article and plan.article("active_400") == 0.8975
    assert set(plan.names().values()) >= set(reproduce.ARTICLE)
    assert reproduce.Plan(pool=800).article("first_400") is None
