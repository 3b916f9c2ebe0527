"""depthlab.train: config and overrides, schedules, the run directory, checkpoints, refusals, divergence,
bit-identical resume after SIGKILL and after Ctrl-C, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from depthlab.cli import main
from depthlab.data import load_data
from depthlab.train import (
    ConfigError,
    TrainConfig,
    TrainingDivergedError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_run,
    load_run_model,
    read_metrics,
    train,
)
from depthlab.train.optim import lr_factor, parameter_groups
from depthlab.train.setup import preflight

SRC = Path(__file__).resolve().parents[1] / "src"
DATA = "synthetic:size=12,train=400,test=100"
# fp32 pinned: these tests compare numbers, which "auto" would make depend on the CPU (bf16 where it is native).
TINY = TrainConfig(
    model="resnet20", data=DATA, epochs=None, steps=40, batch_size=32, lr=0.05, log_every=5, eval_every=10,
    checkpoint_every=5, device="cpu", precision="fp32",
)  # fmt: skip
TIMING_KEYS = ("images_per_s",)


def _last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    pointer = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    return load_file(run_dir / "checkpoints" / pointer["weights"])


def _rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in read_metrics(run_dir)]


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _last_weights(a), _last_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key  # bit for bit
    assert _rows(a) == _rows(b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted run of TINY, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    train(TINY, out)
    return out


# ------------------------------------------------------------------------------------------------ config
def test_overrides_are_typed_and_unknown_keys_rejected():
    c = apply_overrides(TrainConfig(), ["lr=0.05", "nesterov=false", "model_kwargs.norm=none", "steps=100",
                                        "milestones=2,3", "clip_grad=none", "model_kwargs.widths=[8,16,32]"])  # fmt: skip
    assert c.lr == 0.05 and c.nesterov is False and c.steps == 100 and c.epochs is None
    assert c.model_kwargs == {"norm": None, "widths": [8, 16, 32]} and c.milestones == (2.0, 3.0)
    with pytest.raises(ConfigError, match="did you mean lr"):
        apply_overrides(TrainConfig(), ["lrr=1"])
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        apply_overrides(TrainConfig(), ["batch_size=big"])
    with pytest.raises(ConfigError, match="exactly one of epochs and steps"):
        apply_overrides(TrainConfig(), ["steps=5", "epochs=2"])
    assert config_from_dict(json.loads(json.dumps(config_to_dict(c)))) == c


@pytest.mark.parametrize(
    "change,match",
    [
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"optimizer": "rmsprop"}, "choose from: sgd, adamw"),
        ({"schedule": "linear"}, "choose from: step, cosine, onecycle"),
        ({"device": "tpu"}, "choose from: auto, cpu, cuda"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"optimizer": "adamw"}, "nesterov needs optimizer=sgd"),
    ],
)
def test_bad_config_values_name_the_problem(change, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(TrainConfig(), **change)


def test_schedules():
    c = TrainConfig(epochs=None, steps=100, schedule="step")
    assert [lr_factor(c, s, 100, 10) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    c = TrainConfig(epochs=4, schedule="step", milestones=(1, 3))
    assert [lr_factor(c, s, 40, 10) for s in (9, 10, 29, 30)] == pytest.approx([1, 0.1, 0.1, 0.01])
    c = TrainConfig(epochs=None, steps=100, schedule="onecycle", warmup=20)
    assert lr_factor(c, 0, 100, 10) == pytest.approx(1 / 25) and lr_factor(c, 20, 100, 10) == pytest.approx(1)
    assert lr_factor(c, 60, 100, 10) == pytest.approx(0.5) and 0 < lr_factor(c, 99, 100, 10) < 0.02
    c = TrainConfig(epochs=None, steps=100, schedule="cosine", warmup=9)
    assert lr_factor(c, 0, 100, 10) == pytest.approx(0.1) and lr_factor(c, 9, 100, 10) == pytest.approx(1)
    assert lr_factor(c, 99, 100, 10) < 0.01


def test_no_weight_decay_on_norm_and_bias():
    from depthlab import create_model

    model = create_model("resnet20", num_classes=10)
    decay, no_decay = parameter_groups(model, 5e-4, decay_norm_and_bias=False)
    assert all(p.dim() == 4 or p.dim() == 2 for p in decay["params"]) and no_decay["weight_decay"] == 0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


# ------------------------------------------------------------------------------------------- run directory
def test_run_directory_is_self_describing(reference):
    for name in ("config.json", "environment.json", "metrics.jsonl", "summary.json"):
        assert (reference / name).is_file()
    env = json.loads((reference / "environment.json").read_text())
    assert {"torch", "torchvision", "python", "device", "cpu", "git"} <= env.keys()
    rows = read_metrics(reference)
    assert all({"step", "epoch", "split"} <= row.keys() for row in rows)
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(5, 41, 5)) and all("lr" in r for r in train_rows)
    assert [r["step"] for r in rows if r["split"] == "val"] == [10, 20, 30, 40]
    assert [r["step"] for r in rows if r["split"] == "test"] == [10, 20, 30, 40]
    config, summary = load_run(reference)
    # config.json holds the config as given; environment.json the precision asked for and used
    assert config == TINY and (env["precision"]["requested"], env["precision"]["used"]) == ("fp32", "fp32")
    assert summary.status == "completed" and summary.step == 40
    assert summary.images_per_s > 0 and summary.wall_time_s > 0
    # best: the first evaluation with the lowest validation error, with that evaluation's test numbers
    val = [r for r in rows if r["split"] == "val"]
    first_best = min(val, key=lambda r: (r["error"], r["step"]))
    test_then = next(r for r in rows if r["split"] == "test" and r["step"] == first_best["step"])
    assert summary.best == {
        "step": first_best["step"], "epoch": first_best["epoch"], "val_loss": first_best["loss"],
        "val_error": first_best["error"], "test_loss": test_then["loss"], "test_error": test_then["error"],
    }  # fmt: skip
    assert summary.best["val_error"] < 0.5  # well below chance (0.9): the split is evaluated, not guessed
    assert summary.final["test_error"] == rows[-1]["error"]
    assert summary.final["train_error"] < 0.5  # the synthetic task is learnable within 40 steps


def test_checkpoints_load_safely_and_rebuild_the_model(reference):
    pointer = json.loads((reference / "checkpoints" / "last.json").read_text())
    state = torch.load(reference / "checkpoints" / pointer["state"], weights_only=True)
    assert state["step"] == 40 and {"optimizer", "scheduler", "rng", "running"} <= state.keys()
    model = load_run_model(reference, "best")
    bundle = load_data(DATA)
    x = (bundle.test.images[:8].float() / 255 - 0.5) / 0.25
    assert model(x).shape == (8, 10) and not model.training


def test_best_checkpoint_holds_the_weights_of_the_best_validation_step(tmp_path, one_thread):
    # A checkpoint at every evaluation: the weights the model had at each evaluated step, captured as the
    # trainer writes them; the validation error of this run dips at step 6, then rises again.
    config = dataclasses.replace(
        TINY, data="synthetic:size=8,train=200,test=50,classes=4", steps=12, batch_size=20, log_every=3,
        eval_every=3, checkpoint_every=3,
    )  # fmt: skip
    at_step: dict[int, dict[str, torch.Tensor]] = {}

    def capture(event):  # noqa: ANN001
        if event.kind == "checkpoint":
            at_step[event.step] = _last_weights(tmp_path / "run")

    train(config, tmp_path / "run", callback=capture)
    val = [r for r in read_metrics(tmp_path / "run") if r["split"] == "val"]
    best_step = min(val, key=lambda r: (r["error"], r["step"]))["step"]
    assert best_step < 12 and sorted(at_step) == [3, 6, 9, 12]  # the best is not simply the last
    pointer = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert pointer["step"] == pointer["record"]["step"] == best_step
    best = load_file(tmp_path / "run" / "checkpoints" / pointer["weights"])
    assert best.keys() == at_step[best_step].keys()
    assert all(torch.equal(best[k], at_step[best_step][k]) for k in best)
    assert not all(torch.equal(best[k], at_step[12][k]) for k in best)
    model = load_run_model(tmp_path / "run", "best")
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("crashing", ["step-00000004.safetensors", "step-00000004.state.pt", "last.json"])
def test_a_crash_inside_a_checkpoint_write_leaves_the_previous_checkpoint(
    tmp_path, monkeypatch, crashing, one_thread
):
    """Kill the step-4 checkpoint at each of its renames (weights, trainer state, pointer): the step-2
    checkpoint survives whole, loads, and the run resumes from it to the uninterrupted run's weights."""
    config = dataclasses.replace(
        TINY, data="synthetic:size=8,train=64,test=16", steps=4, batch_size=16, checkpoint_every=2,
        eval_every=2, log_every=2,
    )  # fmt: skip
    train(config, tmp_path / "uninterrupted")
    real_replace = os.replace
    state = {"armed": False, "step2": None}

    def replace(src, dst):  # noqa: ANN001, ANN202
        if state["armed"] and Path(dst).name == crashing:
            state["armed"] = False
            raise OSError(5, "simulated crash during the rename", str(dst))
        return real_replace(src, dst)

    def arm(event):  # noqa: ANN001
        if event.kind == "checkpoint" and event.step == 2:
            state["armed"], state["step2"] = True, _last_weights(tmp_path / "run")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated crash"):
        train(config, tmp_path / "run", callback=arm)
    monkeypatch.setattr(os, "replace", real_replace)
    ckpt = tmp_path / "run" / "checkpoints"
    assert not [p.name for p in ckpt.iterdir() if p.name.endswith(".tmp")]  # no torn temporary left behind
    assert json.loads((ckpt / "last.json").read_text())["step"] == 2
    assert not (ckpt / crashing).exists() or crashing == "last.json"
    survivor = _last_weights(tmp_path / "run")
    assert all(torch.equal(survivor[k], state["step2"][k]) for k in survivor)
    model = load_run_model(tmp_path / "run", "last")
    assert all(torch.equal(v, survivor[k]) for k, v in model.state_dict().items())
    assert train(config, tmp_path / "run", resume=True).status == "completed"
    _assert_same_run(tmp_path / "run", tmp_path / "uninterrupted")


