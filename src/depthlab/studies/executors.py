"""Executors beyond the local one: every run of a study's grid as a Ray task.

:func:`run_on_ray` is what ``depthlab study STUDY --executor ray [--address ADDR]`` calls (through
:func:`depthlab.studies.engine.run_study`, which has already checked the study directory and run the
study-level ``prepare`` step; it writes ``results.json`` afterwards from the run directories).

Contract:

* One task per :class:`~depthlab.studies.engine.RunSpec`. A task receives only names and plain data
  (study name, the modules that define it, the preset as a dict, the run name, the study directory), so it
  pickles; the worker re-creates the :class:`~depthlab.studies.engine.Study` with ``get_study``, the preset
  with ``preset_from_dict`` and the spec from ``study.grid``, then calls
  :func:`~depthlab.studies.engine.run_one` — the same skip/resume rules as the local executor: a finished
  run is skipped, an unfinished one resumes from its last checkpoint.
* Resources: each task asks for ``num_cpus`` CPUs (default: this process's torch thread count) and runs
  torch with that many threads — so a CPU run computes exactly what the local executor computes (a different
  thread count changes the floating-point summation order) — and, when ``device`` is ``cuda`` (or ``auto``
  and the cluster has a GPU), one GPU; a task without a GPU trains on the CPU.
* Retries: a task that raises (or whose worker dies) is retried up to ``max_retries`` times; since
  ``run_one`` resumes from the run's ``last`` checkpoint, a retry continues where the failed attempt last
  checkpointed. A run that the trainer stopped early (status ``interrupted``, e.g. the worker got SIGINT)
  raises :class:`RunNotFinished` so it is retried the same way.
* The study directory must be on a path every node sees (a shared filesystem); each task writes only its
  own ``runs/NAME`` directory, holding its lock (``run_one``): a run that another process trains — a
  local ``depthlab study`` worker on the same directory — is waited for, then skipped or resumed.
* Ctrl-C in the driver cancels the outstanding tasks (each stops at its next step with a checkpoint);
  running the same command again resumes.
* Without a running cluster (``address=None``) a local Ray instance is started and stopped again; its
  workers get the driver's ``sys.path`` as ``PYTHONPATH`` so they import the same depthlab as the driver.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from depthlab.studies.declare import (
    Recipe,
    RunSpec,
    Study,
    StudyError,
    preset_from_dict,
    preset_to_dict,
    seed_list,
)
from depthlab.studies.registry import get_study
from depthlab.studies.worker import run_one

__all__ = ["RunNotFinished", "check_ray", "run_on_ray", "run_task", "task_options", "INSTALL_HINT"]

INSTALL_HINT = "pip install depthlab[ray]"
MAX_RETRIES = 3


class RunNotFinished(RuntimeError):
    """A run that stopped before its last step inside a Ray task (raised so that Ray retries the task)."""


def check_ray() -> None:
    """Raise :class:`StudyError` (one line, naming the install command) unless Ray can be imported."""
    _import_ray()


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise StudyError(f"the ray executor needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def study_modules(study: Study) -> tuple[str, ...]:
    """The modules defining ``study``'s functions: a worker imports them so that ``get_study`` finds a study
    registered outside depthlab's built-in study files."""
    functions = (study.grid, study.findings, study.sections, study.probe, study.prepare)
    names = {getattr(f, "__module__", None) for f in functions if f is not None}
    return tuple(sorted(n for n in names if n and n != "__main__"))


