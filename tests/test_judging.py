"""Bounds fixed in the code judge every directory (issue 23): a study directory is read with the judging
fields (Recipe.JUDGING) of its preset as the code declares them now — the settings of its runs come from its
study.json — and a changed bound never makes a directory "hold different settings"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from depthlab.studies import get_study
from depthlab.studies.engine import read_study, run_study
from studies import TINY, tiny_preset, tiny_study


def _copy(tmp_path: Path) -> Path:
    source, _, _ = tiny_study()
    target = tmp_path / "study"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock*"))
    return target


def _record(root: Path, **changes: object) -> None:
    path = root / "study.json"
    record = json.loads(path.read_text())
    record["preset"].update(changes)
    path.write_text(json.dumps(record))


def test_a_directory_is_judged_by_the_bounds_the_code_declares(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _record(root, plateau_bound=0.02, margin=0.5)  # what an older depthlab recorded
    result = read_study(root)
    quick = get_study("degradation").presets["quick"]
    assert (result.preset.plateau_bound, result.preset.margin) == (quick.plateau_bound, quick.margin)
    assert result.preset.steps == 4  # a setting of the runs: the recorded one (TINY), not quick's 240
    assert json.loads((root / "results.json").read_text())["preset"] == "quick"


def test_a_recorded_set_value_of_a_bound_is_kept(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "study.json"
    record = json.loads(path.read_text())
    record["overrides"] = [*record["overrides"], "margin=0.25"]
    path.write_text(json.dumps(record))
    assert read_study(root).preset.margin == 0.25


def test_a_changed_bound_does_not_refuse_the_directory(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _record(root, plateau_bound=0.02)  # as if the code's bound changed since the study was trained
    # The same command trains nothing (every run finished) and rewrites results.json.
    lines: list[str] = []
    result = run_study(get_study("degradation"), tiny_preset(), root, device="cpu", overrides=TINY,
                       progress=lines.append)  # fmt: skip
    runs = [line for line in lines if line.startswith("[")]
    assert runs and all(line.endswith("already completed, skipped") for line in runs), runs  # trains nothing
    assert result.preset.plateau_bound == get_study("degradation").presets["quick"].plateau_bound
    assert (
        json.loads((root / "results.json").read_text())["bounds"]["plateau_bound"]
        == result.preset.plateau_bound
    )