# ------------------------------------------------------------------------------------------- refusals
def test_refusals_before_training(tmp_path):
    with pytest.raises(ConfigError, match="labels span 0..9 but resnet20 has 5 classes"):
        train(dataclasses.replace(TINY, model_kwargs={"num_classes": 5}), tmp_path / "a")
    with pytest.raises(ConfigError, match="1 channel.*built for 3"):
        train(
            dataclasses.replace(TINY, data=DATA + ",channels=1", model_kwargs={"in_channels": 3}),
            tmp_path / "b",
        )
    with pytest.raises(ValueError, match="unknown model"):
        train(dataclasses.replace(TINY, model="resnet21"), tmp_path / "c")
    with pytest.raises(ConfigError, match="larger than the training split"):
        train(dataclasses.replace(TINY, batch_size=1000), tmp_path / "d")
    assert not (tmp_path / "a").exists()  # nothing written for a refused run


def test_images_too_small_are_refused():
    class NeedsBig(torch.nn.Module):
        num_classes, in_channels, min_input_size = 10, 3, 64

    with pytest.raises(ConfigError, match="12x12 but big needs at least 64x64; pass --image-size 64"):
        preflight(NeedsBig(), load_data(DATA), "big")


def test_existing_run_directory_is_not_overwritten(reference):
    with pytest.raises(ConfigError, match="already holds a run"):
        train(TINY, reference)


