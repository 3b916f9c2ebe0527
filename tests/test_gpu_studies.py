"""Every study and every `why` analysis end to end on the device (issue 21: on a GPU every study crashed).

Marked ``gpu``: deselected by default, run with ``make test-gpu`` (``pytest -m gpu``); skipped without CUDA.
DEPTHLAB_GPU_TEST_DEVICE=cpu runs the same tests on the CPU (to check the tests themselves where there is no
GPU; device-vs-CPU comparisons then hold exactly).

* each study's quick preset cut to a few iterations of tiny nets on synthetic images: training with the
  probes, the study-level analyses at initialisation (degradation's shattered gradients: the crash), the
  findings, the answers, results.json and the HTML report; degradation through the command line exactly as
  the issue ran it (``depthlab experiment degradation --device cuda``, then ``depthlab report``), with
  ``--analyses lesion`` (the study engine's post-training analyses);
* each `why` analysis (lesion, paths, landscape, attribution) on one trained run, with the model and images
  on the device, compared with the same analysis on the CPU (the same weights, images and random draws, so
  only rounding differs), and ``depthlab landscape --device``.

Nothing here needs the ``depthlab`` console script or an installed package: the commands run in this process
through :func:`depthlab.cli.main` (what ``python -m depthlab`` calls). Attribution needs Captum, which a GPU
machine may lack: that test is then skipped, saying so.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from depthlab.cli import main
from depthlab.studies import get_study
from depthlab.studies.engine import apply_preset_overrides, run_study

DEVICE = os.environ.get("DEPTHLAB_GPU_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs CUDA"),
]

# Each study's quick preset, cut to a few iterations of tiny nets on synthetic images. Two seeds where the
# nets are small (the findings' intervals across seeds are then computed, not skipped); GoogLeNet, the
# slowest, one seed of each of its three conditions.
DEGRADATION = [
    "data=synthetic:channels=1,size=8,train=320,test=64,classes=4", "depths=20", "width=0.25", "steps=4",
    "batch_size=16", "eval_every=2", "log_every=1", "val_size=64", "train_subset=128", "eval_subset=32",
    "diag_batch=8", "seeds=2", "shatter_points=16",
]  # fmt: skip
INCEPTION_AUX = [
    "data=synthetic:channels=1,size=32,train=320,test=64,classes=4", "width=0.25", "steps=4",
    "batch_size=8", "eval_every=2", "early_step=2", "log_every=1", "val_size=64", "train_subset=64",
    "eval_subset=16", "test_subset=32", "diag_batch=4", "seeds=1", "no_heads=true",
]  # fmt: skip
VGG_DEPTH = [
    "data=synthetic:channels=1,size=16,train=320,test=64,classes=4", "plain=A,A-LRN", "bn=A,B", "width=0.25",
    "steps=4", "batch_size=8", "eval_every=2", "log_every=1", "val_size=64", "train_subset=64",
    "eval_subset=16", "test_subset=32", "seeds=2",
]  # fmt: skip


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``depthlab ARGS`` (as ``python -m depthlab`` runs it, in this process); its standard output."""
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert rc == 0, f"depthlab {' '.join(args)} exited {rc}:\n{out}\n{err}"
    return out


def _finite(values: Any) -> bool:
    """Every number inside ``values`` (nested dicts/lists of a JSON file) is finite."""
    if isinstance(values, dict):
        return all(_finite(v) for v in values.values())
    if isinstance(values, list):
        return all(_finite(v) for v in values)
    return not isinstance(values, float) or math.isfinite(values)


def _check_runs(study_dir: Path, count: int, *, probes: bool) -> list[Path]:
    """The study's ``count`` runs trained to completion on the device; with ``probes``, diagnostics at init,
    during training and at the end, all finite."""
    runs = sorted(p for p in (study_dir / "runs").iterdir() if p.is_dir())
    assert len(runs) == count, [r.name for r in runs]
    for run in runs:
        env = json.loads((run / "environment.json").read_text())
        assert env["device"].startswith(DEVICE), (run.name, env["device"])
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["step"] == 4, (run.name, summary["status"])
        if probes:
            diags = json.loads((run / "diagnostics.json").read_text())
            assert {"init", "steps", "end"} <= diags.keys() and diags["steps"], run.name
            assert _finite(diags), run.name
    return runs


