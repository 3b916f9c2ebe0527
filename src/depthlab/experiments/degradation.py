"""The degradation study: plain and residual networks of several depths trained with one recipe.

Claim under test (He et al. 2015, arXiv:1512.03385, Fig. 6 and 7): deeper *plain* networks end with higher
*training* error than shallower ones, while residual networks do not; and residual layers respond more
weakly than plain ones. Alongside, the gradient diagnostics of :mod:`depthlab.analysis.gradients` at
initialisation and at the end let the measurements decide between "vanishing gradients" and the paper's
"the gradients are healthy" explanation.

Layout of a study directory::

    DIR/study.json            the preset (after overrides), seeds and the command that made it
    DIR/runs/MODEL-sSEED/     one training run directory each (see depthlab.train.rundir), plus
                              diagnostics.json: {"init", "init_no_bn", "end", "end_eval"} →
                              Diagnostics.to_dict()
    DIR/results.json          {"preset", "dataset", "runs": [...], "findings": [...]}

Re-running the study skips completed runs, resumes interrupted ones from their last checkpoint and
recomputes nothing else; results.json is rewritten from the run directories every time.

Definitions (all errors are fractions in results.json and percentages in sentences):

* ``final_train_error`` — the running training error of the last ``metrics.jsonl`` training row, i.e. on
  the (augmented, if the preset augments) batches of the last ``log_every`` iterations, as the paper plots
  training error "on the fly".
* ``final_val_error`` / ``final_test_error`` — the last validation / test evaluation (``None`` if absent).
* diagnostics — one batch of ``diag_batch`` held-out images (validation split, else test): ``init`` and
  ``end`` in training mode (BN on batch statistics, what the optimiser sees), ``end_eval`` in evaluation
  mode (running statistics, as the paper measures Fig. 7), and ``init_no_bn``: the same architecture
  built without batch norm from the same seed, at initialisation (never trained).
* A difference between two configurations counts as an effect only if it exceeds the *noise margin*: the
  largest of ``MIN_EFFECT`` (one percentage point), the sum of the two seed standard deviations, and two
  binomial standard errors of the difference, sqrt(p₁(1−p₁)/n₁ + p₂(1−p₂)/n₂) with n the images behind
  each error (training: ``log_every × batch_size`` per seed; test: the test split per seed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import statistics
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab.train.config import parse_value

__all__ = [
    "STUDIES",
    "PRESETS",
    "DegradationPreset",
    "StudyRun",
    "Cell",
    "DegradationResult",
    "apply_preset_overrides",
    "run_degradation",
    "read_study",
    "read_study_run",
    "summarize_cells",
    "compute_findings",
    "results_json",
    "reproduce_commands",
    "initial_model",
    "find_run_dirs",
    "parse_model",
    "noise_margin",
]

STUDIES = ("degradation",)
FAMILIES = ("plain", "resnet")  # plain twin first: plainN and resnetN share every layer but the shortcuts
FINISHED = ("completed", "diverged")  # a re-run skips these (a diverged run would diverge again)
MIN_EFFECT = 0.01  # a difference under one percentage point is not called an effect


# ------------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class DegradationPreset:
    """Everything the study varies and fixes. Iterations are optimizer steps of ``batch_size`` images."""

    name: str
    dataset: str
    depths: tuple[int, ...]  # CIFAR-style 6n+2 depths: plainD and resnetD are trained for each
    steps: int  # optimizer steps per run
    batch_size: int
    lr: float  # peak learning rate
    schedule: str  # "onecycle" | "step" | "cosine" (depthlab.train.config.SCHEDULES)
    milestones: tuple[float, ...]  # steps at which "step" divides the lr by 10 (empty: 50% and 75%)
    warmup: int | None  # steps; onecycle's rise (None: 25% of training)
    momentum: float
    nesterov: bool
    weight_decay: float  # L2, on every parameter (the paper's setting)
    augment: bool  # 4-pixel pad + random crop + horizontal flip
    val_size: int | None  # images held out of the training set (None: the dataset's default)
    eval_every: int  # steps between validation evaluations (and checkpoints)
    log_every: int  # steps per training-error row
    seeds: int  # seeds per model unless --seeds says otherwise
    diag_batch: int  # images in the diagnostics batch
    note: str  # what the preset is for, and how it was sized

    def __post_init__(self) -> None:
        bad = [d for d in self.depths if not isinstance(d, int) or d < 8 or (d - 2) % 6]
        if not self.depths or bad:
            raise ValueError(
                f"depths must be 6n+2 CIFAR depths (20, 32, 44, 56, 110, …), got {list(self.depths)}"
            )
        for key in ("steps", "batch_size", "eval_every", "log_every", "seeds", "diag_batch"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(f"{family}{depth}" for depth in self.depths for family in FAMILIES)

    def describe(self) -> str:
        aug = "with augmentation" if self.augment else "no augmentation"
        sched = self.schedule + (
            f" at {', '.join(f'{m:g}' for m in self.milestones)}" if self.milestones else ""
        )
        return (
            f"{self.dataset}, depths {'/'.join(map(str, self.depths))} (plain and ResNet), {self.steps} "
            f"iterations of batch {self.batch_size}, lr {self.lr:g} ({sched}), momentum {self.momentum:g}, "
            f"weight decay {self.weight_decay:g}, {aug}, {self.seeds} seed(s)"
        )

    def train_config(
        self, model: str, seed: int, *, device: str = "auto", data_dir: str | None = None
    ) -> Any:
        """The :class:`depthlab.train.TrainConfig` of one run of the study."""
        from depthlab.train import TrainConfig

        return TrainConfig(
            model=model,
            data=self.dataset,
            data_dir=data_dir,
            val_size=self.val_size,
            epochs=None,
            steps=self.steps,
            batch_size=self.batch_size,
            optimizer="sgd",
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            decay_norm_and_bias=True,
            schedule=self.schedule,
            milestones=self.milestones,
            warmup=self.warmup,
            label_smoothing=0.0,
            augment=self.augment,
            eval_every=self.eval_every,
            log_every=self.log_every,
            checkpoint_every=self.eval_every,
            seed=seed,
            device=device,
        )


PRESETS: dict[str, DegradationPreset] = {
    p.name: p
    for p in (
        DegradationPreset(
            name="quick",
            dataset="fashion-mnist",
            depths=(20, 56),
            steps=400,
            batch_size=128,
            lr=0.1,
            schedule="onecycle",
            milestones=(),
            warmup=None,
            momentum=0.9,
            nesterov=False,
            weight_decay=1e-4,
            augment=False,
            val_size=2000,
            eval_every=200,
            log_every=20,
            seeds=1,
            diag_batch=128,
            note="sized for ≤ 15 minutes on an idle 2-core CPU. Measured per batch-128 iteration: plain20 "
            "0.165 s, ResNet-20 0.173 s, plain56 0.506 s, ResNet-56 0.522 s; evaluation 0.49/0.62/1.30/1.50 ms "
            "per image. 400 iterations ≈ 9.1 min of training, 2 evaluations of 12k images ≈ 1.6 min, set-up and "
            "diagnostics ≈ 0.5 min: ≈ 11 min",
        ),
        DegradationPreset(
            name="standard",
            dataset="fashion-mnist",
            depths=(20, 32, 44, 56),
            steps=3000,
            batch_size=128,
            lr=0.1,
            schedule="onecycle",
            milestones=(),
            warmup=None,
            momentum=0.9,
            nesterov=False,
            weight_decay=1e-4,
            augment=True,
            val_size=5000,
            eval_every=250,
            log_every=50,
            seeds=1,
            diag_batch=256,
            note="the paper's four depths on Fashion-MNIST, ~7 epochs each: a few hours on a 2-core CPU, "
            "minutes on a GPU",
        ),
        DegradationPreset(
            name="paper",
            dataset="cifar10",
            depths=(20, 32, 44, 56),
            steps=64000,
            batch_size=128,
            lr=0.1,
            schedule="step",
            milestones=(32000.0, 48000.0),
            warmup=None,
            momentum=0.9,
            nesterov=False,
            weight_decay=1e-4,
            augment=True,
            val_size=5000,
            eval_every=2000,
            log_every=100,
            seeds=1,
            diag_batch=256,
            note="He et al. 2015 §4.2: 45k/5k split, batch 128, lr 0.1 ÷10 at 32k and 48k, 64k iterations, "
            "weight decay 1e-4, momentum 0.9, option A shortcuts, pad-4 crop + flip; for a GPU",
        ),
    )
}


def apply_preset_overrides(preset: DegradationPreset, overrides: Iterable[str]) -> DegradationPreset:
    """``preset`` with each ``key=value`` applied (typed by the field; unknown keys rejected)."""
    hints = typing.get_type_hints(DegradationPreset)
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        if key not in hints or key == "name":
            known = ", ".join(k for k in hints if k != "name")
            raise ValueError(f"unknown preset key {key!r}; known keys: {known}")
        changes[key] = parse_value(key, raw, hints[key])
    return dataclasses.replace(preset, **changes)


# ------------------------------------------------------------------------------------------ reading runs
@dataclass(frozen=True)
class StudyRun:
    """One run directory of the study, as read back (nothing is recomputed)."""

    run_dir: Path
    model: str
    depth: int
    residual: bool
    seed: int
    status: str  # from summary.json; "missing" if the run never wrote one
    step: int
    final_train_error: float | None
    final_val_error: float | None
    final_test_error: float | None
    wall_seconds: float
    train_curve: tuple[tuple[int, float], ...]  # (step, running training error)
    val_curve: tuple[tuple[int, float], ...]
    test_curve: tuple[tuple[int, float], ...]
    diagnostics: Mapping[str, Any]  # "init" / "init_no_bn" / "end" / "end_eval" → Diagnostics (those present)
    config: Mapping[str, Any]  # config.json
    environment: Mapping[str, Any]  # environment.json ({} if absent)
    data: Mapping[str, Any]  # summary.json "data": num_classes, in_channels, image_size, … ({} if absent)
    images_per_s: float  # training throughput from summary.json (0 if absent)

    @property
    def label(self) -> str:
        return f"{'ResNet' if self.residual else 'plain'}-{self.depth}"

    @property
    def completed(self) -> bool:
        return self.status == "completed"


_NAME = re.compile(r"^(?P<family>[a-z_]+?)(?P<depth>\d+)$")


def parse_model(name: str) -> tuple[int, bool]:
    """(depth, residual) of a zoo name such as ``plain56`` or ``resnet110``."""
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"cannot read a depth from model name {name!r} (expected e.g. plain56, resnet20)")
    family = m["family"]
    return int(m["depth"]), family != "plain"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_study_run(run_dir: str | Path) -> StudyRun:
    """A run directory as a :class:`StudyRun`: config, summary, metrics and diagnostics.json if present."""
    from depthlab.analysis.gradients import Diagnostics

    folder = Path(run_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a run directory (no config.json)")
    config = _read_json(folder / "config.json")
    summary = _read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    environment = _read_json(folder / "environment.json") if (folder / "environment.json").is_file() else {}
    rows = []
    if (folder / "metrics.jsonl").is_file():
        for line in (folder / "metrics.jsonl").read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill mid-write
                continue

    def curve(split: str) -> tuple[tuple[int, float], ...]:
        points = {int(r["step"]): float(r["error"]) for r in rows if r.get("split") == split and "error" in r}
        return tuple(sorted(points.items()))

    train, val, test = curve("train"), curve("val"), curve("test")
    diagnostics: dict[str, Any] = {}
    if (folder / "diagnostics.json").is_file():
        diagnostics = {
            k: Diagnostics.from_dict(v) for k, v in _read_json(folder / "diagnostics.json").items()
        }
    depth, residual = parse_model(config["model"])
    return StudyRun(
        run_dir=folder,
        model=config["model"],
        depth=depth,
        residual=residual,
        seed=int(config.get("seed", 0)),
        status=str(summary.get("status", "missing")),
        step=int(summary.get("step", train[-1][0] if train else 0)),
        final_train_error=train[-1][1] if train else None,
        final_val_error=val[-1][1] if val else None,
        final_test_error=test[-1][1] if test else None,
        wall_seconds=float(summary.get("wall_time_s", 0.0)),
        train_curve=train,
        val_curve=val,
        test_curve=test,
        diagnostics=diagnostics,
        config=config,
        environment=environment,
        data=dict(summary.get("data", {})),
        images_per_s=float(summary.get("images_per_s", 0.0)),
    )


def find_run_dirs(directory: str | Path) -> list[Path]:
    """Run directories (holding config.json) at ``directory``, in ``directory/runs/*`` or ``directory/*``."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    if (root / "config.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("runs/*/config.json"))
    return found or sorted(p.parent for p in root.glob("*/config.json"))


