"""``depthlab gradflow``: the files it writes and their schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depthlab.cli import main

DATA = "synthetic:channels=1,size=12,train=64,test=16"


@pytest.mark.parametrize("no_bn", [False, True])
def test_gradflow_writes_png_and_json(
    tmp_path: Path, no_bn: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["gradflow", "plain20", "resnet20", "--data", DATA, "--batch", "8", "--out", str(tmp_path)]
    assert main(args + (["--no-bn"] if no_bn else [])) == 0
    data = json.loads((tmp_path / "gradflow.json").read_text())
    assert set(data) == {"models"}
    assert [m["name"] for m in data["models"]] == ["plain20", "resnet20"]
    for m in data["models"]:
        assert set(m) == {"name", "layers"}
        assert len(m["layers"]) == 20
        assert [layer["index"] for layer in m["layers"]] == list(range(1, 21))
        for layer in m["layers"]:
            assert set(layer) == {"name", "index", "grad_norm", "activation_std"}
            assert layer["grad_norm"] >= 0 and layer["activation_std"] >= 0
    png = (tmp_path / "gradflow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "gradflow.png" in capsys.readouterr().out


def test_gradflow_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradflow", "resnet21", "--data", DATA, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "resnet21" in err
    assert main(["gradflow", "--batch", "0", "--data", DATA, "--out", str(tmp_path)]) == 2
    assert "--batch" in capsys.readouterr().err