def _check_results(study_dir: Path, runs: int) -> dict[str, Any]:
    results = json.loads((study_dir / "results.json").read_text())
    assert len(results["runs"]) == runs and all(r["status"] == "completed" for r in results["runs"])
    assert results["findings"] and results["answers"]
    assert all(a["verdict"] in ("supported", "contradicted", "not resolved") for a in results["answers"])
    return results


# ------------------------------------------------------------------------------------------------ studies
def test_degradation_study_with_its_analyses_and_report_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "degradation"
    sets = [a for s in DEGRADATION for a in ("--set", s)]
    _cli(capsys, "experiment", "degradation", "--preset", "quick", *sets, "--device", DEVICE, "--analyses", "lesion",
         "--out", str(study))  # fmt: skip
    runs = _check_runs(study, 4, probes=True)  # plain20 and resnet20, 2 seeds
    # The study-level analysis at init that crashed on the GPU: shattered gradients, every net and seed.
    shattered = json.loads((study / "analysis" / "shattered.json").read_text())["results"]
    assert len(shattered) == 2 * 2 * 2  # plain/ResNet × BN/BN-free × 2 seeds
    assert all(len(r["directional"]) == 16 and math.isfinite(r["lag1_autocorrelation"]) for r in shattered)
    assert all(math.isfinite(r["spectral_slope"]) for r in shattered)
    _check_results(study, 4)
    # --analyses lesion: lesion (and paths for the ResNet) on the first seed of each condition, on the device.
    by_name = {r.name: r for r in runs}
    for run, names in (("plain20-s0", ("lesion",)), ("resnet20-s0", ("lesion", "paths"))):
        for name in names:
            result = json.loads((by_name[run] / "analysis" / f"{name}.json").read_text())
            assert result["source"]["device"].startswith(DEVICE), (run, name, result["source"]["device"])
    assert not (by_name["plain20-s1"] / "analysis").exists()
    _cli(
        capsys, "report", str(study), "--out", str(study / "report.html"), "--figures", str(study / "figures")
    )
    html = (study / "report.html").read_text()
    assert "Lesion study" in html and "shattered" in html.lower()
    assert len(list((study / "figures").glob("*.png"))) >= 3


@pytest.mark.parametrize(
    ("name", "overrides", "runs", "probes"),
    [("inception-aux", INCEPTION_AUX, 3, True), ("vgg-depth", VGG_DEPTH, 8, False)],
)
def test_study_trains_and_reports_on_the_device(
    tmp_path: Path, name: str, overrides: list[str], runs: int, probes: bool
) -> None:
    from depthlab.report import build_report

    study = get_study(name)
    preset = apply_preset_overrides(study.presets["quick"], overrides)
    result = run_study(study, preset, tmp_path / name, device=DEVICE, overrides=overrides)
    _check_runs(tmp_path / name, runs, probes=probes)
    _check_results(tmp_path / name, runs)
    assert all(r.completed for r in result.runs)
    report = build_report(tmp_path / name)
    assert report.num_runs == runs and report.figures and all(png for _, png in report.pngs)
    from markupsafe import escape  # as the report's template escapes text

    for answer in result.answers:
        assert str(escape(answer.question)) in report.html