def test_a_diverging_lr_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """lr=1e3 blows the net up within a few steps: the run stops at the first step whose loss or weights are
    non-finite, with status "diverged"; summary.json names the step and what became non-finite; the last
    checkpoint is the step before (checkpoint_every=1), with finite weights; no metrics row is past it."""
    config = dataclasses.replace(TINY, lr=1e3, schedule="cosine", checkpoint_every=1, label_smoothing=0.0)
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="diverged at step .*last good checkpoint") as info:
        train(config, run)
    kept = _last_weights(run)
    assert all(torch.isfinite(t).all() for t in kept.values() if t.is_floating_point())
    assert info.value.summary.status == "diverged"
    summary = json.loads((run / "summary.json").read_text())
    record = summary["diverged"]
    assert summary["status"] == "diverged" and summary["step"] == record["step"] < config.steps
    if record["cause"] == "loss":
        assert record["loss"] is None and record["value"] in ("nan", "inf", "-inf") and not record["tensors"]
    else:
        assert record["cause"] == "parameters" and record["tensors"] and math.isfinite(record["loss"])
    pointer = json.loads((run / "checkpoints" / "last.json").read_text())
    assert record["checkpoint"] == pointer["step"] == record["step"] - 1  # checkpoint_every=1: the one before
    assert max((row["step"] for row in read_metrics(run)), default=0) < record["step"]