def _run_order(run: StudyRun) -> tuple[int, bool, int]:
    return run.depth, run.residual, run.seed


# ------------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Cell:
    """One (depth, plain|residual) configuration, aggregated over seeds (fractions)."""

    depth: int
    residual: bool
    seeds: int
    train_mean: float | None
    train_std: float | None  # None with a single seed
    val_mean: float | None
    test_mean: float | None
    test_std: float | None
    train_images: int = 0  # images behind train_mean, over all seeds (0: unknown)
    test_images: int = 0  # images behind test_mean, over all seeds (0: unknown)

    @property
    def label(self) -> str:
        return f"{'ResNet' if self.residual else 'plain'}-{self.depth}"


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def summarize_cells(runs: Sequence[StudyRun]) -> list[Cell]:
    """Mean (and std across seeds) of the final errors of each (depth, residual) configuration."""
    groups: dict[tuple[int, bool], list[StudyRun]] = {}
    for r in runs:
        groups.setdefault((r.depth, r.residual), []).append(r)
    cells = []
    for (depth, residual), rs in sorted(groups.items()):
        tm, ts = _mean_std([r.final_train_error for r in rs])
        vm, _ = _mean_std([r.final_val_error for r in rs])
        em, es = _mean_std([r.final_test_error for r in rs])
        train_n = sum(int(r.config.get("log_every", 0)) * int(r.config.get("batch_size", 0)) for r in rs)
        test_n = sum(int(r.data.get("test", 0)) for r in rs)
        cells.append(Cell(depth, residual, len(rs), tm, ts, vm, em, es, train_n, test_n))
    return cells


