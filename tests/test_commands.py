"""Every committed number carries the command that reproduces it: the commands the study's and the
reproduction's reports print under their tables, rerun, give those tables' digits (here at a tiny size,
on synthetic 10-class datasets)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

import reproduce
import study
from aljax import store
from aljax.compare import at_labels, summary
from aljax.data import dev_data, load_dataset
from test_cli import write_idx
from test_reproduce import PLAN, tiny_raw

ROOT = Path(__file__).resolve().parents[1]


def ten_class_blobs(folder: Path) -> Path:
    """An idx:DIR dataset of 2x2 float images in 10 classes (MNIST's count, which the study's Config
    assumes), 80 training and 40 test images."""
    rng = np.random.default_rng(1)
    means = rng.normal(0, 1, (10, 2, 2))
    splits = []
    for n in (80, 40):
        y = (np.arange(n) % 10).astype(np.uint8)
        splits.append(((means[y] + rng.normal(0, 0.4, (n, 2, 2))).astype(np.float32), y))
    return write_idx(folder, *splits)


def test_the_study_command_reproduces_the_study_digits(tmp_path):
    setting = study.Setting("T", "tiny", f"idx:{ten_class_blobs(tmp_path / 'blobs')}", pool_size=50, n_initial=4,
                            budget=16, at=(16,), targets=(0.5,), query_size=4, dev_size=20, phases=2)
    data = dev_data(load_dataset(setting.dataset), setting.pool_size, setting.dev_size)
    n_seeds, chunk = 4, 2
    ran = study.run_seeds(data, setting.config("margin"), n_seeds, chunk, tmp_path / "checkpoints")
    expected = at_labels(ran["labels"], ran["acc"], setting.budget)

    line = study.command(dataclasses.asdict(setting), data.pool.size, "margin", setting.query_size, n_seeds, chunk)
    words = shlex.split(line)
    assert words[:2] == ["aljax", "run"] and "--schedule" in words and "--chunk-size" in words
    out = tmp_path / "rerun"
    words[words.index("--out") + 1] = str(out)
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "aljax", *words[1:], "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rerun = store.read_metrics(out)
    n_test = data.test.y.shape[0]  # metrics.csv holds float32 accuracies, the study correct / n_test in float64
    got = np.round(rerun["test_accuracy"][:, -1] * n_test) / n_test
    assert rerun["n_labeled"][0, -1] == setting.budget
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)  # seed by seed
    assert study.pct(summary(got)) == study.pct(summary(expected))  # the digits a report prints


def rerun(line: str, folder: Path, dataset: str) -> dict:
    """Run a printed ``[ENV=V ...] aljax run ...`` command (its ``--dataset`` and ``--out`` moved to the
    test's own) and read back its metrics.csv."""
    words = shlex.split(line)
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert words[:2] == ["aljax", "run"] and "--schedule" in words and "--chunk-size" in words
    words[words.index("--dataset") + 1] = dataset
    words[words.index("--out") + 1] = str(folder)
    done = subprocess.run([sys.executable, "-m", "aljax", *words[1:], "--quiet"], cwd=folder.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return store.read_metrics(folder)


def test_the_reproduction_commands_give_its_table_and_distribution_digits(tmp_path):
    raw = tiny_raw()
    folder = write_idx(tmp_path / "tiny", (raw.train_x, raw.train_y), (raw.test_x, raw.test_y))
    results = reproduce.reproduce(raw, PLAN, tmp_path / "out", command="python experiments/reproduce.py --tiny")
    report = (tmp_path / "out" / "report.md").read_text()
    names = PLAN.names()
    table, seeds = reproduce.table_commands(PLAN), reproduce.seeds_commands(PLAN, "seed")
    for line in (*table.values(), *seeds.values(), *reproduce.seeds_commands(PLAN, "dev").values()):
        assert f"`{line}`" in report  # the report prints every command this test reruns
    assert "Reproduce the table: `python experiments/reproduce.py --tiny`" in report

    row = next(r for r in results["rows"] if r["name"] == names["active"])
    got = rerun(table[names["active"]], tmp_path / "row", f"idx:{folder}")
    n_test = PLAN.test  # metrics.csv holds float32 accuracies; compare test-set counts
    assert got["n_labeled"][0].tolist() == row["curve_labels"]
    np.testing.assert_array_equal(np.round(got["test_accuracy"][0] * n_test), np.round(np.array(row["curve"]) * n_test))

    dist = next(s for s in results["multiseed"] if (s["protocol"], s["name"]) == ("seed", names["active"]))
    got = rerun(seeds[names["active"]], tmp_path / "seeds", f"idx:{folder}")
    np.testing.assert_array_equal(np.round(got["test_accuracy"][:, -1] * n_test), np.round(np.array(dist["values"]) * n_test))
