"""The vgg-depth study's presets: one :data:`BASE` (the paper's optimisation recipe) and each preset as the
changes it makes to it.

Iterations are optimizer steps of ``batch_size`` images. The paper preset runs 3 seeds by default (issue 14),
the quick and gpu presets 6 (issue 23: on a second machine the quick preset's 3-seed answers changed on fresh
seeds); ``--seeds`` and ``--seed-offset`` change that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from depthlab.studies.declare import GPU_SCALE, Recipe, StudyError

__all__ = [
    "TABLE3",
    "TABLE3_SOURCE",
    "MODELS",
    "DEPTH",
    "DEPTH_LADDER",
    "WARM_LAYERS",
    "INITS",
    "VGGDepthPreset",
    "BASE",
    "QUICK",
    "PAPER",
    "PRESETS",
]

# Simonyan & Zisserman 2015 (arXiv:1409.1556), Table 3: ILSVRC-2012 validation top-1 error (%), single-scale
# evaluation, training scale S = 256 (C and D also list other scales; these are the S = 256 rows).
TABLE3: dict[str, float] = {"A": 29.6, "A-LRN": 29.7, "B": 28.7, "C": 28.1, "D": 27.0, "E": 27.3}
TABLE3_SOURCE = "Simonyan & Zisserman 2015 (arXiv:1409.1556), Table 3, top-1 error, single scale, S = 256"
MODELS: dict[str, str] = {
    "A": "vgg11",
    "A-LRN": "vgg11_lrn",
    "B": "vgg13",
    "C": "vgg16c",
    "D": "vgg16",
    "E": "vgg19",
}
DEPTH: dict[str, int] = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}  # weight layers
DEPTH_LADDER = ("A", "B", "D", "E")  # the 3×3-only, LRN-free configurations, by depth
# The paper's warm start (§3.1): "we initialised the first four convolutional layers and the last three
# fully-connected layers with the layers of net A (the intermediate layers were initialised randomly)". A's
# first four convs are conv1_1, conv2_1, conv3_1 and conv3_2; the deeper nets have layers of those names and
# shapes, and the head is the same in every configuration. Tensors are copied where name and shape match
# (TrainConfig.init_from_layers), BN's parameters and statistics included.
WARM_LAYERS = (
    "stages.0.conv1_1.*",
    "stages.1.conv2_1.*",
    "stages.2.conv3_1.*",
    "stages.2.conv3_2.*",
    "head.*",
)
INITS = ("model", "glorot", "kaiming")  # TrainConfig.init


@dataclass(frozen=True)
class VGGDepthPreset(Recipe):
    """A :class:`Recipe` plus the study's factors and the bounds its sentences state.

    ``plain``/``bn``: the configurations trained without and with batch norm after every conv. ``head``:
    ``small`` (global pooling and a 2-layer classifier, for 28/32-pixel inputs) or ``imagenet``. ``width``:
    the channel multiplier (1: the paper's widths; see :mod:`depthlab.models.vgg`). The shared training
    config's ``init`` is ``model`` (the zoo's He fan-out convs and N(0, 0.01) linear layers), ``glorot`` (the
    paper's footnote) or ``kaiming``.
    ``warm_start``: every configuration deeper than A starts from the ``last`` weights of A's run with the
    same seed and normalisation, layers :data:`WARM_LAYERS` (the paper's §3.1); the others start from
    ``init``. ``chance_margin``: a run whose final eval-mode training error is at least chance
    (1 − 1/classes) minus this did not train (a judging field, like the recipe's ``plateau_bound`` and
    ``margin``, which the answers and their equivalence tests use).
    """

    plain: tuple[str, ...] = ("A", "A-LRN", "B", "C", "D", "E")
    bn: tuple[str, ...] = ("A", "B", "C", "D", "E")
    head: str = "small"
    width: float = 1.0
    warm_start: bool = False
    chance_margin: float = 0.05

    JUDGING: ClassVar[tuple[str, ...]] = (*Recipe.JUDGING, "chance_margin")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("plain", "bn"):
            bad = [c for c in getattr(self, key) if c not in MODELS]
            if bad:
                raise StudyError(
                    f"unknown VGG configuration {bad[0]!r} in {key}; choose from: {', '.join(MODELS)}"
                )
        if not self.plain and not self.bn:
            raise StudyError("plain and bn are both empty: nothing to train")
        if self.head not in ("small", "imagenet"):
            raise StudyError(f"unknown head {self.head!r}; choose from: small, imagenet")
        if not math.isfinite(self.width) or self.width <= 0:
            raise StudyError(f"width must be a positive number, got {self.width!r}")
        if self.warm_start and any("A" not in group for group in (self.plain, self.bn) if group):
            raise StudyError("warm_start starts the deeper nets from A: include A in plain and in bn (or set "
                             "warm_start=false)")  # fmt: skip
        if not math.isfinite(self.chance_margin) or not 0 < self.chance_margin < 1:
            raise StudyError(f"chance_margin must be a fraction between 0 and 1, got {self.chance_margin!r}")

    def describe(self) -> str:
        width = f", width {self.width:g}" if self.width != 1 else ""
        start = f"{self.init} initialisation" + (
            "; the deeper nets warm-started from A (§3.1)" if self.warm_start else ""
        )
        return (
            f"VGG {'/'.join(self.plain) or '—'} without BN and {'/'.join(self.bn) or '—'} with BN ({self.head} "
            f"head{width}), {self.optimizer}, {start}; " + super().describe()
        )


# The paper's optimisation recipe (§3.1): SGD with momentum 0.9, weight decay 5e-4, dropout 0.5 in the first
# FC layers (the zoo's default), the learning rate divided by 10 twice (the paper: three times, each when
# the validation accuracy stopped improving; here at 50% and 75% of the run). Eval-mode training error at every
# evaluation (the final one says whether a net trained); the test error at the end only.
BASE = VGGDepthPreset().replace(
    name="base",
    data="fashion-mnist",
    optimizer="sgd",
    momentum=0.9,
    nesterov=False,
    weight_decay=5e-4,
    schedule="step",  # no milestones: TrainConfig's default, ÷10 at 50% and 75% of the run
    eval_train=True,
    eval_subset=None,
    test_at_end=True,
    seeds=3,
)

# Each preset's history is in results/vgg-depth-quick/NOTES.md.
QUICK = BASE.replace(
    name="quick",
    plain=("A", "A-LRN", "C", "D", "E"),
    bn=("A", "D", "E"),
    width=0.125,
    init="kaiming",
    train_subset=1000,
    val_size=0,
    test_subset=None,
    steps=750,
    batch_size=64,
    lr=0.02,
    eval_every=75,
    log_every=25,
    seeds=6,
    note="sized for a 2-core CPU: VGG at width 0.125 with the small head fits a fixed 1,000-image subset of "
    "Fashion-MNIST for 750 iterations, six seeds; batch norm for A, D and E only, since LRN and 1×1 are the "
    "paper's questions about its BN-free nets",
)

PAPER = BASE.replace(
    name="paper",
    data="cifar10",
    steps=40000,
    batch_size=128,
    lr=0.02,
    augment=True,
    val_size=5000,
    eval_every=2000,
    log_every=100,
    note="for a GPU: every configuration with and without BN on CIFAR-10 with the paper's SGD recipe; "
    "deviations: 32-pixel inputs and the small head, the zoo's He initialisation (--set warm_start=true or "
    "init=glorot for the paper's two ways), lr 0.02 at batch 128",
)

GPU = BASE.replace(
    name="gpu",
    **GPU_SCALE,
    width=0.5,
    init="kaiming",
    steps=4000,
    batch_size=128,
    lr=0.02,
    eval_every=400,
    log_every=20,
    note="for one GPU: every configuration of Table 1 without BN and A–E with it at half the paper's widths on "
    "the whole Fashion-MNIST training split, 4,000 iterations, six seeds; `--dry-run --device cuda` measured "
    "0.7–1.8 ms per iteration on one H200, about 5.4 minutes of training steps",
)

PRESETS: dict[str, VGGDepthPreset] = {p.name: p for p in (QUICK, GPU, PAPER)}