def pct(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%" + (f" ± {100 * std:.1f}" if std is not None else "")


def noise_margin(x: Cell, y: Cell, metric: str) -> float:
    """The smallest difference of ``metric`` ("train"/"test") between cells x and y called an effect."""
    margin = MIN_EFFECT + 0.0
    xs, ys = getattr(x, f"{metric}_std"), getattr(y, f"{metric}_std")
    margin = max(margin, (xs or 0.0) + (ys or 0.0))
    xm, ym = getattr(x, f"{metric}_mean"), getattr(y, f"{metric}_mean")
    xn, yn = getattr(x, f"{metric}_images"), getattr(y, f"{metric}_images")
    if xm is not None and ym is not None and xn > 0 and yn > 0:
        margin = max(margin, 2 * math.sqrt(xm * (1 - xm) / xn + ym * (1 - ym) / yn))
    return margin


def _differs(x: Cell, y: Cell, metric: str) -> bool:
    xm, ym = getattr(x, f"{metric}_mean"), getattr(y, f"{metric}_mean")
    return xm is not None and ym is not None and abs(xm - ym) > noise_margin(x, y, metric)


def _compare(x: Cell, y: Cell, metric: str, noun: str) -> str:
    """A sentence comparing ``metric`` ("train"/"test") of cell x with cell y."""
    xm, xs = getattr(x, f"{metric}_mean"), getattr(x, f"{metric}_std")
    ym, ys = getattr(y, f"{metric}_mean"), getattr(y, f"{metric}_std")
    if xm is None or ym is None:
        return f"{x.label} vs {y.label}: no {noun} to compare."
    if not _differs(x, y, metric):
        return (
            f"{x.label} and {y.label} end with about the same {noun} ({pct(xm, xs)} vs {pct(ym, ys)}): "
            f"the difference is within the {100 * noise_margin(x, y, metric):.1f}-point noise margin."
        )
    word = "higher" if xm > ym else "lower"
    return f"{x.label} ends with {word} {noun} than {y.label} ({pct(xm, xs)} vs {pct(ym, ys)})."


def compute_findings(runs: Sequence[StudyRun]) -> list[str]:
    """Plain sentences computed from the runs: depth vs error for each family, plain vs residual at each
    depth, and what the diagnostics say about gradients and layer responses."""
    done = [r for r in runs if r.final_train_error is not None]
    if not done:
        return ["No run has logged a training error yet, so there is nothing to compare."]
    findings: list[str] = []
    unfinished = [r for r in runs if not r.completed]
    if unfinished:
        names = ", ".join(f"{r.label} (seed {r.seed}, {r.status}, step {r.step})" for r in unfinished)
        findings.append(f"Not every run has completed: {names}; their numbers are from where they stopped.")
    cells = summarize_cells(done)
    by = {(c.depth, c.residual): c for c in cells}
    depths = sorted({c.depth for c in cells})

    # 1. Degradation: does training error rise with depth in plain nets, and in ResNets?
    for residual in (False, True):
        ds = [d for d in depths if (d, residual) in by]
        if len(ds) >= 2:
            shallow, deep = by[(ds[0], residual)], by[(ds[-1], residual)]
            findings.append(_compare(deep, shallow, "train", "training error"))
    plain_ds = [d for d in depths if (d, False) in by]
    if len(plain_ds) >= 2:
        trend = [by[(d, False)].train_mean for d in plain_ds]
        rising = all(b > a for a, b in zip(trend, trend[1:], strict=False))
        if len(plain_ds) > 2:
            findings.append(
                f"Plain-net training error {'rises' if rising else 'does not rise monotonically'} with depth "
                f"({', '.join(f'{d}: {pct(v)}' for d, v in zip(plain_ds, trend, strict=True))})."
            )
    # 2. Residual vs plain at each depth.
    for d in depths:
        if (d, False) in by and (d, True) in by:
            findings.append(_compare(by[(d, True)], by[(d, False)], "train", "training error"))
    deepest = depths[-1]
    if (deepest, False) in by and (deepest, True) in by:
        findings.append(_compare(by[(deepest, True)], by[(deepest, False)], "test", "test error"))

    # 3. Gradients at initialisation and at the end: vanishing, or healthy?
    findings += _gradient_findings(done)
    # 4. Fig. 7: do residual layers respond more weakly?
    findings += _response_findings(done)
    return findings


def _first_seed(runs: Sequence[StudyRun], key: str) -> dict[tuple[int, bool], Any]:
    out: dict[tuple[int, bool], Any] = {}
    for r in sorted(runs, key=_run_order):
        if key in r.diagnostics:
            out.setdefault((r.depth, r.residual), r.diagnostics[key])
    return out


VANISH = 0.1  # a first/last gradient-norm ratio below this is called vanishing
EXPLODE = 10.0  # above this, growing toward the input


def _trend(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "cannot be compared (a zero or non-finite norm)"
    if ratio < VANISH:
        return "shrinks toward the input (vanishes)"
    if ratio > EXPLODE:
        return "grows toward the input (it does not vanish)"
    return "neither vanishes nor explodes"


def _degraded(runs: Sequence[StudyRun]) -> tuple[Cell, Cell] | None:
    """(deepest, shallowest) plain cells if the deeper plain net ends with clearly higher training error."""
    plain = [c for c in summarize_cells(runs) if not c.residual and c.train_mean is not None]
    if len(plain) < 2:
        return None
    shallow, deep = plain[0], plain[-1]
    assert deep.train_mean is not None and shallow.train_mean is not None
    if deep.train_mean > shallow.train_mean and _differs(deep, shallow, "train"):
        return deep, shallow
    return None


# key in diagnostics.json → (when, what is compared, Diagnostics method, span of the ratio)
_GRADIENT_MOMENTS = {
    "init": ("At initialisation", "weight-gradient", "grad_norm_ratio", "first/last layer"),
    "end": ("At the end of training", "weight-gradient", "grad_norm_ratio", "first/last layer"),
    "init_no_bn": (
        "Without batch norm, at initialisation",
        "block-output gradient",
        "block_grad_ratio",
        "first/last block",
    ),
}


def _gradient_findings(runs: Sequence[StudyRun]) -> list[str]:
    findings = []
    vanishing_with_bn = False
    for key, (moment, what, method, span) in _GRADIENT_MOMENTS.items():
        diags = _first_seed(runs, key)
        deepest = max((d for d, res in diags if not res), default=None)
        if deepest is None:
            continue
        ratio = getattr(diags[(deepest, False)], method)()
        if key != "init_no_bn" and ratio < VANISH:
            vanishing_with_bn = True
        text = f"{moment}, plain-{deepest}'s {what} norm {_trend(ratio)}: {span} ratio {ratio:.3g}"
        if (deepest, True) in diags:
            rr = getattr(diags[(deepest, True)], method)()
            text += f"; ResNet-{deepest}'s {_trend(rr).split(' (')[0]} (ratio {rr:.3g})"
        findings.append(text + ".")
    degraded = _degraded(runs)
    if degraded is not None and _first_seed(runs, "init"):
        deep, shallow = degraded
        if vanishing_with_bn:
            findings.append(
                f"With batch norm, {deep.label}'s gradients vanish toward the input: consistent with the "
                f"vanishing-gradient explanation of its higher training error than {shallow.label}."
            )
        else:
            findings.append(
                f"So {deep.label}'s higher training error than {shallow.label} is not explained by vanishing "
                f"gradients here: with batch norm its gradients reach the first layer undiminished, as the "
                f"ResNet paper argues."
            )
    return findings


def _response_findings(runs: Sequence[StudyRun]) -> list[str]:
    diags = _first_seed(runs, "end_eval")
    means = {k: statistics.fmean(r.std for r in d.responses) for k, d in diags.items() if d.responses}
    depths = sorted({d for d, _ in means})
    findings = []
    for d in depths:
        if (d, False) in means and (d, True) in means:
            p, r = means[(d, False)], means[(d, True)]
            word = "more weakly" if r < p else "more strongly"
            findings.append(
                f"After training, ResNet-{d}'s 3×3 layers respond {word} than plain-{d}'s (mean response std "
                f"{r:.3g} vs {p:.3g}, eval mode){' — as in the paper' if r < p else ', unlike the paper'}."
            )
    res = [d for d in depths if (d, True) in means]
    if len(res) >= 2:
        a, b = means[(res[0], True)], means[(res[-1], True)]
        word = "smaller" if b < a else "not smaller"
        findings.append(
            f"The deeper ResNet-{res[-1]}'s responses are {word} than ResNet-{res[0]}'s ({b:.3g} vs {a:.3g})."
        )
    return findings


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class DegradationResult:
    preset: DegradationPreset | None  # None when read from a directory without study.json
    dataset: str
    seeds: int
    runs: tuple[StudyRun, ...]
    findings: tuple[str, ...]
    overrides: tuple[str, ...] = ()

    def table(self) -> list[tuple[str, str, str, str, str]]:
        """Rows (depth, plain train, plain test, residual train, residual test) of formatted errors."""
        by = {(c.depth, c.residual): c for c in summarize_cells(self.runs)}
        rows = []
        for depth in sorted({d for d, _ in by}):
            p, r = by.get((depth, False)), by.get((depth, True))
            rows.append(
                (
                    str(depth),
                    pct(p.train_mean, p.train_std) if p else "—",
                    pct(p.test_mean, p.test_std) if p else "—",
                    pct(r.train_mean, r.train_std) if r else "—",
                    pct(r.test_mean, r.test_std) if r else "—",
                )
            )
        return rows


def results_json(result: DegradationResult) -> dict[str, Any]:
    """The ``results.json`` object (schema in the module docstring)."""
    return {
        "preset": result.preset.name if result.preset else None,
        "dataset": result.dataset,
        "runs": [
            {
                "model": r.model,
                "depth": r.depth,
                "residual": r.residual,
                "seed": r.seed,
                "final_train_error": r.final_train_error,
                "final_val_error": r.final_val_error,
                "final_test_error": r.final_test_error,
                "wall_seconds": r.wall_seconds,
            }
            for r in result.runs
        ],
        "findings": list(result.findings),
    }


def read_study(directory: str | Path) -> DegradationResult:
    """A study (or any directory of runs) read back from disk; findings are recomputed from the runs."""
    root = Path(directory)
    runs = tuple(sorted((read_study_run(p) for p in find_run_dirs(root)), key=_run_order))
    if not runs:
        raise FileNotFoundError(f"{root} holds no run directories (looked for config.json in it, runs/*, */)")
    preset, seeds, overrides = None, len({r.seed for r in runs}), ()
    if (root / "study.json").is_file():
        study = _read_json(root / "study.json")
        values = dict(study["preset"])
        for key in ("depths", "milestones"):
            values[key] = tuple(values[key])
        preset = DegradationPreset(**values)
        seeds, overrides = int(study["seeds"]), tuple(study.get("overrides", ()))
    dataset = preset.dataset if preset else str(runs[0].config.get("data", "?"))
    return DegradationResult(preset, dataset, seeds, runs, tuple(compute_findings(runs)), overrides)


def reproduce_commands(result: DegradationResult, directory: str | Path) -> list[str]:
    """Shell commands that recreate the study directory (or each run of a directory of runs) and its report."""
    d = shlex.quote(str(directory))
    if result.preset is None:
        return [train_command(r.config, r.run_dir) for r in result.runs] + [f"depthlab report {d}"]
    sets = "".join(f" --set {shlex.quote(o)}" for o in result.overrides)
    return [
        f"depthlab experiment degradation --preset {result.preset.name} --seeds {result.seeds}{sets} --out {d}",
        f"depthlab report {d}",
    ]


def train_command(config: Mapping[str, Any], run_dir: str | Path) -> str:
    """``depthlab train MODEL --set key=value … --out RUN_DIR`` for every field that differs from the
    :class:`~depthlab.train.TrainConfig` defaults."""
    from depthlab.train import TrainConfig, config_to_dict

    defaults = config_to_dict(TrainConfig())
    parts = ["depthlab", "train", str(config["model"])]

    def text(value: Any) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (list, tuple)):
            return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        return str(value)

    for key, value in config.items():
        if key == "model" or defaults.get(key) == value:
            continue
        if key == "model_kwargs":
            parts += [f"--set=model_kwargs.{k}={json.dumps(v)}" for k, v in dict(value).items()]
        else:
            parts.append(f"--set={key}={text(value)}")
    parts += ["--out", str(run_dir)]
    return " ".join(shlex.quote(p) for p in parts)


# ------------------------------------------------------------------------------------------------ running
Progress = Callable[[str], None]


def _check_study_file(root: Path, preset: DegradationPreset, seeds: int, overrides: Sequence[str]) -> None:
    path = root / "study.json"
    record = {
        "study": "degradation",
        "preset": dataclasses.asdict(preset),
        "seeds": seeds,
        "overrides": list(overrides),
    }
    record["preset"]["depths"] = list(preset.depths)
    record["preset"]["milestones"] = list(preset.milestones)
    if path.is_file():
        old = _read_json(path)
        if old.get("preset") != record["preset"]:
            diff = sorted(k for k in record["preset"] if old.get("preset", {}).get(k) != record["preset"][k])
            raise ValueError(
                f"{root} already holds a study with different settings ({', '.join(diff)}); "
                f"use another --out, or the same preset and --set values"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def run_degradation(
    preset: DegradationPreset,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    overrides: Sequence[str] = (),
    progress: Progress | None = None,
) -> DegradationResult:
    """Train (or resume, or skip) every run of the study, add diagnostics, write results.json.

    Runs go in order seed → depth → plain, ResNet, one at a time. ``progress`` receives one line per event.
    """
    import torch

    from depthlab.analysis.gradients import diagnose
    from depthlab.data import load_data, make_loader
    from depthlab.train import TrainingDivergedError, load_run_model, train

    seeds = preset.seeds if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    from depthlab.registry import list_models

    missing = [m for m in preset.models if m not in list_models()]
    if missing:
        depths = sorted(
            {int(m[len("resnet") :]) for m in list_models("resnet*") if m[len("resnet") :].isdigit()}
        )
        raise ValueError(
            f"no registered model {', '.join(missing)}; depths with both plain and ResNet models: "
            f"{', '.join(str(d) for d in depths if f'plain{d}' in list_models())}"
        )
    say = progress or (lambda line: None)
    root = Path(out_dir)
    _check_study_file(root, preset, seeds, overrides)

    # The diagnostics batch: the first diag_batch held-out images, the same for every model.
    bundle = load_data(preset.dataset, data_dir=data_dir, val_size=preset.val_size, seed=0)
    held = bundle.val if bundle.val is not None else bundle.test
    if held is None:
        raise ValueError(f"{preset.dataset} has neither a validation nor a test split for the diagnostics")
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    loader = make_loader(bundle, held, batch_size=min(preset.diag_batch, len(held)), device=dev)
    images, labels = next(iter(loader.epoch()))

    plan = [(seed, name) for seed in range(seeds) for name in preset.models]
    for k, (seed, model_name) in enumerate(plan, start=1):
        run_dir = root / "runs" / f"{model_name}-s{seed}"
        config = preset.train_config(model_name, seed, device=device, data_dir=data_dir)
        diag_path = run_dir / "diagnostics.json"
        diags: dict[str, Any] = _read_json(diag_path) if diag_path.is_file() else {}
        status = _status(run_dir)
        tag = f"[{k}/{len(plan)}] {model_name} seed {seed}"
        if status in FINISHED:
            say(f"{tag}: already {status}, skipped")
        else:
            if "init" not in diags:
                init_model = initial_model(config, bundle).to(dev)
                diags["init"] = diagnose(init_model, images, labels, mode="train").to_dict()
                # The same net without batch norm, same seed: where vanishing gradients would show.
                no_bn = dataclasses.replace(config, model_kwargs={**config.model_kwargs, "norm": None})
                diags["init_no_bn"] = diagnose(initial_model(no_bn, bundle).to(dev), images, labels).to_dict()
                _write_json(diag_path, diags)
            resume = (run_dir / "checkpoints" / "last.json").is_file()
            if not resume:
                _clear_unstarted(run_dir)
            say(f"{tag}: {'resuming' if resume else 'training'} for {preset.steps} iterations")
            try:
                summary = train(config, run_dir, resume=resume, callback=_reporter(say, tag, preset))
            except TrainingDivergedError as exc:
                say(f"{tag}: {exc}")
                continue
            say(f"{tag}: {summary.status} at step {summary.step} after {summary.wall_time_s:.0f} s")
            if summary.status == "interrupted":
                say("interrupted: run the same command again to resume")
                break
        if _status(run_dir) == "completed" and not {"end", "end_eval"} <= set(diags):
            trained = load_run_model(run_dir, "last").to(dev)
            diags["end"] = diagnose(trained, images, labels, mode="train").to_dict()
            diags["end_eval"] = diagnose(trained, images, labels, mode="eval").to_dict()
            _write_json(diag_path, diags)

    result = read_study(root)
    (root / "results.json").write_text(json.dumps(results_json(result), indent=1) + "\n")
    return result


def _status(run_dir: Path) -> str:
    path = run_dir / "summary.json"
    return str(_read_json(path).get("status", "missing")) if path.is_file() else "missing"


def _write_json(path: Path, values: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values) + "\n")
    tmp.replace(path)


def initial_model(config: Any, bundle: Any) -> Any:
    """The model a run starts from: seeded and built exactly as :func:`depthlab.train.train` does
    (``torch.manual_seed(config.seed)`` after loading the data, then ``build_model``), so its weights equal
    the run's step-0 weights (a test checks this against the trainer)."""
    import torch

    from depthlab.train.loop import build_model

    torch.manual_seed(config.seed)
    return build_model(config, bundle)


def _clear_unstarted(run_dir: Path) -> None:
    """A run directory without a checkpoint (killed in its first interval) is started again: remove the
    files the trainer wrote (and only those), keep diagnostics.json."""
    for name in ("config.json", "environment.json", "metrics.jsonl", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)


def _reporter(say: Progress, tag: str, preset: DegradationPreset) -> Callable[[Any], None]:
    every = max(preset.log_every, preset.steps // 4 // preset.log_every * preset.log_every)

    def on_event(event: Any) -> None:
        if event.kind == "train" and (event.step % every == 0 or event.step == event.total_steps):
            say(f"{tag}: step {event.step}/{event.total_steps}, training error {pct(event.values['error'])}")
        elif event.kind == "eval":
            say(f"{tag}: step {event.step}, {event.values['split']} error {pct(event.values['error'])}")

    return on_event
