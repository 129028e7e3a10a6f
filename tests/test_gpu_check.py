"""experiments/gpu_check.py (`make gpu-check`) at tiny size on CPU: every step runs and lands in one
JSON and one report, so the GPU check cannot rot between GPU sessions."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aljax.precision import backend
from test_cli import blobs_dataset

ROOT = Path(__file__).parents[1]
SPEC = importlib.util.spec_from_file_location("gpu_check", ROOT / "experiments" / "gpu_check.py")
gpu_check = sys.modules.setdefault("gpu_check", importlib.util.module_from_spec(SPEC))
SPEC.loader.exec_module(gpu_check)


def blobs(folder: Path) -> Path:
    """A 4-class idx:DIR dataset of 4x4 float images: 160 training and 60 test images."""
    return blobs_dataset(folder, classes=4, side=4, n_train=160, n_test=60)


def check(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu_check.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def test_every_step_runs_at_tiny_size_into_one_json_and_one_report(tmp_path):
    out = tmp_path / "out"
    proc = check(["--tiny", "--dataset", f"idx:{blobs(tmp_path / 'blobs')}", "--out", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "gpu_check.json").read_text())
    by = {step["name"]: step for step in results["steps"]}
    assert list(by) == ["tests", "run_c_4", "cpu_vs_gpu", "c_then_d", "bench_deep", "numpy"]
    assert all(step["status"] == "ok" and "result" in step for step in by.values()), by
    assert by["tests"]["result"]["counts"]["passed"] >= 1
    assert by["run_c_4"]["result"]["seeds"] == 4
    agree = by["cpu_vs_gpu"]["result"]  # on a CPU, the same command twice: the same seeds, the same accuracies
    assert by["cpu_vs_gpu"]["shell"].startswith("JAX_PLATFORMS=cpu python -m aljax run ")
    assert agree["paired_seeds"] == agree["same_final"] == 4 and agree["agree"]
    assert agree["difference"]["mean"] == 0 and agree["cpu"]["mean"] == agree["accelerator"]["mean"]
    cd = by["c_then_d"]["result"]
    assert cd["seeds"] == 4 and cd["auto_rounds"] == (120 - 20) // 4 and 0 < cd["d_mean_test_accuracy"] <= 1
    assert by["bench_deep"]["result"]["jax_train_images_per_s"]["1 seed"] > 0
    assert by["numpy"]["result"]["seeds"] == 2 and len(by["numpy"]["result"]["correct"]) == 2
    assert results["tiny"] and results["machine"]["platform"] == backend()
    report = (out / "report.md").read_text()
    for name in by:
        assert f"| {name} | ok |" in report
    # under the table: the check's own command, then each step's, with the machine kind
    kind = backend().upper()
    lines = report.splitlines()
    last_row = max(i for i, line in enumerate(lines) if line.startswith("|"))
    after = [line for line in lines[last_row + 1:] if line.startswith("Reproduce ")]
    assert next(line for line in lines[last_row + 1:] if line.strip()) == after[0]
    assert after[0].startswith(f"Reproduce the whole table: `{results['command']}`")
    assert results["command"].startswith("python experiments/gpu_check.py --tiny --dataset idx:")
    assert [line.split(":")[0] for line in after[1:]] == [f"Reproduce step {name}" for name in by]
    assert all(f"Ran on: {kind} (" in line for line in after)
    run_c = by["run_c_4"]["result"]
    assert run_c["schedule"] and run_c["chunk_size"]
    assert ("`python -m aljax run --protocol seed --strategy least_confidence --initial random" in after[2]
            and f"--out WORK/run_c_4 --dataset idx:{tmp_path / 'blobs'} --schedule {run_c['schedule']} "
                f"--chunk-size {run_c['chunk_size']}`" in after[2])
    assert after[3].startswith("Reproduce step cpu_vs_gpu: `JAX_PLATFORMS=cpu python -m aljax run ") and "paired" in after[3]
    assert "`python experiments/gpu_check.py --c-then-d 4 " in after[4] and "batches of 4 seeds" in after[4]
    assert "| cpu_vs_gpu | ok |" in report and "agree: the difference's 95 % CI contains 0" in report


def test_pytest_summary_counts_and_failures():
    output = ("FAILED tests/test_loop.py::test_article_rows_on_real_mnist - assert 347 == 359\n"
              "ERROR tests/test_sharding.py::test_eight_simulated_devices\n"
              "= 227 passed, 14 failed, 4 errors in 166.00s (0:02:46) =\n")
    summary = gpu_check.pytest_summary(output)
    assert summary["counts"] == {"passed": 227, "failed": 14, "errors": 4}
    assert len(summary["failures"]) == 2 and summary["failures"][0].startswith("FAILED tests/test_loop.py")


def test_a_step_past_its_timeout_is_recorded_not_raised():
    record = gpu_check.run_step("sleep", [sys.executable, "-c", "import time; print('started', flush=True); "
                                          "time.sleep(30)"], timeout=3)
    assert record["status"] == "timed out" and record["rc"] is None and "started" in record["output_tail"]
    assert gpu_check.run_step("none", ["true"], timeout=0)["status"] == "skipped"


def test_bad_input_is_one_line_and_exit_2():
    proc = check(["--budget-s", "0"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--budget-s" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_gpu_check_with_a_given_python_creates_no_virtual_environment():
    plan = subprocess.run(["make", "-n", "gpu-check", "PY=python3"], cwd=ROOT, capture_output=True, text=True)
    assert plan.returncode == 0 and "experiments/gpu_check.py" in plan.stdout
    assert "venv" not in plan.stdout and "pip" not in plan.stdout
