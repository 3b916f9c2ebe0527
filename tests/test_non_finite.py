"""Issue 22: every non-finite number a run or a study records is handled one way — written as ``null`` (strict
JSON), read back as NaN ("unknown"), never fed to a statistic and never the source of a verdict. Each reader
is fed a file whose measured numbers were non-finite when written: the stored analyses of a run (lesion,
paths, landscape, attribution) and the "Why it works" section built from them, a study probe's gradient
diagnostics, the inception-aux probe, the shattered-gradient lines, and a run directory's metrics and summary.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch

from depthlab.analysis.gradients import Diagnostics, diagnose, output_gradients
from depthlab.analysis.shattered import ShatteredResult, condition
from depthlab.io import read_number, write_json
from depthlab.studies import why
from depthlab.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = "synthetic:channels=1,size=8,train=96,test=40"
KWARGS = {"layers": (2, 1), "widths": (4, 8)}  # 3 blocks: tiny, and a residual net has paths to follow


def poison(values: Any, keys: Iterable[str], value: float = math.inf) -> Any:
    """``values`` with every float under one of ``keys`` (at any depth) replaced by ``value``."""
    keys = set(keys)

    def walk(x: Any, on: bool) -> Any:
        if isinstance(x, dict):
            return {k: walk(v, on or k in keys) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v, on) for v in x]
        return value if on and isinstance(x, float) else x

    return walk(values, False)


def nulls(values: Any) -> int:
    if isinstance(values, dict):
        return sum(nulls(v) for v in values.values())
    if isinstance(values, list):
        return sum(nulls(v) for v in values)
    return int(values is None)


def rewrite(path: Path, keys: Iterable[str], value: float = math.inf) -> int:
    """Rewrite the JSON file ``path`` with the measured numbers under ``keys`` non-finite, through the writer
    every depthlab file goes through; returns how many nulls it now holds beyond those it held before."""
    before = json.loads(path.read_text())
    write_json(path, poison(before, keys, value))
    after = json.loads(path.read_text())  # strict JSON: json.loads would accept NaN, so count the nulls
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    return nulls(after) - nulls(before)


def no_nan_text(sentences: Iterable[str]) -> None:
    for s in sentences:
        assert "nan" not in s.replace("nano", "").lower().split() and "+nan" not in s and " inf" not in s, s


# --------------------------------------------------------------------------------------------- a run's analyses
MEASURED = {
    "lesion": ("intact_error", "intact_loss", "error", "loss", "errors"),
    "paths": ("gradient", "gradient_spread", "total", "full_gradient", "sample_gradient"),
    "landscape": ("origin_loss", "origin_error", "slice_loss", "slice_error", "grid_loss", "grid_error",
                  "sharpness_1d", "sharpness_2d", "pair_sharpness_1d", "pair_sharpness_2d", "pair_slice_loss"),
    "attribution": ("probability", "top5", "spearman"),
}  # fmt: skip


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain and a residual tiny run, each with every analysis stored (paths: the residual one only)."""
    root = tmp_path_factory.mktemp("nonfinite")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for model in ("resnet20", "plain20"):
            config = TrainConfig(
                model=model, data=DATA, epochs=None, steps=4, batch_size=32, lr=0.05, log_every=2, eval_every=4,
                checkpoint_every=4, device="cpu", model_kwargs=KWARGS, val_size=16, precision="fp32",
            )  # fmt: skip
            train(config, root / model)
            why.run_lesion(root / model, images=24, draws=2, max_swaps=1)
            why.run_landscape(root / model, images=16, config=why.LandscapeConfig(points=5, grid=3, pairs=2))
            why.run_attribution(root / model, images=2, ig_steps=4)
            if model == "resnet20":
                why.run_paths(root / model, images=24, samples=2, batch=8)
            out[model] = root / model
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("value", [math.inf, math.nan], ids=["inf", "nan"])
def test_each_stored_analysis_reads_non_finite_numbers_as_unknown(analysed, tmp_path, value):
    """Every measured number of every stored analysis made non-finite: each file holds nulls (strict JSON),
    each reader returns NaN for them, its sentences say "unknown" and draw no verdict, and the report's
    "Why it works" section (figures and sentences) is still built."""
    runs = {}
    for model, source in analysed.items():
        runs[model] = tmp_path / model
        shutil.copytree(source, runs[model])
        for name, keys in MEASURED.items():
            path = runs[model] / "analysis" / f"{name}.json"
            if path.is_file():
                assert rewrite(path, keys, value) > 0

    lesion = why.read_result(runs["resnet20"] / "analysis", "lesion")
    assert math.isnan(lesion.intact_error) and math.isnan(lesion.intact_loss)
    assert all(math.isnan(s.error) for s in lesion.single) and math.isnan(lesion.deletions[0].spread)
    assert math.isnan(lesion.above_chance_p())  # no binomial test of a number that is not one
    assert lesion.findings("resnet20")[1] == (
        "The intact error of resnet20 is unknown (a non-finite number), so no lesion verdict is drawn from it."
    )
    paths = why.read_result(runs["resnet20"] / "analysis", "paths")
    assert all(math.isnan(g) for g in paths.gradient) and paths.comparison().outcome == "not resolved"
    assert "The gradient per path length is unknown" in paths.findings("resnet20")[0]
    assert len(paths.findings("resnet20")) == 1  # no effective range read off non-finite numbers
    landscape = why.read_result(runs["resnet20"] / "analysis", "landscape")
    assert math.isnan(landscape.origin_loss) and all(math.isnan(v) for v in landscape.pair_sharpness)
    assert landscape.sharpness_estimate().ci() is None  # type: ignore[union-attr]
    text = landscape.findings("resnet20")[0]
    assert "loss unknown" in text and "local minima are unknown" in text
    attribution = why.read_result(runs["resnet20"] / "analysis", "attribution")
    assert all(math.isnan(v) for r in attribution.sanity for v in r.spearman)
    assert all(r.outcome == "not resolved" for r in attribution.evidence(-1))

    figures, sentences = why.why_section([runs["plain20"], runs["resnet20"]])
    assert [t for t, _, _ in figures][:3] == ["Lesion study", "Path lengths", "Loss landscape"]
    assert all(png[:4] == b"\x89PNG" for _, _, png in figures)
    no_nan_text(sentences)
    depth = next(s for s in sentences if s.startswith("Depth 20: sharpness"))
    assert depth.endswith("not resolved (a non-finite sharpness, so no CI).") and "unknown (plain20)" in depth
    for verdict in ("as Veit et al. found", "unlike Veit", "as Li et al. found", "still correlated with"):
        assert not any(verdict in s for s in sentences), verdict


