"""Architecture analysis: parameters, MACs/FLOPs, receptive fields, activation memory, design arguments.

MACs count Conv2d and Linear; FLOPs = 2 × MACs (the convention of ``torch.utils.flop_counter``).
"""

from depthlab.analysis.complexity import CONVENTIONS, LayerRow, ModelSummary, summarize
from depthlab.analysis.memory import ActivationMemory, LayerMemory, activation_memory
from depthlab.analysis.receptive_field import RF, MeasuredRF, measure_receptive_field, stacked_receptive_field

__all__ = [
    "CONVENTIONS",
    "LayerRow",
    "ModelSummary",
    "summarize",
    "ActivationMemory",
    "LayerMemory",
    "activation_memory",
    "RF",
    "MeasuredRF",
    "measure_receptive_field",
    "stacked_receptive_field",
]
from depthlab.analysis.gradients import Diagnostics, ModelFlow, diagnose, gradflow_json, gradient_flow  # noqa: E402, F401
