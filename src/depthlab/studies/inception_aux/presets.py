"""The inception-aux study's presets: one :data:`BASE` and each preset as the changes it makes to it.

Inputs. The paper's aux head average-pools the 14×14 map of 4a/4d with a 5×5/3 window to 4×4; that is exact
at 224×224 inputs (the ``paper`` preset). The CPU ``quick`` preset resizes Fashion-MNIST to 32×32 (the
paper variant's smallest input is 31): the 4a/4d map is 2×2, too small for the 5×5 window, so the head pools
adaptively to 4×4 (each of the 2×2 values repeated) — the documented adaptation of
:class:`depthlab.models.googlenet.AuxPool`; ``--set aux_pool=fixed`` insists on the paper's pool alone (it
refuses inputs other than 223–270 px), ``adaptive`` is torchvision's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from depthlab.studies.declare import GPU_SCALE, Recipe, StudyError

__all__ = ["PAPER_WEIGHT", "InceptionAuxPreset", "BASE", "QUICK", "PAPER", "PRESETS"]

PAPER_WEIGHT = 0.3  # GoogLeNet §5: the aux losses are added to the total loss with weight 0.3


@dataclass(frozen=True)
class InceptionAuxPreset(Recipe):
    """A :class:`Recipe` plus the study's factors and the bounds its sentences state.

    ``aux_weights``: the weights of the aux losses trained with the heads on (0.3 is the paper's);
    ``no_heads``: also train with the heads removed. ``variant``: the zoo GoogLeNet variant; ``norm``: its
    normalisation (``None``: the 2015 paper's, none; ``"batch"``: BN after every conv). ``aux_pool``: the aux
    head's pooling (``paper``, ``fixed`` or ``adaptive``: see :mod:`depthlab.models.googlenet`). ``width``:
    the channel multiplier (1: the paper's widths). ``early_step``: early training is the mean running
    training error over iterations 1 … ``early_step`` (a multiple of ``log_every``). ``share_bound``: the aux
    share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ above which the aux losses are said to change a layer's gradient (and
    below which they are said not to). Both judge the runs (:attr:`JUDGING`), with the recipe's
    ``plateau_bound`` and ``margin`` (the bound of "the same" error and of the early-training question).
    """

    aux_weights: tuple[float, ...] = (PAPER_WEIGHT, 0.0)
    no_heads: bool = True
    variant: str = "paper"
    norm: str | None = None
    aux_pool: str = "paper"
    width: float = 1.0
    early_step: int = 100
    share_bound: float = 0.1

    JUDGING: ClassVar[tuple[str, ...]] = (*Recipe.JUDGING, "share_bound", "early_step")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.aux_weights or any(not math.isfinite(w) or w < 0 for w in self.aux_weights):
            raise StudyError(f"aux_weights must be non-negative numbers, got {list(self.aux_weights)}")
        if len(set(self.aux_weights)) != len(self.aux_weights):
            raise StudyError(f"aux_weights must not repeat, got {list(self.aux_weights)}")
        if self.early_step < 1 or self.early_step >= self.steps or self.early_step % self.log_every:
            raise StudyError(
                f"early_step must be a multiple of log_every ({self.log_every}) below steps ({self.steps}), "
                f"got {self.early_step}"
            )
        if not math.isfinite(self.share_bound) or self.share_bound <= 0:
            raise StudyError(f"share_bound must be a positive number, got {self.share_bound!r}")

    def describe(self) -> str:
        weights = ", ".join(f"{w:g}" for w in self.aux_weights)
        heads = " and without aux heads" if self.no_heads else ""
        size = f"{self.image_size}×{self.image_size} inputs" if self.image_size else "native-size inputs"
        width = f", width {self.width:g}" if self.width != 1 else ""
        norm = ", batch norm" if self.norm else ""
        return (
            f"GoogLeNet ({self.variant}{width}{norm}, {size}) with aux weight {weights}{heads}; "
            + super().describe()
        )


# What every preset shares: the paper's weight against weight 0; batch norm (as in the nets of Rethinking
# the Inception Architecture; the 2015 GoogLeNet has none and did not leave chance level in the 100
# iterations of an earlier CPU preset); eval-mode training error on the whole fixed training subset at every
# evaluation (the final training error and its curve); test error at the end only.
BASE = InceptionAuxPreset().replace(
    name="base",
    data="fashion-mnist",
    norm="batch",
    schedule="cosine",
    momentum=0.9,
    weight_decay=5e-4,
    eval_train=True,
    eval_subset=None,
    test_at_end=True,
    seeds=3,
)

# Each preset's history is in results/inception-aux-quick/NOTES.md.
QUICK = BASE.replace(
    name="quick",
    image_size=32,
    width=0.25,
    no_heads=False,
    train_subset=2000,
    val_size=2000,
    test_subset=None,
    steps=600,
    batch_size=64,
    lr=0.1,
    eval_every=60,
    log_every=10,
    diag_batch=128,
    early_step=60,
    note="sized for a 2-core CPU: GoogLeNet at width 0.25 on Fashion-MNIST at 32×32 fits a fixed 2,000-image "
    "subset for 600 iterations; only aux weight 0.3 against 0, which build the same network from the same seed "
    "and so differ in the aux losses alone",
)

PAPER = BASE.replace(
    name="paper",
    image_size=224,
    steps=20000,
    batch_size=128,
    lr=0.04,
    weight_decay=2e-4,
    augment=True,
    val_size=5000,
    eval_every=1000,
    log_every=100,
    diag_batch=64,
    early_step=3000,
    note="for a GPU: Fashion-MNIST at 224×224, where the aux head's 5×5/3 pool on 4a/4d is exactly the paper's, "
    "at the paper's width; deviations: batch norm after every conv (--set norm=none for the 2015 GoogLeNet) and "
    "plain SGD with a cosine schedule on one GPU",
)

GPU = BASE.replace(
    name="gpu",
    **GPU_SCALE,
    image_size=64,
    width=1.0,
    steps=3000,
    batch_size=128,
    lr=0.1,
    eval_every=300,
    log_every=30,
    diag_batch=128,
    early_step=300,
    note="for one GPU: GoogLeNet at the paper's widths with batch norm on the whole Fashion-MNIST training split "
    "at 64×64, six seeds, 3,000 iterations; `--dry-run --device cuda` measured 6.2–6.6 ms per iteration on one "
    "H200, about 5.8 minutes of training steps",
)

PRESETS: dict[str, InceptionAuxPreset] = {p.name: p for p in (QUICK, GPU, PAPER)}
