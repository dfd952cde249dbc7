"""The doctor: checks that catch the silent bugs that stop a sequence model from learning.

`check_training(model, (x, y), ...)` before the first step, one file per family of checks:
`graph` (gradient flow: no-grad, detach/numpy breaks, eval mode, unused and frozen parts),
`losses` (loss input, loss at initialisation), `mixing` (batch mixing, padding leaks),
`registration` (tensors the model does not register), `dynamics` (step size, gradients across
depth, dead units). `watch(model, optimizer)` inside a training loop; `check_gradient_flow`
for the gradient-flow family alone. `KINDS` documents every finding kind and whether it blocks
training (and why); `BLOCKING` holds those that must stop a run. `gallery` holds the reported
bugs and clean architectures the doctor is measured on; `lightning` a callback for Lightning.
"""

from .graph import check_gradient_flow
from .report import BLOCKING, KINDS, Finding, GradientReport, TrainingBugError, TrainingReport
from .training import check_training
from .watch import TrainingWarning, Watch, watch

__all__ = [
           "BLOCKING",
           "KINDS",
           "Finding",
           "GradientReport",
           "TrainingBugError",
           "TrainingReport",
           "TrainingWarning",
           "Watch",
           "check_gradient_flow",
           "check_training",
           "watch",
]
