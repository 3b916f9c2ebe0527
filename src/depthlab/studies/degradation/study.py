"""The degradation study: plain and residual networks of several depths trained with one recipe.

Claim under test (He et al. 2015, arXiv:1512.03385, Fig. 6 and 7): deeper *plain* networks end with higher
*training* error than shallower ones, while residual networks do not; and residual layers respond more
weakly than plain ones. Alongside, gradient diagnostics at initialisation and *during* training decide
between "vanishing gradients" (lecture notes) and the paper's "the gradients are healthy"; shattered
gradients (Balduzzi et al. 2017) are measured at initialisation.

The package: :mod:`.presets` (the recipes), :mod:`.grid` (the runs and the BN-free twins),
:mod:`.evidence` (typed readings of the runs, used by findings and figures; the gradient thresholds),
:mod:`.findings` (comparisons, then sentences), :mod:`.answers` (the questions), :mod:`.figures`, and
this module (the probe, the shattered-gradient preparation, the report sections, the declaration).

Measurements (definitions; the sentences say which applies):

* **training error** — the Fig. 6 measure: the error over the whole training (sub)set the net is fitting,
  in eval mode, at the last step (split ``train_eval``). If a run did not record it, the running error of
  the last logged batches (split ``train``), and the sentence says so.
* **test error** — the final evaluation of the full test split.
* **gradients** — ‖∂L/∂y‖/√numel (per element, RMS) at each block's output, because the blocks differ in
  size; the first/last ratio names the outcome (:func:`~.evidence.gradient_outcome`) and the slope of
  log10 RMS gradient per block toward the input is reported beside it, with its CI over seeds. Measured
  with BN in training mode on the study's diagnostics batch: at initialisation, at every evaluation step
  *before* the last (the last-step probe is the end, not "during training"), and at the end. Probes and
  analyses run in fp32 whatever the training precision.
* **without batch norm** — the same architecture built with ``norm=None`` from the same seed, at
  initialisation only (:data:`~.grid.NO_BN_TWIN`): residual branches are scaled by 1/√(blocks), live at
  init; the plain twin only drops BN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depthlab import create_model
from depthlab.analysis.gradients import diagnose
from depthlab.analysis.shattered import shattered_gradients
from depthlab.i18n import N_
from depthlab.io import read_json, write_json
from depthlab.studies.analyses import run_for_study
from depthlab.studies.declare import ProbeContext, Study
from depthlab.studies.degradation.answers import answers
from depthlab.studies.degradation.figures import sections
from depthlab.studies.degradation.findings import compute_findings
from depthlab.studies.degradation.grid import NO_BN_TWIN, grid, label, no_bn_kwargs, parse_model
from depthlab.studies.degradation.presets import PRESETS, DegradationPreset
from depthlab.studies.registry import register_study
from depthlab.studies.results import StudyResult
from depthlab.studies.worker import initial_model

__all__ = [
    "STUDY",
    "PRESETS",
    "DegradationPreset",
    "compute_findings",
    "answers",
    "parse_model",
    "label",
    "grid",
    "no_bn_kwargs",
    "probe",
    "run_shattered",
]


# ------------------------------------------------------------------------------------------------ probe
def probe(ctx: ProbeContext) -> dict[str, Any]:
    """Diagnostics of one moment: BN in training mode always; at init also the BN-free twin (same seed);
    at the end also eval mode (Fig. 7 is measured that way)."""

    out = {"train": diagnose(ctx.model, ctx.images, ctx.labels, mode="train").to_dict()}
    if ctx.moment == "init":
        residual = bool(ctx.spec.factors["residual"])
        config = ctx.spec.config
        twin_config = dataclasses.replace(
            config, model_kwargs={**config.model_kwargs, **no_bn_kwargs(residual)}
        )
        twin = initial_model(twin_config, ctx.bundle).to(ctx.images.device)
        out["no_bn"] = diagnose(twin, ctx.images, ctx.labels, mode="train").to_dict()
    if ctx.moment == "end":
        out["eval"] = diagnose(ctx.model, ctx.images, ctx.labels, mode="eval").to_dict()
    return out


# ---------------------------------------------------------------------------------- shattered gradients
def run_shattered(
    preset: DegradationPreset, root: Path, bundle: Any, images: Any, labels: Any, seed_list: Sequence[int]
) -> None:
    """Shattered gradients at init for plain/ResNet × preset depths × {BN, BN-free twin} × seeds →
    ``root/analysis/shattered.json`` (skipped when present with the same settings)."""
    import torch

    if preset.shatter_points <= 0:
        return
    path = root / "analysis" / "shattered.json"
    settings = {
        "points": preset.shatter_points,
        "depths": list(preset.depths),
        "seeds": list(seed_list),  # the key shattered.json has always had
        "no_bn": NO_BN_TWIN,
        **preset.model_kwargs,  # absent at width 1, so directories written before width existed still match
    }
    if path.is_file() and read_json(path).get("settings") == settings:
        return
    results = []
    for depth in preset.depths:
        for residual in (False, True):
            for bn in (True, False):
                kwargs = {**preset.model_kwargs, **({} if bn else no_bn_kwargs(residual))}
                for seed in seed_list:
                    torch.manual_seed(seed)
                    model = create_model(
                        f"{'resnet' if residual else 'plain'}{depth}",
                        num_classes=bundle.num_classes,
                        in_channels=bundle.in_channels,
                        **kwargs,
                    ).to(images.device)
                    r = shattered_gradients(
                        model, images[0], images[1], int(labels[0]), reference=images if bn else None,
                        points=preset.shatter_points, label=f"{label(depth, residual)}, {'BN' if bn else 'no BN'}",
                        seed=seed,
                    )  # fmt: skip
                    results.append({**r.to_dict(), "depth": depth, "residual": residual, "bn": bn})

    write_json(path, {"settings": settings, "results": results})


# ------------------------------------------------------------------------------------------------- report
def _analysis_runner(name: str) -> Any:
    def run(result: StudyResult, device: Any) -> None:
        run_for_study(name, result, device)

    return run


STUDY = register_study(
    Study(
        name="degradation",
        title=N_("Degradation study"),
        claim=N_(
            "Deeper plain networks end with higher training error than shallower ones while ResNets do not "
            "(He et al. 2015, Fig. 6); is it vanishing gradients, as lecture notes say, or not, as the paper "
            "argues? Are residual gradients less shattered (Balduzzi et al. 2017)?"
        ),
        presets=PRESETS,
        grid=grid,
        findings=compute_findings,
        sections=sections,
        answers=answers,
        probe=probe,
        prepare=run_shattered,
        analyses={name: _analysis_runner(name) for name in ("lesion", "landscape", "attribute")},
    )
)