# ----------------------------------------------------------------------------------------- why analyses
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-20 (width 0.25) trained on the device for 8 iterations on synthetic 8×8 images."""
    from depthlab.train import TrainConfig, train

    config = TrainConfig(
        model="resnet20", model_kwargs={"width": 0.25}, data="synthetic:channels=1,size=8,train=512,test=96,classes=4",
        epochs=None, steps=8, batch_size=32, lr=0.05, schedule="cosine", log_every=4, eval_every=8,
        device=DEVICE,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("why") / "resnet20"
    assert train(config, out).status == "completed"
    return out


@contextmanager
def _exact_fp32() -> Iterator[None]:
    """TF32 off (the trainer turns it on for the whole process): fp32 convolutions and products on the GPU
    then differ from the CPU's by summation order only (~1e-6 relative), not by TF32's ~1e-3 rounding."""
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def _both(run_dir: Path, tmp_path: Path, analysis: Any, **options: Any) -> tuple[Any, Any]:
    """The analysis on the device and on the CPU (separate output folders): (device result, CPU result)."""
    with _exact_fp32():
        on_device = analysis(run_dir, out=tmp_path / "device", device=DEVICE, **options)
    on_cpu = analysis(run_dir, out=tmp_path / "cpu", device="cpu", **options)
    assert on_device.source["device"].startswith(DEVICE) and on_cpu.source["device"] == "cpu"
    return on_device, on_cpu


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def test_lesion_on_the_device_equals_the_cpu(trained_run: Path, tmp_path: Path) -> None:
    from depthlab.studies.why import run_lesion

    dev, cpu = _both(trained_run, tmp_path, run_lesion, images=96, draws=2, max_swaps=2)
    assert dev.mode == cpu.mode == "residual" and len(dev.units) == len(cpu.units) == 9
    # The same blocks deleted and swapped (draws are made on the CPU), errors within a few flipped images.
    assert [k.sets for k in dev.deletions] == [k.sets for k in cpu.deletions]
    assert [k.sets for k in dev.swaps] == [k.sets for k in cpu.swaps]
    assert abs(dev.intact_error - cpu.intact_error) <= 2 / 96
    assert all(abs(a.error - b.error) <= 3 / 96 for a, b in zip(dev.single, cpu.single, strict=True))


def test_paths_on_the_device_equal_the_cpu(trained_run: Path, tmp_path: Path) -> None:
    from depthlab.studies.why import run_paths

    dev, cpu = _both(trained_run, tmp_path, run_paths, images=96, samples=2, batch=16)
    assert dev.blocks == cpu.blocks == 9
    assert _close(dev.full_gradient, cpu.full_gradient, 1e-3)
    for a, b in zip(dev.sample_gradient, cpu.sample_gradient, strict=True):
        assert all(_close(x, y, 1e-3) for x, y in zip(a, b, strict=True))  # same paths, same images


def test_landscape_on_the_device_equals_the_cpu(trained_run: Path, tmp_path: Path) -> None:
    from depthlab.analysis.landscape import LandscapeConfig
    from depthlab.studies.why import run_landscape

    config = LandscapeConfig(points=5, grid=3, span=0.5, radius=0.5, pairs=2)
    dev, cpu = _both(trained_run, tmp_path, run_landscape, images=96, config=config)
    assert _close(dev.origin_loss, cpu.origin_loss, 1e-4)
    # The same directions (drawn on the CPU): every point of every slice agrees.
    for a, b in zip(dev.pair_slice_loss, cpu.pair_slice_loss, strict=True):
        assert all(_close(x, y, 1e-3) for x, y in zip(a, b, strict=True))


def test_attribution_on_the_device_equals_the_cpu(trained_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("captum", reason="attribution needs Captum (pip install captum), not installed here")
    from depthlab.studies.why import run_attribution

    dev, cpu = _both(trained_run, tmp_path, run_attribution, images=3, ig_steps=4)
    assert [r.prediction for r in dev.images] == [r.prediction for r in cpu.images]
    assert [(s.cut, s.method, s.variant) for s in dev.sanity] == [
        (s.cut, s.method, s.variant) for s in cpu.sanity
    ]
    for a, b in zip(dev.sanity, cpu.sanity, strict=True):
        # The same re-initialised weights (drawn on the CPU); rank correlations within rounding.
        assert all(
            (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 0.05
            for x, y in zip(a.spearman, b.spearman, strict=True)
        ), (a, b)
    for name in ("attribution.json", "attribution.png", "attribution-sanity.png"):
        assert (tmp_path / "device" / name).is_file()


def test_run_analyses_opens_the_model_on_the_device(trained_run: Path, tmp_path: Path) -> None:
    from depthlab.studies.why import run_analyses

    options = {"lesion": {"images": 32, "draws": 1, "max_swaps": 1}, "paths": {"images": 32, "samples": 1}}
    results = run_analyses(
        trained_run, ("lesion", "paths"), device=DEVICE,
        options={k: {**v, "out": tmp_path / k} for k, v in options.items()},
    )  # fmt: skip
    assert all(r.source["device"].startswith(DEVICE) for r in results.values())


def test_landscape_command_takes_a_device(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _cli(
        capsys,
        "landscape", str(trained_run), "--device", DEVICE, "--images", "32", "--points", "3", "--grid", "0",
        "--pairs", "2", "--out", str(tmp_path),
    )  # fmt: skip
    assert "landscape" in out
    result = json.loads((tmp_path / "landscape.json").read_text())
    assert result["source"]["device"].startswith(DEVICE) and math.isfinite(result["origin_loss"])
