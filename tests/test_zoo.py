"""Every registered model: right output shape, finite values, every parameter gets a gradient."""

from __future__ import annotations

import pytest
import torch

import depthlab
from depthlab.models import aux_logits, main_logits

# The giants get their own, slow, test; the fast loop covers each of their blocks through smaller twins.
GIANTS = {"resnet1202", "plain1202", "preact_resnet1001"}


def _side(model: torch.nn.Module, name: str) -> int:
    info = depthlab.model_info(name)
    return max(model.min_input_size, 32 if info.default_input[1] <= 32 else min(64, info.default_input[1]))


def _fast_kwargs(name: str) -> dict[str, object]:
    # VGG's 120M-weight ImageNet head dominates the loop; its small head covers the same conv layers here,
    # and the ImageNet head is exercised by the count and torchvision-parity tests.
    return {"head": "small"} if name.startswith("vgg") else {}


def _check(name: str) -> None:
    model = depthlab.create_model(name, num_classes=7, in_channels=1, **_fast_kwargs(name))
    side = _side(model, name)
    x = torch.randn(2, 1, side, side)
    model.train()
    out = model(x)
    logits = main_logits(out)
    assert logits.shape == (2, 7), name
    assert torch.isfinite(logits).all(), name
    loss = logits.square().mean() + sum(a.square().mean() for a in aux_logits(out))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", [n for n in depthlab.list_models() if n not in GIANTS])
def test_forward_backward(name: str) -> None:
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GIANTS - {"plain1202"}))
def test_forward_backward_giants(name: str) -> None:
    _check(name)


@pytest.mark.slow
def test_plain1202_gradient_explodes_at_init() -> None:
    """A 1202-layer plain net with BN is exactly what the ResNet paper warns about: at initialisation its
    gradient grows toward the input until it overflows fp32 — every parameter gets a gradient, but the early
    ones are not finite. Its residual twin (in the test above) stays finite."""
    model = depthlab.create_model("plain1202", num_classes=7, in_channels=1)
    main_logits(model(torch.randn(2, 1, 32, 32))).square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert torch.isfinite(grads["head.fc.weight"]).all()
    assert not torch.isfinite(grads["stem.0.conv.weight"]).all()


@pytest.mark.parametrize("name", [n for n in depthlab.list_models() if n not in GIANTS])
def test_eval_mode_returns_plain_logits(name: str) -> None:
    model = depthlab.create_model(name, num_classes=5, **_fast_kwargs(name)).eval()
    side = _side(model, name)
    with torch.no_grad():
        out = model(torch.randn(1, 3, side, side))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 5)


@pytest.mark.parametrize("name", ["resnet20", "plain56", "preact_resnet20", "resnet18", "plain18"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 224, 224)])
def test_runs_on_standard_inputs(name: str, shape: tuple[int, int, int]) -> None:
    model = depthlab.create_model(name, num_classes=10, in_channels=shape[0]).eval()
    with torch.no_grad():
        assert model(torch.randn(1, *shape)).shape == (1, 10)


def test_wrong_channels_is_a_clear_error() -> None:
    model = depthlab.create_model("resnet20", num_classes=10, in_channels=1)
    with pytest.raises(ValueError, match="in_channels=3"):
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "plain18"])
def test_norm_none_removes_every_batchnorm(name: str) -> None:
    model = depthlab.create_model(name, num_classes=10, norm=None)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.bias is not None for c in convs)  # nothing else would shift their outputs
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()