def run_task(
    study_name: str,
    modules: Sequence[str],
    preset_values: dict[str, Any],
    seeds: int,
    run_name: str,
    root: str,
    device: str,
    data_dir: str | None,
    threads: int | None = None,
    seed_offset: int = 0,
) -> tuple[str, list[str]]:
    """The body of one Ray task (also callable in-process): train, resume or skip run ``run_name`` of the
    study in ``root``; returns (final status, progress lines). Raises :class:`RunNotFinished` when the run
    stopped before its last step. ``threads``: torch's intra-op threads in this worker (None: unchanged)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    for module in modules:
        importlib.import_module(module)
    study = get_study(study_name)
    kind = type(next(iter(study.presets.values())))
    preset = preset_from_dict(kind, preset_values)
    specs = {s.name: s for s in study.grid(preset, seed_list(seeds, seed_offset), device, data_dir)}
    if run_name not in specs:
        raise StudyError(f"run {run_name!r} is not in the {study_name} study's grid")
    lines: list[str] = []
    status = run_one(study, preset, specs[run_name], Path(root), device=device, say=lines.append)
    if status == "interrupted":
        raise RunNotFinished(f"{run_name} stopped before its last step: " + (lines[-1] if lines else ""))
    return status, lines


def task_options(device: str, resources: dict[str, float], *, num_cpus: float = 1.0,
                 max_retries: int = MAX_RETRIES) -> dict[str, Any]:  # fmt: skip
    """Ray ``.options()`` of one run's task for ``device`` on a cluster with ``resources``
    (``ray.cluster_resources()``)."""
    gpus = float(resources.get("GPU", 0.0))
    if device == "cuda" and gpus < 1:
        raise StudyError(
            "device 'cuda' was asked for, but the Ray cluster has no GPU; use --device cpu or auto"
        )
    use_gpu = device == "cuda" or (device == "auto" and gpus >= 1)
    return {
        "num_cpus": num_cpus,
        "num_gpus": 1 if use_gpu else 0,
        "max_retries": max_retries,
        "retry_exceptions": True,
    }


def run_on_ray(
    study: Study,
    preset: Recipe,
    specs: Sequence[RunSpec],
    root: Path,
    *,
    seeds: int,
    overrides: Sequence[str] = (),
    device: str = "auto",
    data_dir: str | None = None,
    address: str | None = None,
    say: Callable[[str], None] | None = None,
    num_cpus: int | None = None,
    max_retries: int = MAX_RETRIES,
    seed_offset: int = 0,
) -> dict[str, str]:
    """Run every spec as a Ray task (module docstring); returns run name → final status.

    Uses the Ray instance this process is already connected to, else connects to ``address``, else starts a
    local one (and shuts it down afterwards). ``overrides`` are already folded into ``preset``."""
    import torch

    ray = _import_ray()
    say = say or (lambda line: None)
    threads = torch.get_num_threads() if num_cpus is None else num_cpus
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise StudyError(f"num_cpus must be a positive integer, got {num_cpus!r}")
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            path = os.pathsep.join(p for p in sys.path if p)
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        ray.init(address=address, **kwargs)
        started = True
    try:
        options = task_options(device, ray.cluster_resources(), num_cpus=threads, max_retries=max_retries)
        worker_device = "cuda" if options["num_gpus"] else "cpu"
        task = ray.remote(run_task).options(**options)
        values = preset_to_dict(preset)
        modules = study_modules(study)
        pending = {
            task.remote(study.name, modules, values, seeds, s.name, str(Path(root).resolve()),
                        worker_device, data_dir, threads, seed_offset): s.name
            for s in specs
        }  # fmt: skip
        say(
            f"submitted {len(pending)} runs to Ray ({options['num_cpus']:g} CPU"
            f"{', 1 GPU' if options['num_gpus'] else ''} each, up to {max_retries} retries)"
        )
        statuses: dict[str, str] = {}
        errors: list[BaseException] = []
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(done[0])
                try:
                    status, lines = ray.get(done[0])
                except Exception as exc:  # reported now, raised after the other runs finish
                    say(f"{name}: failed after {max_retries} retries: {type(exc).__name__}")
                    statuses[name] = "failed"
                    errors.append(exc)
                    continue
                for line in lines:
                    say(f"{name}: {line}" if not line.startswith(name) else line)
                statuses[name] = status
                say(f"{name}: {status} ({len(statuses)}/{len(specs)} runs done)")
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            say("interrupted: the remaining Ray tasks were cancelled; run the same command again to resume")
            return statuses
        if errors:
            raise errors[0]
        return statuses
    finally:
        if started:
            ray.shutdown()
