"""The doctor: checks that catch the silent bugs that stop a sequence model from learning.

`check_training(model, (x, y), ...)` before the first step (one file per family of checks:
graph, losses, mixing, registration, dynamics), `watch(model, optimizer)` inside a training
loop, `check_gradient_flow` for the gradient-flow family alone. `KINDS` documents every finding
kind; `BLOCKING` holds those that must stop a run.
"""

from .graph import check_gradient_flow
from .report import BLOCKING, KINDS, Finding, GradientFlowError, GradientReport, TrainingReport
from .training import check_training
from .watch import TrainingWarning, Watch, watch

__all__ = ["BLOCKING", "KINDS", "Finding", "GradientFlowError", "GradientReport", "TrainingReport",
           "TrainingWarning", "Watch", "check_gradient_flow", "check_training", "watch"]
