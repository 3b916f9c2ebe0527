"""Running a study: :func:`run_study` checks the study directory (its study.json), runs the study-level
``prepare``, has an executor train the grid — ``local`` (:func:`.worker.run_local`: one run after another in
this process) or ``ray`` (:mod:`.executors`: each run a Ray task, ``pip install depthlab[ray]``, with its
CPU/GPU request; the study directory must be on a path every node sees, and a failed task is retried from its
checkpoint) — writes results.json and runs the post-training analyses asked for.

The study-level steps (study.json, ``prepare``, results.json, analyses) run under a study lock, one worker at
a time, so several workers may share the directory (:mod:`.worker`). results.json is rebuilt from the run
directories every time (nothing else is stored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from depthlab.io import read_json, write_json
from depthlab.registry import list_models
from depthlab.runtime import select_device
from depthlab.studies.declare import (
    Progress,
    Recipe,
    Study,
    StudyError,
    preset_from_dict,
    preset_to_dict,
    seed_list,
)
from depthlab.studies.executors import check_ray, run_on_ray
from depthlab.studies.results import StudyResult, read_study, results_json
from depthlab.studies.worker import diagnostics_batch, run_local
from depthlab.train.runlock import study_lock
from depthlab.train.setup import prepare_bundle

__all__ = ["EXECUTORS", "run_study"]

EXECUTORS = ("local", "ray")


def _check_study_file(
    root: Path,
    study: Study,
    preset: Recipe,
    seeds: int,
    overrides: Sequence[str],
    seed_offset: int = 0,
    write: bool = True,
) -> None:
    path = root / "study.json"
    record = {
        "study": study.name,
        "preset": preset_to_dict(preset),
        "seeds": seeds,
        "seed_offset": seed_offset,
        "overrides": list(overrides),
    }
    if path.is_file():
        old = read_json(path)
        if old.get("study", "degradation") != study.name:
            raise StudyError(
                f"{root} holds a {old.get('study')!r} study, not {study.name!r}; use another --out"
            )
        # A key an older depthlab did not write takes its default, so an old study directory stays usable.
        stored = preset_to_dict(preset_from_dict(type(preset), old.get("preset", {})))
        # What judges the runs (the note, the bounds: Recipe.JUDGING) is not a setting of the runs, so changing
        # it keeps old directories valid; they are read with the code's values (results.judged_by_code).
        judging = type(preset).JUDGING
        mine, theirs = _flat(record["preset"]), _flat(stored)
        diff = sorted(k for k in mine if k not in judging and theirs.get(k) != mine[k])
        if int(old.get("seed_offset", 0)) != seed_offset:
            diff.append("seed_offset")
        if diff:
            raise StudyError(
                f"{root} already holds a study with different settings ({', '.join(diff)}); "
                f"use another --out, or the same preset and --set values"
            )
    if write:
        write_json(path, record)


def _flat(preset: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's study.json values with its shared training fields beside its own, so a difference is
    named by its field (``steps``), not by ``train``."""
    out = {k: v for k, v in preset.items() if k != "train"}
    out.update(preset.get("train") or {})
    return out


def run_study(
    study: Study,
    preset: Recipe,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    overrides: Sequence[str] = (),
    progress: Progress | None = None,
    executor: str = "local",
    address: str | None = None,
    analyses: Sequence[str] = (),
    seed_offset: int = 0,
) -> StudyResult:
    """Run (or resume, or skip) every run of ``study``'s grid, its study-level analyses, write results.json.

    ``seeds`` runs seeds ``seed_offset`` … ``seed_offset + seeds − 1`` (default the preset's count from 0): a
    replication on fresh seeds is the same command with an offset past the original's seeds.
    ``executor``: ``local`` (one run after another) or ``ray`` (each run a Ray task; ``address`` of a
    running cluster, default a local instance). ``analyses``: names from ``study.analyses`` run after
    training (each idempotent and resumable).
    """
    seeds = preset.seeds if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise StudyError(f"seeds must be a positive integer, got {seeds!r}")
    if not isinstance(seed_offset, int) or isinstance(seed_offset, bool) or seed_offset < 0:
        raise StudyError(f"seed offset must be a non-negative integer, got {seed_offset!r}")
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")
    if executor == "ray":  # fail before anything is written when Ray is not installed
        check_ray()
    unknown = [a for a in analyses if a not in study.analyses]
    if unknown:
        raise StudyError(
            f"unknown analysis {unknown[0]!r} for the {study.name} study; choose from: "
            f"{', '.join(study.analyses) or 'none'}"
        )
    say = progress or (lambda line: None)
    root = Path(out_dir)
    specs = study.grid(preset, seed_list(seeds, seed_offset), device, data_dir)

    missing = sorted({s.config.model for s in specs} - set(list_models()))
    if missing:
        raise StudyError(f"the {study.name} study needs models that are not registered: {', '.join(missing)}")

    # Several workers may share the directory: study-level steps run one worker at a time (the first
    # computes, the others find the result in place), runs are split by their locks.
    with study_lock(root):
        _check_study_file(root, study, preset, seeds, overrides, seed_offset)
        if study.prepare is not None:
            bundle = prepare_bundle(specs[0].config)
            images, labels = diagnostics_batch(preset, bundle, select_device(device))
            say("study-level analyses at initialisation")
            study.prepare(preset, root, bundle, images, labels, seed_list(seeds, seed_offset))

    if executor == "local":
        if run_local(study, preset, specs, root, device=device, say=say) == "interrupted":
            return _write_results(root)
    else:
        run_on_ray(study, preset, specs, root, seeds=seeds, overrides=overrides, device=device,
                   data_dir=data_dir, address=address, say=say, seed_offset=seed_offset)  # fmt: skip

    with study_lock(root):
        result = _write_results(root)
        for name in analyses:
            say(f"analysis: {name}")
            study.analyses[name](result, select_device(device))
        return _write_results(root) if analyses else result


def _write_results(root: Path) -> StudyResult:
    """Read the study back and write results.json, under the study lock: with several workers, each
    writes it when it finishes, one at a time, so the last one to finish leaves it complete."""

    with study_lock(root):
        result = read_study(root)
        write_json(root / "results.json", results_json(result))
    return result
