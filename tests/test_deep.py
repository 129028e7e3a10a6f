"""experiments/deep.py --mode quick: every strategy of both protocols runs, seeds are paired, and the
report, figures and JSON are written."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import deep  # noqa: E402


def test_deep_quick_mode_writes_a_paired_report(tmp_path):
    assert deep.main(["--mode", "quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "deep.json").read_text())
    for name, strategies in (("gal2017", deep.GAL), ("batchbald2019", deep.KIRSCH)):
        for size in results["experiments"][name]["sizes"].values():
            assert size["paired_initial_labels"]
            assert set(size["summary"]) == set(strategies)
            curve = size["mean_curves"]["random"]
            assert curve["labels"][0] == 6 and len(curve["labels"]) == len(curve["acc"])
    report = (tmp_path / "report.md").read_text()
    assert "Published numbers" in report and "Protocol" in report and "batchbald(samples=4" in report
    assert (tmp_path / "gal2017_q3.png").exists() and (tmp_path / "batchbald2019_q3.png").exists()
