"""Issue 22's smoke test: the degradation study's ``paper`` preset — the paper's CIFAR ResNets and plain nets up
to depth 110, at the paper's learning rate — cut to 12 iterations, on files in CIFAR-10's python format
holding random pixels. A plain-110 trained so briefly overflows in eval mode (its response stds are
non-finite), which used to end in an internal error before results.json was written. With one seed and with
two: exit 0, results.json and the report written, and no finding drawn from a non-finite number. Slow: the
110-layer nets take minutes on a CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from depthlab.cli import main
from test_data import make_cifar10

pytestmark = pytest.mark.slow

SETTINGS = ["steps=12", "eval_every=6", "warmup_lr_steps=4", "val_size=500", "eval_subset=200", "shatter_points=8",
            "depths=20,110"]  # fmt: skip


def _nulls(values: Any) -> bool:
    if isinstance(values, dict):
        return any(_nulls(v) for v in values.values())
    if isinstance(values, list):
        return any(_nulls(v) for v in values)
    return values is None


@pytest.mark.parametrize("seeds", [1, 2])
def test_the_paper_preset_on_random_cifar_files_writes_results_and_a_report(
    tmp_path: Path, seeds: int
) -> None:
    # 1,000 training images in CIFAR-10's python format (random pixels): 500 trained on, 500 held out
    make_cifar10(tmp_path / "data", per_batch=200, n_test=200)
    out = tmp_path / "study"
    argv = ["experiment", "degradation", "--preset", "paper", "--data-dir", str(tmp_path / "data"), "--out",
            str(out), "--seeds", str(seeds), "--device", "cpu"]  # fmt: skip
    argv += [x for s in SETTINGS for x in ("--set", s)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == seeds and len(results["runs"]) == 4 * seeds
    assert {r["status"] for r in results["runs"]} <= {"completed", "diverged"}
    for e in results["evidence"]:
        measured = {k: v for k, v in e["numbers"].items() if k in ("a_values", "b_values", "difference")}
        if _nulls(measured):  # a non-finite number (null) behind it: no verdict, and the sentence says so
            assert e["outcome"] in ("unknown", "not resolved"), e["text"]
        if e["outcome"] in ("higher", "lower", "equivalent"):
            assert e["numbers"]["ci"] is not None and not _nulls(measured), e["text"]
        assert "nan" not in e["text"].replace("nano", "").split() and "+nan" not in e["text"], e["text"]
    for a in results["answers"]:
        assert a["verdict"] in ("supported", "contradicted", "not resolved")
        assert "nan" not in a["numbers"].split(), a["numbers"]
    if seeds == 1:
        assert all(a["verdict"] == "not resolved" for a in results["answers"])  # no interval from one seed
        assert any("fewer than two seeds" in a["numbers"] for a in results["answers"])
    assert main(["report", str(out), "--out", str(out / "report.html")]) == 0
    assert (out / "report.html").stat().st_size > 0
