"""Trainer options the studies use: a fixed training subset, eval-mode training error, intermediate
evaluations on a fixed subset, the test split only at the end, a constant warm-up lr, per-pixel mean
normalisation, and the monitor hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from depthlab.data import make_loader
from depthlab.train import TrainConfig, train
from depthlab.train.config import ConfigError
from depthlab.train.optim import lr_factor
from depthlab.train.setup import prepare_bundle

DATA = "synthetic:channels=1,size=8,train=300,test=50,classes=3"


def _config(**changes) -> TrainConfig:
    # fp32 pinned: the trainer's evaluation is compared with one by hand, which "auto" would make a bf16 one on a
    # CPU with native bf16.
    values = dict(model="plain20", data=DATA, val_size=60, epochs=None, steps=4, batch_size=16, eval_every=2,
                  log_every=1, device="cpu", augment=False, precision="fp32")  # fmt: skip
    values.update(changes)
    return TrainConfig(**values)


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_subset_is_fixed_and_independent_of_the_seed() -> None:
    a = prepare_bundle(_config(train_subset=50, seed=0))
    b = prepare_bundle(_config(train_subset=50, seed=7))
    full = prepare_bundle(_config())
    assert len(a.train) == 50 and torch.equal(a.train.images, b.train.images)
    # The subset is drawn from the training split (never the validation images) and is not just its head.
    rows = {bytes(x.numpy()) for x in full.train.images}
    assert all(bytes(x.numpy()) in rows for x in a.train.images)
    assert not torch.equal(a.train.images, full.train.images[:50])
    with pytest.raises(ConfigError, match="train_subset=1000 is larger than the training split \\(240"):
        prepare_bundle(_config(train_subset=1000))


def test_eval_train_subset_and_test_at_end(tmp_path: Path) -> None:
    train(_config(train_subset=40, eval_train=True, eval_subset=20, test_at_end=True), tmp_path / "r")
    rows = _rows(tmp_path / "r")
    by = {(r["split"], r["step"]): r for r in rows if r["split"] != "train"}
    # Intermediate evaluations on the first 20 images of each split; the last on every image.
    assert by[("train_eval", 2)]["images"] == 20 and by[("val", 2)]["images"] == 20
    assert by[("train_eval", 4)]["images"] == 40 and by[("val", 4)]["images"] == 60
    assert [s for (split, s) in by if split == "test"] == [4] and by[("test", 4)]["images"] == 50


def test_eval_train_is_the_eval_mode_error_over_the_training_subset(tmp_path: Path) -> None:
    """A second method: evaluate the trained model on the training subset by hand."""
    from depthlab.train.rundir import load_run_model

    config = _config(train_subset=40, eval_train=True, steps=2, eval_every=2)
    train(config, tmp_path / "r")
    model = load_run_model(tmp_path / "r").eval()
    bundle = prepare_bundle(config)
    x, y = next(iter(make_loader(bundle, bundle.train, batch_size=40).epoch()))
    with torch.no_grad():
        error = (model(x).argmax(1) != y).float().mean().item()
    row = [r for r in _rows(tmp_path / "r") if r["split"] == "train_eval"][-1]
    assert row["error"] == pytest.approx(error, abs=1e-6)


def test_constant_warmup_lr_then_the_schedule() -> None:
    config = _config(schedule="step", lr=0.1, warmup=3, warmup_lr=0.01, steps=100)
    lrs = [config.lr * lr_factor(config, s, 100, 10) for s in (0, 2, 3, 50, 75)]
    assert lrs == pytest.approx([0.01, 0.01, 0.1, 0.01, 0.001])
    with pytest.raises(ConfigError, match="warmup_lr applies to the step and cosine schedules"):
        _config(warmup_lr=0.01)


def test_pixel_mean_normalisation_pads_with_the_mean() -> None:
    from depthlab.data import Augment

    bundle = prepare_bundle(_config(normalize="pixel"))
    assert bundle.pixel_mean is not None and tuple(bundle.pixel_mean.shape) == (1, 8, 8)
    loader = make_loader(bundle, bundle.train, batch_size=len(bundle.train))
    (x, _), = list(loader.epoch())  # fmt: skip
    # Every pixel position has mean 0 over the training images (per-pixel, not per-channel, mean).
    assert x.mean(0).abs().max() < 1e-5
    # With a 4-pixel pad, a crop shifted fully into the border shows exactly 0 there: the mean, not black.
    aug = make_loader(bundle, bundle.train, batch_size=16, train=True, augment=Augment(4, flip=False))
    table = aug._table
    assert table.dtype == torch.float32 and torch.all(table[:, :4] == 0) and torch.all(table[:, :, -4:] == 0)
    channel = prepare_bundle(_config())
    (xc, _), = list(make_loader(channel, channel.train, batch_size=len(channel.train)).epoch())  # fmt: skip
    assert xc.mean(0).abs().max() > 1e-3  # the per-channel mean leaves per-pixel means non-zero


def test_monitor_sees_every_evaluation_step_and_changes_nothing(tmp_path: Path) -> None:
    from depthlab.analysis.gradients import diagnose
    from depthlab.train.rundir import load_run_model

    seen: list[int] = []
    bundle = prepare_bundle(_config())
    x, y = next(iter(make_loader(bundle, bundle.val, batch_size=8).epoch()))

    def monitor(model: torch.nn.Module, step: int) -> None:
        seen.append(step)
        with torch.random.fork_rng():
            diagnose(model, x, y)

    train(_config(steps=5), tmp_path / "a", monitor=monitor)
    train(_config(steps=5), tmp_path / "b")
    assert seen == [2, 4, 5]
    a, b = load_run_model(tmp_path / "a").state_dict(), load_run_model(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
