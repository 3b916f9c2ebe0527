"""The vgg-depth study's grid: one run per configuration, normalisation and seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from depthlab.studies.declare import RunSpec
from depthlab.studies.vgg_depth.presets import DEPTH, MODELS, WARM_LAYERS, VGGDepthPreset

__all__ = ["label", "run_name", "grid"]


def label(config: str, bn: bool) -> str:
    """The condition's name: ``E`` (the paper's net, no BN) or ``E+BN``."""
    return f"{config}+BN" if bn else config


def run_name(config: str, bn: bool, seed: int) -> str:
    return f"{MODELS[config]}{'_bn' if bn else ''}-s{seed}"


def _warm_start(preset: VGGDepthPreset, config: str, bn: bool, seed: int) -> dict[str, Any]:
    """``init_from`` for a configuration deeper than A under ``warm_start``: A's run of the same seed and
    normalisation, as a path inside the study directory (the engine resolves it there)."""
    if not preset.warm_start or DEPTH[config] <= DEPTH["A"]:
        return {}
    return {"init_from": f"runs/{run_name('A', bn, seed)}", "init_from_layers": WARM_LAYERS}


def grid(
    preset: VGGDepthPreset, seed_list: Sequence[int], device: str, data_dir: str | None
) -> list[RunSpec]:
    """seed → without BN, with BN → configuration, A first: the first seed of every condition finishes
    first, and a warm-started net's source (A of its seed and normalisation) is trained before it."""
    specs = []
    for seed in seed_list:
        for bn, configs in ((False, preset.plain), (True, preset.bn)):
            for config in sorted(configs, key=lambda c: c != "A"):
                kwargs = {"head": preset.head, "norm": "batch" if bn else None, "width": preset.width}
                train_config = preset.train_config(
                    MODELS[config],
                    seed,
                    model_kwargs=kwargs,
                    device=device,
                    data_dir=data_dir,
                    **_warm_start(preset, config, bn, seed),
                )
                factors = {"config": config, "bn": bn, "depth": DEPTH[config]}
                specs.append(
                    RunSpec(run_name(config, bn, seed), label(config, bn), factors, seed, train_config)
                )
    return specs
