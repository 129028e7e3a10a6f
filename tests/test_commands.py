"""Every committed number carries the command that reproduces it: the command the study's report prints
under a table, rerun, gives that table's digits (here at a tiny size, on a synthetic 10-class dataset)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from aljax import store
from aljax.compare import at_labels, summary
from aljax.data import dev_data, load_dataset
from test_cli import idx_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import study  # noqa: E402


def ten_class_blobs(folder: Path) -> Path:
    """An idx:DIR dataset of 2x2 float images in 10 classes (MNIST's count, which the study's Config
    assumes), 80 training and 40 test images."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    means = rng.normal(0, 1, (10, 2, 2))
    for split, n in (("train", 80), ("t10k", 40)):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = (means[y] + rng.normal(0, 0.4, (n, 2, 2))).astype(np.float32)
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(x, 0x0D))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(y, 0x08))
    return folder


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
