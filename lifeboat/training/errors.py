"""What goes wrong in training, as exceptions the training job maps to exit codes."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot complete."""


class TrainingInputError(TrainingError):
    """The preprocess output folder is missing or incomplete."""


class ParityError(TrainingError):
    """The serving artifact does not reproduce Spark's holdout probabilities, or does not load."""


class ExportError(TrainingError):
    """The fitted pipeline cannot be converted to ONNX exactly."""
