"""TensorBoard output: the events a run writes hold exactly the numbers of its metrics.jsonl (read back with
TensorBoard's own EventAccumulator); without TensorBoard installed training works as before."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from depthlab.cli import main
from depthlab.train import read_metrics

# Tiny models: one intra-op thread for the whole module (`one_thread_module` in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread_module")


DATA = "synthetic:size=8,train=64,test=16,classes=4"
# fp32 pinned: logged values are compared, and "auto" would train in bf16 on a CPU with native bf16.
TRAIN = ["train", "resnet20", "--data", DATA, "--steps", "6", "--batch-size", "16", "--log-every", "2",
         "--eval-every", "3", "--checkpoint-every", "3", "--device", "cpu", "--precision", "fp32",
         "--quiet"]  # fmt: skip


def _accumulate(log_dir: Path):  # noqa: ANN202 - tensorboard's class
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag: str) -> list[tuple[int, float]]:  # noqa: ANN001
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_training_writes_the_metrics_as_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0  # installed: on by default
    acc = _accumulate(out / "tensorboard")
    rows = read_metrics(out)
    assert {"loss/train", "error/train", "lr", "loss/val", "error/val", "loss/test", "error/test"} <= set(
        acc.Tags()["scalars"]
    )
    for split in ("train", "val", "test"):
        for key in ("loss", "error"):
            expected = [(r["step"], r[key]) for r in rows if r["split"] == split]
            got = _scalars(acc, f"{key}/{split}")
            assert [s for s, _ in got] == [s for s, _ in expected] and expected  # the same steps...
            assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)  # ...values (f32)
    lrs = [(r["step"], r["lr"]) for r in rows if r["split"] == "train"]
    assert [v for _, v in _scalars(acc, "lr")] == pytest.approx([v for _, v in lrs], rel=1e-6)


def test_a_resumed_run_purges_the_redone_steps(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    # Rewind the finished run to its step-3 checkpoint (as if killed before step 6 was saved) and resume:
    # steps 4-6 are redone, and their first-session events must not show twice.
    ckpt = out / "checkpoints"
    last = json.loads((ckpt / "last.json").read_text())
    previous = dict(last["previous"])
    (ckpt / "last.json").write_text(json.dumps(previous))
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    acc = _accumulate(out / "tensorboard")
    steps = [s for s, _ in _scalars(acc, "loss/val")]
    assert steps == [3, 6]  # each step once: the purge hid the first session's step 6, kept step 3


def test_gradflow_adds_its_figure_as_an_image(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    args = ["gradflow", "resnet20", "--data", "synthetic:channels=1,size=12,train=32,test=8", "--batch", "4"]
    assert main([*args, "--out", str(tmp_path), "--tensorboard"]) == 0
    acc = _accumulate(tmp_path / "tensorboard")
    (image,) = acc.Images("gradflow/bn")
    assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and image.width > 100


def test_without_tensorboard_training_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    # None in sys.modules makes `import torch.utils.tensorboard` raise ImportError, as when not installed.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    from depthlab.train.tensorboard import tensorboard_available

    assert not tensorboard_available()
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert read_metrics(out) and not (out / "tensorboard").exists()
    assert main([*TRAIN, "--out", str(tmp_path / "asked"), "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'depthlab[tensorboard]'" in err
    assert not (tmp_path / "asked").exists()


def test_no_tensorboard_turns_it_off(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--no-tensorboard"]) == 0
    assert not (out / "tensorboard").exists()