# ------------------------------------------------------------------------------------------ probes and lines
def _tiny_resnet() -> torch.nn.Module:
    import depthlab

    return depthlab.create_model("resnet20", num_classes=3, in_channels=1, **KWARGS)


def test_diagnostics_read_non_finite_numbers_as_unknown(tmp_path):
    """A probe of an overflowing net (the paper preset's plain-110 in eval mode): its losses, gradients,
    signals and response stds null in diagnostics.json, NaN when read; a plain block's branch ratio stays
    None (it has none) and a residual one's null is NaN."""
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 3
    d = diagnose(_tiny_resnet(), x, y, mode="eval").to_dict()
    path = tmp_path / "diagnostics.json"
    write_json(path, {"end": {"eval": d}})
    measured = ("loss", "grad_norm", "weight_norm", "activation_std", "output_grad_norm", "output_std",
                "output_norm", "branch_ratio", "std")  # fmt: skip
    assert rewrite(path, measured) > 0
    back = Diagnostics.from_dict(json.loads(path.read_text())["end"]["eval"])
    assert math.isnan(back.loss) and all(math.isnan(r.std) for r in back.responses)
    assert all(math.isnan(b.grad_rms) and math.isnan(b.output_std) for b in back.blocks)
    assert all(math.isnan(b.branch_ratio) for b in back.blocks if b.residual)  # type: ignore[arg-type]
    assert math.isnan(back.block_grad_ratio()) and math.isnan(back.forward_growth())

    plain = diagnose(
        __import__("depthlab").create_model("plain20", num_classes=3, in_channels=1, **KWARGS), x, y
    ).to_dict()
    assert all(b["branch_ratio"] is None for b in plain["blocks"])
    assert all(b.branch_ratio is None for b in Diagnostics.from_dict(plain).blocks)