def _poison_at_step_3(monkeypatch, tensor: str) -> Callable[[Any], None]:
    """A callback that fills ``tensor`` of the model being trained with +inf after step 3 (not a checkpoint
    step of the configs below, so nothing checks the weights before step 4 trains)."""
    from depthlab.train import loop

    built: list[torch.nn.Module] = []
    original = loop.build_model

    def keep(config, bundle):  # noqa: ANN001, ANN202
        built.append(original(config, bundle))
        return built[-1]

    def poison(event) -> None:  # noqa: ANN001
        if event.kind == "step" and event.step == 3:
            built[0].state_dict()[tensor].fill_(math.inf)

    monkeypatch.setattr(loop, "build_model", keep)
    return poison


def test_a_non_finite_loss_stops_the_run_at_its_step(tmp_path, monkeypatch):
    """Infinite weights make step 4's loss NaN: the run stops at step 4 (checked every step on one CPU
    process), naming the loss — null in summary.json (strict JSON), "nan" as text — and step 2's checkpoint."""
    poison = _poison_at_step_3(monkeypatch, "stem.0.conv.weight")
    config = dataclasses.replace(TINY, steps=6, checkpoint_every=2, eval_every=6, log_every=6)
    run = tmp_path / "run"
    stopped = "diverged at step 4 .*the training loss became nan"
    with pytest.raises(TrainingDivergedError, match=stopped) as info:
        train(config, run, callback=poison)
    summary = json.loads((run / "summary.json").read_text())
    record = summary["diverged"]
    assert summary["status"] == "diverged" and summary["step"] == 4
    assert record == {"step": 4, "epoch": record["epoch"], "cause": "loss", "loss": None, "value": "nan",
                      "tensors": [], "checkpoint": 2}  # fmt: skip
    assert math.isnan(info.value.summary.diverged["loss"])  # type: ignore[index]  # in memory, the value
    assert json.loads((run / "checkpoints" / "last.json").read_text())["step"] == 2
    assert all(torch.isfinite(t).all() for t in _last_weights(run).values() if t.is_floating_point())


def test_weights_that_become_non_finite_stop_the_run_and_are_named(tmp_path, monkeypatch):
    """A non-finite BN buffer leaves the training loss finite (training mode normalises with batch statistics):
    the check of the weights before step 4's checkpoint stops the run, naming the tensor."""
    poison = _poison_at_step_3(monkeypatch, "stem.0.norm.running_var")
    config = dataclasses.replace(TINY, steps=6, checkpoint_every=2, eval_every=6, log_every=6)
    run = tmp_path / "run"
    named = r"weights became non-finite \(stem.0.norm.running_var\)"
    with pytest.raises(TrainingDivergedError, match=f"diverged at step 4 .*{named}"):
        train(config, run, callback=poison)
    record = json.loads((run / "summary.json").read_text())["diverged"]
    assert (record["step"], record["cause"], record["value"]) == (4, "parameters", "non-finite weights")
    assert record["tensors"] == ["stem.0.norm.running_var"]
    assert record["loss"] is not None and math.isfinite(record["loss"]) and record["checkpoint"] == 2


