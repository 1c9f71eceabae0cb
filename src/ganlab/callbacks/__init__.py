"""Lightning callbacks: sample pictures, checkpoints, evaluation, diagnostics, progress."""

from ganlab.callbacks.checkpoint import LastCheckpoint
from ganlab.callbacks.diagnostics import DiagnosticsCallback
from ganlab.callbacks.evaluation import EvaluationCallback
from ganlab.callbacks.samples import SampleGridCallback

__all__ = ["DiagnosticsCallback", "EvaluationCallback", "LastCheckpoint", "SampleGridCallback"]
