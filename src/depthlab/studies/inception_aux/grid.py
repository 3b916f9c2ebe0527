"""The inception-aux study's grid: for every seed, each aux weight with the heads on, then (optionally) the
heads removed. The first seed of every condition finishes first, so a partial study already compares them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from depthlab.studies.declare import RunSpec
from depthlab.studies.inception_aux.presets import InceptionAuxPreset

__all__ = ["label", "run_name", "model_kwargs", "grid"]


def label(weight: float | None) -> str:
    """The condition's name: ``aux 0.3``, ``aux 0`` or (``None``) ``no aux heads``."""
    return "no aux heads" if weight is None else f"aux {weight:g}"


def run_name(weight: float | None, seed: int) -> str:
    return f"{'noaux' if weight is None else f'aux{weight:g}'}-s{seed}"


def model_kwargs(preset: InceptionAuxPreset, heads: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"variant": preset.variant, "norm": preset.norm, "aux_logits": heads,
                              "aux_pool": preset.aux_pool}  # fmt: skip
    if preset.width != 1:  # width 1 is the default: older run directories stay comparable
        kwargs["width"] = preset.width
    return kwargs


def grid(
    preset: InceptionAuxPreset, seed_list: Sequence[int], device: str, data_dir: str | None
) -> list[RunSpec]:
    """seed → aux weights (heads on) → heads removed. Weight w trains L_main + w·(L_aux1 + L_aux2); with the
    heads removed ``aux_weight`` is 0 (there is no aux loss)."""
    specs = []
    weights: list[float | None] = [*preset.aux_weights, *([None] if preset.no_heads else [])]
    for seed in seed_list:
        for w in weights:
            config = preset.train_config(
                "googlenet", seed, model_kwargs=model_kwargs(preset, w is not None), device=device,
                data_dir=data_dir, aux_weight=0.0 if w is None else w,
            )  # fmt: skip
            factors = {"aux_weight": 0.0 if w is None else w, "aux_heads": w is not None}
            specs.append(RunSpec(run_name(w, seed), label(w), factors, seed, config))
    return specs