def test_output_gradients_and_the_aux_probe_read_null_as_unknown(tmp_path):
    from depthlab.studies.inception_aux.probe import AuxGradients, TapGradient

    model = _tiny_resnet()
    x, y = torch.randn(4, 1, 8, 8), torch.arange(4) % 3
    g = output_gradients(
        model, x, y, ["stem"], {"main": lambda out, t: torch.nn.functional.cross_entropy(out, t)}
    )
    path = tmp_path / "grad.json"
    write_json(path, g.to_dict())
    assert rewrite(path, ("loss", "grad")) == 2
    back = type(g).from_dict(json.loads(path.read_text()))
    assert math.isnan(back.loss["main"]) and math.isnan(back.grad["main"]["stem"])

    probe = AuxGradients(4, {"main": math.inf, "aux1": 1.0}, (TapGradient("stem", 16, math.nan, 2.0, 0.5),))
    write_json(path, probe.to_dict())
    read = AuxGradients.from_dict(json.loads(path.read_text()))
    tap = read.at("stem")
    assert math.isnan(read.losses["main"]) and tap is not None and math.isnan(tap.main)
    assert math.isnan(tap.main_rms) and math.isnan(tap.share(0.3))


def test_shattered_lines_read_null_as_unknown_and_are_left_out(tmp_path):
    """A line whose autocorrelation was non-finite: NaN when read, left out of the condition's estimate and
    counted by its seed count, so the comparison has no interval rather than a NaN one."""
    rows = [
        ShatteredResult("plain-20, BN", s, 8, (0.1,) * 8, 0.5, 0.2 + s / 10, -1.0).to_dict() for s in range(3)
    ]
    rows[0] = {**rows[0], "lag1_autocorrelation": math.inf, "directional": [math.nan] * 8}
    path = tmp_path / "shattered.json"
    write_json(path, {"results": rows})
    stored = json.loads(path.read_text())["results"]
    assert stored[0]["lag1_autocorrelation"] is None and stored[0]["directional"] == [None] * 8
    back = ShatteredResult.from_dict(stored[0])
    assert math.isnan(back.lag1_autocorrelation) and all(math.isnan(v) for v in back.directional)
    c = condition("plain-20, BN", stored)
    assert c is not None and c.lag1.values == pytest.approx((0.3, 0.4)) and c.lag1.finite


# ------------------------------------------------------------------------------------------- run directories
def test_a_run_directory_with_null_numbers_is_read_as_unknown(tmp_path):
    """metrics.jsonl rows whose loss and error were non-finite, a summary whose timings were: read_run keeps
    the rows (the error NaN, unknown — not dropped, which would make an earlier row the final one)."""
    from depthlab.studies.engine import read_run

    config = TrainConfig(
        model="resnet20", data=DATA, epochs=None, steps=4, batch_size=32, lr=0.05, log_every=2, eval_every=4,
        checkpoint_every=4, device="cpu", model_kwargs=KWARGS, val_size=16, precision="fp32",
    )  # fmt: skip
    run = tmp_path / "run"
    train(config, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last_test = max(i for i, r in enumerate(rows) if r["split"] == "test")
    rows[last_test] = {**rows[last_test], "loss": None, "error": None}
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads((run / "summary.json").read_text())
    write_json(run / "summary.json", {**summary, "wall_time_s": math.inf, "images_per_s": math.nan})
    r = read_run(run)
    assert math.isnan(r.final["test"]) and r.curves["test"][-1] == (4, r.final["test"])
    assert math.isnan(r.wall_seconds) and math.isnan(r.images_per_s)
    assert math.isnan(read_number(None)) and read_number(2) == 2.0
