"""The analyses on real run directories (tiny runs on synthetic data): the commands write JSON + PNG, reuse
a stored result, resume a killed one, refuse bad input with one line and exit 2; why_section reads results
only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from depthlab.analysis.lesion import LesionResult
from depthlab.cli import main
from depthlab.studies import why
from depthlab.train import TrainConfig, train

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

DATA = "synthetic:channels=1,size=8,train=96,test=40"
KWARGS = {"layers": (2, 1), "widths": (4, 8)}  # 3 blocks; stages.1.0 downsamples


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("why")
    out = {}
    for model in ("resnet20", "plain20"):
        config = TrainConfig(
            model=model, data=DATA, epochs=None, steps=6, batch_size=32, lr=0.05, log_every=3, eval_every=6,
            checkpoint_every=6, device="cpu", model_kwargs=KWARGS, val_size=16, precision="fp32",
        )  # fmt: skip
        train(config, root / model)
        out[model] = root / model
    return out


def test_lesion_and_paths_commands_write_json_and_png(runs, capsys):
    r = runs["resnet20"]
    assert main(["lesion", str(r), "--images", "24", "--draws", "2", "--max-swaps", "1"]) == 0
    text = capsys.readouterr().out
    assert f"{r / 'analysis' / 'lesion.json'}" in text and "binomial SE" in text
    result = why.read_result(r / "analysis", "lesion")
    assert isinstance(result, LesionResult) and result.images == 24 and result.mode == "residual"
    assert [s.name for s in result.single if s.downsampling] == ["stages.1.0"]
    assert (r / "analysis" / "lesion.png").read_bytes()[:4] == b"\x89PNG"
    assert not (r / "analysis" / "lesion.partial.json").exists()
    assert main(["paths", str(r), "--images", "24", "--samples", "2", "--batch", "8"]) == 0
    paths = why.read_result(r / "analysis", "paths")
    assert paths.blocks == 3 and paths.probability == (1 / 8, 3 / 8, 3 / 8, 1 / 8)
    assert "carry 90%" in capsys.readouterr().out
    # Among several runs a plain net is skipped (it has one path); alone it is an error (test below).
    assert (
        main(["paths", str(r), str(runs["plain20"]), "--images", "24", "--samples", "2", "--batch", "8"]) == 0
    )
    assert "skipped" in capsys.readouterr().out


def test_a_stored_result_is_reused_and_force_recomputes(runs, monkeypatch, capsys):
    r = runs["plain20"]
    options = dict(images=16, draws=1, max_swaps=0)
    first = why.run_lesion(r, **options)
    assert first.mode == "plain"

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(why, "lesion_study", fail)
    assert why.run_lesion(r, **options) == first  # same options and weights: read back, not recomputed
    with pytest.raises(AssertionError, match="recomputed"):
        why.run_lesion(r, **options, force=True)
    with pytest.raises(AssertionError, match="recomputed"):
        why.run_lesion(r, **{**options, "draws": 2})  # other options: a new result


def test_landscape_command_resumes_after_a_kill(runs, tmp_path, capsys):
    r = runs["resnet20"]
    out = tmp_path / "land"
    calls = []

    def kill(done, total):
        calls.append(done)
        if done == 3:
            raise KeyboardInterrupt

    config = why.LandscapeConfig(points=5, grid=3, pairs=1)
    with pytest.raises(KeyboardInterrupt):
        why.run_landscape(r, images=16, config=config, out=out, progress=kill)
    partial = json.loads((out / "landscape.partial.json").read_text())
    assert len(partial["items"]) == 3
    resumed = why.run_landscape(r, images=16, config=config, out=out)
    assert resumed.evaluations == 11 - 3
    fresh = why.run_landscape(r, images=16, config=config, out=tmp_path / "fresh")
    assert resumed.grid_loss == fresh.grid_loss and resumed.slice_loss == fresh.slice_loss
    assert not (out / "landscape.partial.json").exists()
    # Li et al. plot the training loss: the images are the run's training split (96 − 16 validation).
    assert resumed.source["split"] == "train"
    train = why.load_eval_set(why.open_run(r), None, split="train")
    assert train.images.shape[0] == 96 - 16
    subset = why.load_eval_set(why.open_run(r), 16, config.seed, split="train")
    from depthlab.analysis.evaluation import evaluate

    assert resumed.origin_loss == pytest.approx(
        evaluate(why.open_run(r).model, subset.images, subset.labels).loss
    )
    # Two runs: one side-by-side figure on one scale next to them (here: in --out).
    assert main(["landscape", str(runs["plain20"]), str(r), "--images", "16", "--points", "5", "--grid", "3",
                 "--pairs", "3", "--out", str(tmp_path / "both")]) == 0  # fmt: skip
    assert (tmp_path / "both" / "landscape-compare.png").is_file()
    assert why.read_result(tmp_path / "both" / "resnet20", "landscape").pairs == 3
    text = capsys.readouterr().out
    assert "Depth 20: sharpness" in text and "3 vs 3 direction pairs" in text and "95% CI" in text


def test_a_single_landscape_fills_its_figure(runs, tmp_path):
    # One run: its contour panel starts at the left edge (it used to sit in the right half of an empty
    # figure); two runs: two panels side by side, sharing the colour bar.
    from depthlab.studies.why_figures import plot_landscape

    config = why.LandscapeConfig(points=5, grid=5, pairs=2)
    items = [
        (name, why.run_landscape(runs[name], images=16, config=config, out=tmp_path / name))
        for name in ("resnet20", "plain20")
    ]
    for count in (1, 2):
        fig = plot_landscape(items[:count])
        fig.canvas.draw()
        contours = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_aspect() == 1.0]
        assert len(contours) == count
        left = min(ax.get_position().x0 for ax in contours)
        right = max(ax.get_position().x1 for ax in contours)
        assert left < 0.2 and right > 0.5, (count, left, right)


def test_attribute_command_on_a_run(runs, tmp_path, capsys):
    r = runs["resnet20"]
    assert main(["attribute", str(r), "--images", "2", "--ig-steps", "4", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "top-5 class" in text and "Spearman" in text and "saliency (signed)" in text
    result = why.read_result(tmp_path, "attribution")
    assert [x.source for x in result.images] == [
        f"test[{i}]" for i in why.load_eval_set(why.open_run(r), 1000).indices[:2]
    ]
    assert {row.cut for row in result.sanity} == {"head", "stages.1", "stages.0", "stem"}
    for name in ("attribution.png", "attribution-sanity.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    no_ckpt = tmp_path / "no-ckpt"
    shutil.copytree(runs["resnet20"], no_ckpt, ignore=shutil.ignore_patterns("checkpoints", "analysis"))
    cases = [
        (["lesion", str(no_ckpt)], "last.json: file is missing"),
        (["lesion", str(tmp_path)], "not a run directory"),
        (["lesion", str(runs["plain20"]), "--mode", "residual"], "no residual blocks"),
        (["paths", str(runs["plain20"])], "single path"),
        (["attribute", str(runs["resnet20"]), "--image", str(tmp_path / "missing.png")], "cannot read image"),
        (["attribute", str(runs["resnet20"]), "--methods", "lime"], "choose from gradcam"),
    ]
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err, (argv, err)


def test_why_section_reads_stored_results_only(runs, monkeypatch):
    for r in runs.values():
        why.run_lesion(r, images=16, draws=1, max_swaps=1)
        why.run_landscape(r, images=16, config=why.LandscapeConfig(points=5, grid=3))
    why.run_paths(runs["resnet20"], images=16, samples=1, batch=4)
    why.run_attribution(runs["resnet20"], images=2, methods=["gradcam", "saliency"])

    def fail(*args, **kwargs):
        raise AssertionError("why_section must not load models or data")

    monkeypatch.setattr(why, "open_run", fail)
    monkeypatch.setattr(why, "load_eval_set", fail)
    figures, sentences = why.why_section(
        [runs["resnet20"], runs["plain20"], runs["resnet20"].parent / "none"]
    )
    titles = [t for t, _, _ in figures]
    assert titles == [
        "Lesion study", "Path lengths", "Loss landscape", "Attributions: resnet20", "Attribution sanity check",
    ]  # fmt: skip
    for _, caption, png in figures:
        assert png[:4] == b"\x89PNG" and "eval mode" in caption
    assert any(s.startswith("plain20 (plain mode") for s in sentences)
    assert any(s.startswith("Depth 20: sharpness") for s in sentences)
    assert why.why_section([runs["resnet20"].parent / "none"]) == ([], [])


def test_run_analyses_skips_paths_for_a_plain_net(runs):
    results = why.run_analyses(
        runs["plain20"], ["lesion", "paths"], options={"lesion": {"images": 8, "draws": 1, "max_swaps": 0}}
    )
    assert results["paths"].startswith("skipped") and results["lesion"].mode == "plain"
    with pytest.raises(ValueError, match="unknown analysis lesions; choose from: lesion, paths"):
        why.run_analyses(runs["plain20"], ["lesions"])


def test_threads_option():
    from depthlab.cli.why import set_threads

    assert set_threads("1") == 1 and torch.get_num_threads() == 1
    assert set_threads("auto") >= 1
    with pytest.raises(ValueError, match="--threads expects 'auto' or a positive integer"):
        set_threads("0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_device_option_picks_the_device_and_refuses_cuda_without_a_gpu(runs, tmp_path, capsys):
    r = runs["resnet20"]
    assert main(["lesion", str(r), "--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device is available" in err
    assert not (tmp_path / "lesion.json").exists()  # refused before anything was computed
    argv = ["lesion", str(r), "--images", "8", "--draws", "1", "--max-swaps", "0", "--out", str(tmp_path)]
    assert main([*argv, "--device", "auto"]) == 0  # auto: the CPU here
    assert why.read_result(tmp_path, "lesion").source["device"] == "cpu"
