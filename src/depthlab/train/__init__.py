"""Training: ``train(config, out_dir)`` writes a self-describing run directory; ``load_run`` and
``load_run_model`` read one back; ``evaluate_run`` tests a checkpoint; ``load_correct`` reads which images a
run's final evaluation got right.

See :mod:`depthlab.train.loop` for the order of work in a step, :mod:`depthlab.train.setup` for a run's
set-up (its data, its model at step 0), :mod:`depthlab.train.evaluation` for evaluation,
:mod:`depthlab.train.checkpoint` for the checkpoint format and :mod:`depthlab.train.rundir` for the run
directory.
"""

from depthlab.train.checkpoint import CheckpointError
from depthlab.train.config import (
    DEVICES,
    INITS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)
from depthlab.train.evaluation import evaluate_run, load_correct
from depthlab.train.loop import TrainEvent, TrainingDivergedError, train
from depthlab.train.rundir import RunSummary, load_run, load_run_model, read_metrics

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DEVICES",
    "INITS",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "RunSummary",
    "TrainConfig",
    "TrainEvent",
    "TrainingDivergedError",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "evaluate_run",
    "load_correct",
    "load_run",
    "load_run_model",
    "read_metrics",
    "train",
]
