"""``depthlab gradflow``: the files it writes, their schema, and what ``--no-bn`` changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from depthlab.cli import main

# Tiny models: one intra-op thread (the shared `one_thread` fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")

DATA = "synthetic:channels=1,size=12,train=64,test=16"


def _gradflow(tmp_path: Path, no_bn: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list[nn.Module]]:
    """Run the command; return its JSON and every model it built (spied on where gradient_flow builds them)."""
    import depthlab.analysis.gradients as gradients

    built: list[nn.Module] = []
    original = gradients.create_model

    def spy(*args: object, **kwargs: object) -> nn.Module:
        built.append(original(*args, **kwargs))  # type: ignore[arg-type]
        return built[-1]

    monkeypatch.setattr(gradients, "create_model", spy)
    out = tmp_path / ("no-bn" if no_bn else "bn")
    args = ["gradflow", "plain20", "resnet20", "--data", DATA, "--batch", "8", "--out", str(out)]
    assert main(args + (["--no-bn"] if no_bn else [])) == 0
    return json.loads((out / "gradflow.json").read_text()), built


def test_gradflow_writes_png_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:  # noqa: ANN001
    data, built = _gradflow(tmp_path, False, monkeypatch)
    assert set(data) == {"models"}
    assert [m["name"] for m in data["models"]] == ["plain20", "resnet20"]
    for m in data["models"]:
        assert set(m) == {"name", "layers"}
        assert len(m["layers"]) == 20
        assert [layer["index"] for layer in m["layers"]] == list(range(1, 21))
        for layer in m["layers"]:
            assert set(layer) == {"name", "index", "grad_norm", "activation_std"}
            assert layer["grad_norm"] >= 0 and layer["activation_std"] >= 0
    png = (tmp_path / "bn" / "gradflow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "gradflow.png" in capsys.readouterr().out
    assert len(built) == 2 and all(any(isinstance(x, nn.BatchNorm2d) for x in m.modules()) for m in built)


def _stds(model: dict) -> list[float]:
    return [layer["activation_std"] for layer in model["layers"][:-1]]  # the 19 conv units (not the fc)


def test_no_bn_builds_bn_free_models_and_changes_the_numbers(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    bn, _ = _gradflow(tmp_path, False, monkeypatch)
    free, built = _gradflow(tmp_path, True, monkeypatch)
    assert len(built) == 2
    for model in built:  # the --no-bn models hold no normalisation at all, and their convs have biases
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert [[x["name"] for x in m["layers"]] for m in free["models"]] == [
        [x["name"] for x in m["layers"]] for m in bn["models"]
    ]  # the same layers
    # With BN (training mode, batch statistics, gamma 1, beta 0) every conv unit's output is standardised:
    # std 1 where no ReLU follows (before the addition), sqrt(1/2 - 1/2pi) ~ 0.58 after a ReLU.
    for m in bn["models"]:
        assert all(abs(s - 1) < 0.01 or 0.5 < s < 0.7 for s in _stds(m)), (m["name"], _stds(m))
    # Without BN nothing renormalises: the numbers leave that band, and in the directions depth forces.
    plain, residual = (m for m in free["models"])
    assert not all(abs(s - 1) < 0.01 or 0.5 < s < 0.7 for s in _stds(plain) + _stds(residual))
    assert _stds(residual)[-1] > 3 * _stds(residual)[0]  # each block adds its branch: the signal grows
    assert _stds(plain)[-1] < _stds(plain)[0] / 3  # the plain stack shrinks it
    grads = {m["name"]: [x["grad_norm"] for x in m["layers"]] for m in free["models"]}
    bn_grads = {m["name"]: [x["grad_norm"] for x in m["layers"]] for m in bn["models"]}
    # The plain net's gradient vanishes toward the input without BN; with BN it grows toward the input.
    assert grads["plain20"][0] < grads["plain20"][-2] and bn_grads["plain20"][0] > bn_grads["plain20"][-2]


def test_gradflow_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradflow", "resnet21", "--data", DATA, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "resnet21" in err
    assert main(["gradflow", "--batch", "0", "--data", DATA, "--out", str(tmp_path)]) == 2
    assert "--batch" in capsys.readouterr().err
