"""The Ray executor: a one-line error without Ray, resource requests, and — with a local Ray instance — the
tiny study run through Ray equals the local executor's run, and a task that fails is retried from its
checkpoint."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from depthlab.studies import get_study
from depthlab.studies.engine import StudyError, run_study
from depthlab.studies.executors import study_modules, task_options
from studies import TINY, tiny_preset, tiny_study

STUDY = get_study("degradation")


def test_without_ray_the_ray_executor_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if Ray were not installed
    with pytest.raises(StudyError, match=r"needs Ray, which is not installed: pip install depthlab\[ray\]$"):
        run_study(STUDY, tiny_preset(), tmp_path / "s", device="cpu", executor="ray")
    assert not (tmp_path / "s").exists()  # it fails before writing anything


def test_tasks_ask_for_a_gpu_only_when_the_device_and_cluster_have_one() -> None:
    cpu_only, with_gpu = {"CPU": 8.0}, {"CPU": 8.0, "GPU": 2.0}
    assert task_options("auto", cpu_only)["num_gpus"] == 0
    assert task_options("auto", with_gpu)["num_gpus"] == 1
    assert task_options("cpu", with_gpu)["num_gpus"] == 0
    assert task_options("cuda", with_gpu, num_cpus=4)["num_cpus"] == 4
    with pytest.raises(StudyError, match="no GPU"):
        task_options("cuda", cpu_only)
    options = task_options("cpu", cpu_only)
    # A failed task is retried (run_one then resumes it from its last checkpoint).
    assert options["max_retries"] >= 1 and options["retry_exceptions"] is True
    # The study package spreads its functions over modules (grid, findings, figures, study); a Ray worker
    # imports each of them, and all of them belong to the study's package.
    modules = study_modules(STUDY)
    assert STUDY.grid.__module__ in modules and STUDY.findings.__module__ in modules
    assert all(m.startswith("depthlab.studies.degradation.") for m in modules)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    ray = pytest.importorskip("ray")
    markers = tmp_path_factory.mktemp("markers")
    here = Path(__file__).parent
    path = os.pathsep.join([str(here.parent / "src"), str(here), *sys.path])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "DEPTHLAB_FLAKY_MARKERS": str(markers)}})  # fmt: skip
    yield markers
    ray.shutdown()


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from depthlab.train.rundir import load_run_model

    return load_run_model(run_dir).state_dict()


def _same_runs(a: Path, b: Path) -> None:
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert [(r["name"], r["status"], r["step"], r["final_error"]) for r in ra["runs"]] == [
        (r["name"], r["status"], r["step"], r["final_error"]) for r in rb["runs"]
    ]
    for r in ra["runs"]:
        wa, wb = _weights(a / "runs" / r["name"]), _weights(b / "runs" / r["name"])
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), r["name"]


@pytest.mark.slow
def test_ray_executor_equals_the_local_one(local_ray: Path, tmp_path: Path) -> None:
    local, _, _ = tiny_study()
    lines: list[str] = []
    run_study(STUDY, tiny_preset(), tmp_path / "ray", device="cpu", overrides=TINY, executor="ray",
              progress=lines.append)  # fmt: skip
    assert any("submitted 2 runs to Ray" in x for x in lines)
    _same_runs(tmp_path / "ray", local)
    # Same skip rule as the local executor: a second pass trains nothing.
    again: list[str] = []
    run_study(STUDY, tiny_preset(), tmp_path / "ray", device="cpu", overrides=TINY, executor="ray",
              progress=again.append)  # fmt: skip
    assert sum("already completed, skipped" in x for x in again) == 2


@pytest.mark.slow
def test_a_failed_ray_task_is_retried_from_its_checkpoint(local_ray: Path, tmp_path: Path) -> None:
    import flaky_study

    local, _, _ = tiny_study()
    lines: list[str] = []
    run_study(flaky_study.STUDY, tiny_preset(), tmp_path / "flaky", device="cpu", overrides=TINY,
              executor="ray", progress=lines.append)  # fmt: skip
    # Each run failed once at step 4 (its marker was left), was retried and resumed from the step-2
    # checkpoint ...
    assert sorted(p.name for p in local_ray.iterdir()) == ["plain20-s0", "resnet20-s0"]
    assert any("resuming" in x for x in lines)
    for name in ("plain20-s0", "resnet20-s0"):
        rows = [
            json.loads(x) for x in (tmp_path / "flaky/runs" / name / "metrics.jsonl").read_text().splitlines()
        ]
        assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]  # no row lost or repeated
    # ... and ended exactly where the uninterrupted local run did.
    _same_runs(tmp_path / "flaky", local)
