"""Every JSON file depthlab writes is strict JSON: a diverged run's NaN loss is null, never `NaN`."""

from __future__ import annotations

import json
import math

import pytest

from depthlab.io import strict_json, write_json
from depthlab.train.rundir import MetricsLog


def _strict_load(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth():
    values = {"loss": math.nan, "rows": [1.0, -math.inf, {"x": math.inf}], "t": (2.0, math.nan), "s": "nan"}
    assert strict_json(values) == {
        "loss": None,
        "rows": [1.0, None, {"x": None}],
        "t": [2.0, None],
        "s": "nan",
    }


@pytest.mark.parametrize("writer", [write_json])
def test_summary_and_results_files_parse_strictly(tmp_path, writer):
    path = tmp_path / "summary.json"
    writer(path, {"status": "diverged", "final": {"train_loss": math.nan, "train_error": 0.9}})
    assert _strict_load(path.read_text()) == {
        "status": "diverged",
        "final": {"train_loss": None, "train_error": 0.9},
    }


def test_metrics_rows_parse_strictly(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
    log.write([{"step": 1, "split": "train", "loss": math.inf, "error": 0.5}])
    log.sync()
    rows = [_strict_load(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "split": "train", "loss": None, "error": 0.5}]