# --------------------------------------------------------------------------------------------- resume
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from depthlab.train import config_from_dict, train
    config = config_from_dict(json.loads(sys.argv[1]))
    delay = float(sys.argv[4])
    def slow(event):
        if event.kind == "step":
            time.sleep(delay)
    print(train(config, sys.argv[2], resume=sys.argv[3] == "1", callback=slow).status, flush=True)
    """
)


def _child(tmp_path: Path, out: Path, delay: float, config: TrainConfig = TINY) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [sys.executable, str(script), json.dumps(config_to_dict(config)), str(out), "0", str(delay)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, step: int, timeout: float = 60) -> None:
    pointer = out / "checkpoints" / "last.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pointer.exists() and json.loads(pointer.read_text())["step"] >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def test_resume_after_sigkill_is_bit_identical(tmp_path, reference):
    out = tmp_path / "killed"
    proc = _child(tmp_path, out, delay=0.03)
    _wait_for_checkpoint(proc, out, 10)
    time.sleep(0.07)  # a couple of steps past the checkpoint: rows exist that the resumed run must redo
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "summary.json").read_text())["status"] == "running"
    stopped_at = json.loads((out / "checkpoints" / "last.json").read_text())["step"]
    assert 10 <= stopped_at < 40
    summary = train(TINY, out, resume=True)
    assert summary.status == "completed" and summary.step == 40
    _assert_same_run(out, reference)


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, reference):
    out = tmp_path / "interrupted"
    proc = _child(tmp_path, out, delay=0.03)
    _wait_for_checkpoint(proc, out, 10)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and stdout.strip() == "interrupted", stderr
    summary = json.loads((out / "summary.json").read_text())
    pointer = json.loads((out / "checkpoints" / "last.json").read_text())
    assert summary["status"] == "interrupted" and pointer["step"] == summary["step"] < 40
    train(TINY, out, resume=True)
    _assert_same_run(out, reference)


def test_resume_refuses_a_different_config(reference):
    with pytest.raises(ConfigError, match="lr: 0.05 → 0.1"):
        train(dataclasses.replace(TINY, lr=0.1), reference, resume=True)


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_train_and_eval(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["train", "resnet20", "--data", DATA, "--steps", "6", "--batch-size", "32", "--log-every", "3",
                 "--set", "eval_every=3", "--device", "cpu", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "step 3/6" in printed and "completed: 6/6 steps" in printed
    assert main(["eval", str(out), "--checkpoint", "last"]) == 0
    assert "test: accuracy" in capsys.readouterr().out
    row = json.loads((out / "eval.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 6 and row["images"] == 100
    assert main(["train", "resnet20", "--data", DATA, "--set", "nope=1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err
    assert main(["train", "resnet20", "--data", DATA, "--lr", "-1"]) == 2
    assert "lr must be a positive number" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- other data paths
def test_trains_on_an_image_folder_through_the_stream_loader(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("circle", "square")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (18, 22, 3), dtype=np.uint8) // (label + 1)
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{i}.png")
    (tmp_path / "imgs" / "square" / "bad.png").write_bytes(b"garbage")
    config = dataclasses.replace(
        TINY, data=f"imagefolder:{tmp_path / 'imgs'}", image_size=16, steps=4, batch_size=8, workers=0,
        log_every=2, eval_every=4, checkpoint_every=4,
    )  # fmt: skip
    summary = train(config, tmp_path / "run")
    assert summary.status == "completed" and summary.data["skipped"] == 1 and summary.data["image_size"] == 16
    assert "val_error" in summary.final and "test_error" not in summary.final  # no test/ folder


# bf16: the logits are rounded to bf16 (8 significant bits, a relative error up to 2^-9) before the fp32 loss.
@pytest.mark.parametrize("precision, rel", [("fp32", 1e-5), ("bf16", 1e-2)])
def test_auxiliary_losses_are_weighted(tmp_path, monkeypatch, precision, rel):
    from depthlab.models.base import GoogLeNetOutputs
    from depthlab.train import loop

    main_bias = torch.linspace(-1, 1, 10)
    aux_bias = torch.zeros(10).index_fill(0, torch.tensor([3]), 2.0)

    class ConstantHeads(torch.nn.Module):
        """Main and aux logits are their heads' biases (weights start at zero), so the first step's loss is
        known exactly from the labels alone."""

        num_classes, in_channels, min_input_size = 10, 3, 1

        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
            self.main, self.aux = torch.nn.Linear(12, 10), torch.nn.Linear(12, 10)
            for head, bias in ((self.main, main_bias), (self.aux, aux_bias)):
                torch.nn.init.zeros_(head.weight)
                head.bias.data.copy_(bias)

        def forward(self, x):  # noqa: ANN001, ANN202
            h = self.body(x)
            return GoogLeNetOutputs(self.main(h), self.aux(h), None) if self.training else self.main(h)

    labels: list[torch.Tensor] = []
    original = loop._Trainer._train_step

    def spy(self, x, y):  # noqa: ANN001, ANN202
        labels.append(y.clone())
        return original(self, x, y)

    monkeypatch.setattr(loop, "build_model", lambda config, bundle: ConstantHeads())
    monkeypatch.setattr(loop._Trainer, "_train_step", spy)
    base = dataclasses.replace(TINY, steps=1, log_every=1, eval_every=1, label_smoothing=0.0)
    base = dataclasses.replace(base, precision=precision)

    def cross_entropy(bias: torch.Tensor, y: torch.Tensor) -> float:  # float64, by the formula
        logits = bias.double()
        return float((torch.logsumexp(logits, 0) - logits[y]).mean())

    for weight in (0.0, 0.3, 1.0):
        labels.clear()
        train(dataclasses.replace(base, aux_weight=weight), tmp_path / str(weight))
        (y,) = labels
        expected = cross_entropy(main_bias, y) + weight * cross_entropy(aux_bias, y)
        assert read_metrics(tmp_path / str(weight))[0]["loss"] == pytest.approx(expected, rel=rel)


# ----------------------------------------------------------------------------- initialisation and warm start
def _fake_finished_run(folder: Path, config: TrainConfig, model: torch.nn.Module) -> Path:
    """A run directory as a completed run leaves it, holding ``model``'s weights as its last checkpoint
    (written with the trainer's own checkpoint and summary formats; no training needed)."""
    from depthlab.io import write_json
    from depthlab.train.checkpoint import model_state, save_checkpoint
    from depthlab.train.rundir import RunSummary

    folder.mkdir(parents=True)
    write_json(folder / "config.json", config_to_dict(config))
    summary = RunSummary(
        run_dir=str(folder), status="completed", step=1, total_steps=1, epoch=1.0, wall_time_s=1.0,
        train_time_s=1.0, images_per_s=1.0, data={"num_classes": 10, "in_channels": 1},
    )  # fmt: skip
    write_json(folder / "summary.json", summary.to_dict())
    save_checkpoint(folder / "checkpoints", "last", 1, model_state(model), {"step": 1})
    return folder


def test_warm_start_of_vgg_d_from_a_copies_what_the_docstring_says(tmp_path):
    """VGG's Table 1: A's eight convs and its head exist by name and shape in D (small head: fc1, fc2), so a
    plain warm start copies their 20 tensors (weight and bias each) and leaves D's other five convs alone;
    the paper's choice (first four convs + FC layers, §3.1) copies 12."""
    from depthlab import create_model
    from depthlab.train.setup import warm_start

    kwargs = {"head": "small", "num_classes": 10, "in_channels": 1}
    torch.manual_seed(1)
    net_a = create_model("vgg11", **kwargs)
    source = _fake_finished_run(tmp_path / "a", TrainConfig(model="vgg11", model_kwargs=kwargs), net_a)
    a_convs = ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1", "conv5_2"]
    stage = {c: int(c[4]) - 1 for c in a_convs}

    def names(convs: list[str]) -> set[str]:
        return {f"stages.{stage[c]}.{c}.conv.{p}" for c in convs for p in ("weight", "bias")} | {
            f"head.fc{i}.{p}" for i in (1, 2) for p in ("weight", "bias")
        }

    torch.manual_seed(2)
    net_d = create_model("vgg16", **kwargs)
    before = {k: v.clone() for k, v in net_d.state_dict().items()}
    config = TrainConfig(model="vgg16", model_kwargs=kwargs, init_from=str(source))
    record = warm_start(net_d, config)
    assert set(record.copied) == names(a_convs) and len(record.copied) == 20
    assert record.total == len(before) and record.step == 1 and record.source == str(source)
    for key, value in net_d.state_dict().items():
        expected = net_a.state_dict()[key] if key in record.copied else before[key]
        assert torch.equal(value, expected), key

    paper = ("stages.0.conv1_1.*", "stages.1.conv2_1.*", "stages.2.conv3_1.*", "stages.2.conv3_2.*", "head.*")
    net_e = create_model("vgg19", **kwargs)
    record = warm_start(net_e, dataclasses.replace(config, model="vgg19", init_from_layers=paper))
    assert set(record.copied) == names(a_convs[:4]) and len(record.copied) == 12

    # same names, another shape: a 7-class D takes everything but A's 10-class output layer
    seven = create_model("vgg16", **{**kwargs, "num_classes": 7})
    record = warm_start(seven, dataclasses.replace(config, model_kwargs={**kwargs, "num_classes": 7}))
    assert set(record.copied) == names(a_convs) - {"head.fc2.weight", "head.fc2.bias"}

    with pytest.raises(ConfigError, match="none of its 20 tensors"):  # nothing of vgg11 fits a ResNet
        warm_start(
            create_model("resnet20", num_classes=10, in_channels=1),
            dataclasses.replace(config, model="resnet20"),
        )


def test_warm_start_refuses_an_unfinished_or_missing_run(tmp_path, reference):
    from depthlab import create_model
    from depthlab.errors import MissingFileError
    from depthlab.train.setup import warm_start

    model = create_model("resnet32", num_classes=10, in_channels=3)
    with pytest.raises(MissingFileError, match="not a run directory"):
        warm_start(model, dataclasses.replace(TINY, init_from=str(tmp_path / "nowhere")))
    running = tmp_path / "running"
    shutil.copytree(reference, running)
    summary = json.loads((running / "summary.json").read_text())
    (running / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    with pytest.raises(ConfigError, match="has not finished \\(interrupted\\)"):
        warm_start(model, dataclasses.replace(TINY, init_from=str(running)))
    with pytest.raises(ConfigError, match="init_from_layers limits a warm start"):
        dataclasses.replace(TINY, init_from_layers=("head.*",))


def test_a_warm_started_run_records_it_and_a_resume_does_not_reapply_it(tmp_path, reference):
    """ResNet-32 warm-started from the finished ResNet-20 reference run: every ResNet-20 tensor has a
    namesake of the same shape in ResNet-32 (its first three blocks per stage, stem and head). Interrupted,
    then resumed after the source run is gone (a resume that re-read it would fail; one that re-applied it
    over the checkpoint would end elsewhere), it ends bit-identical to the uninterrupted run."""
    from depthlab import create_model

    source = tmp_path / "source"
    shutil.copytree(reference, source)
    config = dataclasses.replace(
        TINY, model="resnet32", steps=6, eval_every=2, checkpoint_every=2, init_from=str(source)
    )
    n20 = len(create_model("resnet20", num_classes=10, in_channels=3).state_dict())
    n32 = len(create_model("resnet32", num_classes=10, in_channels=3).state_dict())
    whole = train(config, tmp_path / "whole")
    assert whole.warm_start is not None
    assert (whole.warm_start["tensors_copied"], whole.warm_start["tensors_total"]) == (n20, n32)
    assert (
        json.loads((tmp_path / "whole" / "summary.json").read_text())["warm_start"]["tensors_copied"] == n20
    )

    def ctrl_c(event) -> None:  # noqa: ANN001
        if event.kind == "step" and event.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    part = tmp_path / "part"
    assert train(config, part, callback=ctrl_c).status == "interrupted"
    shutil.rmtree(source)
    resumed = train(config, part, resume=True)
    assert resumed.status == "completed" and resumed.warm_start == whole.warm_start
    _assert_same_run(part, tmp_path / "whole")
    cold = train(dataclasses.replace(config, init_from=None), tmp_path / "cold")
    assert cold.warm_start is None and not torch.equal(
        _last_weights(tmp_path / "cold")["head.fc.weight"], _last_weights(part)["head.fc.weight"]
    )


@pytest.mark.parametrize("init", ["glorot", "kaiming"])
def test_init_reinitialises_convs_and_linears_with_the_papers_variances(init):
    """Glorot & Bengio (2010): Var = 2 / (fan_in + fan_out); He et al. (2015): Var = 2 / fan_in. Measured
    on ResNet-20's 64→64 3×3 convs (36,864 weights each) and its head; biases 0; zero-initialised BN scales
    (zero_init_residual) and the other norm parameters are the builder's."""
    from depthlab.train.setup import build_model

    bundle = load_data(DATA)
    config = dataclasses.replace(TINY, init=init, model_kwargs={"zero_init_residual": True})
    torch.manual_seed(0)
    model = build_model(config, bundle)
    torch.manual_seed(0)
    builder = build_model(dataclasses.replace(config, init="model"), bundle)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            w = module.weight
            fan_in = w[0].numel()
            fan_out = w.shape[0] * (w[0, 0].numel() if w.dim() > 2 else 1)
            expected = 2 / (fan_in + fan_out) if init == "glorot" else 2 / fan_in
            if w.numel() >= 30000:  # enough weights for a 3% estimate of the variance
                assert w.double().var().item() == pytest.approx(expected, rel=0.03), name
            if module.bias is not None:
                assert torch.count_nonzero(module.bias) == 0
        elif isinstance(module, torch.nn.BatchNorm2d):
            reference_bn = builder.get_submodule(name)
            assert torch.equal(module.weight, reference_bn.weight) and torch.equal(
                module.bias, reference_bn.bias
            )
    assert any(
        torch.count_nonzero(m.weight) == 0 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )


# ----------------------------------------------------------------------------------- per-image correctness
def test_final_evaluation_writes_per_image_correctness(reference):
    """correct-<split>.npy: one bool per image in dataset order, equal to an independent evaluation of the
    last checkpoint (the final evaluation's weights) and to the final error rows."""
    from depthlab.data import make_loader
    from depthlab.train import load_correct
    from depthlab.train.setup import prepare_bundle

    rows = read_metrics(reference)
    model = load_run_model(reference, "last").to(memory_format=torch.channels_last)  # as trained
    bundle = prepare_bundle(TINY)
    for split in ("val", "test"):
        correct = load_correct(reference, split)
        assert (
            correct is not None and correct.dtype == bool and correct.shape == (len(getattr(bundle, split)),)
        )
        final = [r for r in rows if r["split"] == split][-1]
        assert final["step"] == 40 and 1 - correct.mean() == pytest.approx(final["error"], abs=1e-6)
        loader = make_loader(bundle, getattr(bundle, split), batch_size=TINY.eval_batch_size)
        with torch.no_grad():
            mine = torch.cat([model(x).argmax(1) == y for x, y in loader.epoch(0)]).numpy()
        assert (mine == correct).all()
    assert load_correct(reference, "train_eval") is None  # not evaluated by this run


def test_damaged_correctness_file_is_a_checkpoint_error(tmp_path, reference):
    import numpy as np

    from depthlab.errors import CheckpointError
    from depthlab.train import load_correct

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "correct-test.npy").write_bytes(b"not numpy")
    with pytest.raises(CheckpointError, match="correct-test.npy: damaged"):
        load_correct(run, "test")
    np.save(run / "correct-test.npy", np.arange(3.0))
    with pytest.raises(CheckpointError, match="not per-image correctness"):
        load_correct(run, "test")
