"""The trainer's divergence check (``_all_finite``) decides with one reduction; it must agree with the plain
definition — every floating-point weight and buffer finite — wherever a non-finite value sits, and must not
call a huge but finite value non-finite."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlab import create_model
from depthlab.train.loop import _all_finite

MODEL = create_model("resnet20", num_classes=10, in_channels=1, width=0.25)
FLOATS = [(k, t) for k, t in MODEL.state_dict().items() if t.is_floating_point()]


def _plain(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(0, len(FLOATS) - 1),
    where=st.integers(0, 10**6),
    value=st.sampled_from([float("nan"), float("inf"), -float("inf"), 3.0e38, -3.0e38, 0.0, 1e-45]),
)
def test_agrees_with_the_per_tensor_definition(which: int, where: int, value: float) -> None:
    _, tensor = FLOATS[which]
    flat = tensor.view(-1)
    index = where % flat.numel()
    old = flat[index].item()
    flat[index] = value
    try:
        assert _all_finite(MODEL) == _plain(MODEL)
    finally:
        flat[index] = old
    assert _all_finite(MODEL)
