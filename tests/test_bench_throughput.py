"""The throughput benchmark's bookkeeping (no timing here: speed claims live in benchmarks/): the README table
shows fp32 and bf16 side by side, marks an MFU above 100% with †, and bf16's peak is never below fp32's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(pipeline: str, precision: str, ips: float, ratio: float, mfu: float) -> dict:
    return {"model": "resnet20", "shape": "fmnist", "pipeline": pipeline, "precision": precision,
            "images_per_s": ips, "ratio": ratio, "mfu": mfu}  # fmt: skip


def test_table_shows_both_precisions_and_marks_utilisation_above_100_percent(bench) -> None:
    record = {"results": [
        _row("depthlab", "fp32", 400.0, 1.6, 1.13),
        _row("depthlab", "bf16", 600.0, 2.4, 0.52),
        _row("reference", "fp32", 250.0, 1.0, 0.7),
    ]}  # fmt: skip
    lines = bench.markdown_table(record).splitlines()
    fp32 = next(line for line in lines if "| fp32 |" in line)
    bf16 = next(line for line in lines if "| bf16 |" in line)
    assert fp32.endswith("| 113.0% † |") and "| 1.00× |" in fp32
    assert bf16.endswith("| 52.0% |") and "| 1.50× |" in bf16 and "| 600 | 250 | 2.40× |" in bf16


def test_bf16_peak_is_the_faster_of_its_own_and_fp32s_product(bench, monkeypatch) -> None:
    """Where bf16 is emulated its own product is slow; bf16 can always run on the fp32 units, so the slow rate
    must not become the peak (it put emulated bf16 training at thousands of percent)."""
    rates = {("fp32", 2048): 100e9, ("bf16", 512): 1e9, ("bf16", 2048): 900e9}
    monkeypatch.setattr(bench, "matmul_flops", lambda device, precision, size=2048: rates[(precision, size)])
    peaks, matmuls = bench.peaks_by_precision("cpu")
    assert peaks == {"fp32": 100e9, "bf16": 100e9} and matmuls["bf16"]["size"] == 512
    rates[("bf16", 512)] = 400e9  # native: the small product is fast, so it is timed at full size
    peaks, matmuls = bench.peaks_by_precision("cpu")
    assert peaks == {"fp32": 100e9, "bf16": 900e9} and matmuls["bf16"]["size"] == 2048
