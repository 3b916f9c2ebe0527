"""The degradation study's presets: one base recipe, and each preset as the changes it makes to it.

Iterations are optimizer steps of ``batch_size`` images. Every preset runs at least 3 seeds by default (issue
14: fewer leave a Welch interval too wide to resolve the claims), quick runs 6 (its note says why);
``--seeds`` and ``--seed-offset`` change that.
"""

from __future__ import annotations

from dataclasses import dataclass

from depthlab.errors import DepthlabError
from depthlab.layers import check_width, scale_channels
from depthlab.models.resnet import CIFAR_WIDTHS
from depthlab.studies.declare import GPU_SCALE, Recipe, StudyError

__all__ = ["FAMILIES", "DegradationPreset", "BASE", "PRESETS"]

FAMILIES = ("plain", "resnet")  # plain twin first: plainN and resnetN share every layer but the shortcuts


@dataclass(frozen=True)
class DegradationPreset(Recipe):
    """A :class:`Recipe` plus the depths (CIFAR-style 6n+2: plainD and resnetD are trained for each).

    ``warmup_lr``/``warmup_lr_steps``/``warmup_lr_depth``: nets at least ``warmup_lr_depth`` deep train
    at the constant ``warmup_lr`` for the first ``warmup_lr_steps`` iterations (ResNet-110's recipe).
    ``shatter_points``: points on the line of the shattered-gradients measurement (0: skip it).
    ``width``: the channel multiplier of every net (1: the paper's 16/32/64; 0.5: 8/16/32, a quarter of the
    MACs; see :mod:`depthlab.models.resnet`). Every sentence names the nets by depth; the preset's
    description and note say the width.
    """

    depths: tuple[int, ...] = (20, 56)
    width: float = 1.0
    warmup_lr: float | None = None
    warmup_lr_steps: int = 400
    warmup_lr_depth: int = 110
    shatter_points: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [d for d in self.depths if not isinstance(d, int) or d < 8 or (d - 2) % 6]
        if not self.depths or bad:
            raise StudyError(
                f"depths must be 6n+2 CIFAR depths (20, 32, 44, 56, 110, …), got {list(self.depths)}"
            )
        try:
            check_width(self.width)  # the models' own rule, reported as a preset error
        except DepthlabError:
            raise StudyError(
                f"width must be a positive number (1: the paper's widths), got {self.width!r}"
            ) from None

    @property
    def model_kwargs(self) -> dict[str, float]:
        """The keywords every net of the study is built with: the width, where it is not the paper's."""
        return {} if self.width == 1 else {"width": float(self.width)}

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(f"{family}{depth}" for depth in self.depths for family in FAMILIES)

    def describe(self) -> str:
        width = "" if self.width == 1 else f" at width {self.width:g}: stages {self.stage_widths}"
        return f"depths {'/'.join(map(str, self.depths))} (plain and ResNet{width}); " + super().describe()

    @property
    def stage_widths(self) -> str:
        """The three stages' channel counts at this width, e.g. ``8/16/32`` (the paper's: ``16/32/64``)."""
        return "/".join(str(scale_channels(c, self.width)) for c in CIFAR_WIDTHS)


# The quick recipe: every run fits one fixed 2,000-image subset of Fashion-MNIST's training split for 240
# iterations of batch 128 (15 passes), with a one-cycle schedule whose learning rate ends near 0.
BASE = DegradationPreset().replace(
    name="base",
    data="fashion-mnist",
    depths=(20, 56),
    steps=240,
    batch_size=128,
    lr=0.1,
    schedule="onecycle",
    weight_decay=1e-4,
    augment=False,
    val_size=1000,
    train_subset=2000,
    eval_every=40,
    eval_subset=500,
    eval_train=True,
    test_at_end=True,
    log_every=8,
    seeds=3,
    diag_batch=128,
)

# Each preset's history (trials rejected, budgets measured) is in results/degradation-quick/NOTES.md.
PRESETS: dict[str, DegradationPreset] = {
    p.name: p
    for p in (
        BASE.replace(
            name="quick",
            width=0.5,
            seeds=6,
            note="sized for a 2-core CPU: the paper's nets at width 0.5 fit a fixed 2,000-image subset for 240 "
            "iterations, one single-thread worker per core; six seeds, because plain-56's seeds spread widely at "
            "this width",
        ),
        BASE.replace(
            name="standard",
            steps=300,
            train_subset=5000,
            eval_every=50,
            log_every=10,
            note="the test-error question at a larger CPU budget than quick: depths 20 and 56 at the paper's "
            "widths on a fixed 5,000-image subset for 300 iterations",
        ),
        BASE.replace(
            name="gpu",
            **GPU_SCALE,
            depths=(20, 32, 44, 56),
            width=1.0,
            steps=600,
            schedule="step",
            normalize="pixel",
            eval_every=60,
            log_every=10,
            note="for one GPU: the paper's four depths at its widths and recipe on the whole Fashion-MNIST "
            "training split, 6 seeds, 600 iterations — sized so that it and its replication fit the few minutes "
            "of GPU time a session had",
        ),
        BASE.replace(
            name="paper",
            data="cifar10",
            depths=(20, 32, 44, 56, 110),
            steps=64000,
            schedule="step",
            milestones=(32000.0, 48000.0),
            augment=True,
            val_size=5000,
            train_subset=None,
            eval_every=2000,
            eval_subset=5000,
            test_at_end=False,
            normalize="pixel",
            log_every=100,
            diag_batch=256,
            warmup_lr=0.01,
            note="He et al. 2015 §4.2 on CIFAR-10 for a GPU (45k/5k split, 64k iterations, lr 0.1 ÷10 at 32k and "
            "48k, ResNet-110 warmed up at 0.01); deviations: three seeds, the eval-mode training error as the "
            "headline, weight decay on BN parameters too, a fixed 400-iteration warm-up",
        ),
    )
}
