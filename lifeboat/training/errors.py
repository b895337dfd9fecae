"""What goes wrong in training, as exceptions the training job maps to exit codes."""

from __future__ import annotations

from collections.abc import Sequence


class TrainingError(RuntimeError):
    """Training cannot complete."""


class TrainingInputError(TrainingError):
    """The preprocess output folder is missing or incomplete."""


class ParityError(TrainingError):
    """The serving artifact does not reproduce Spark's holdout probabilities, or does not load."""


class ExportError(TrainingError):
    """The fitted pipeline cannot be converted to ONNX exactly."""


class PreprocessError(ValueError):
    """The input data cannot be preprocessed; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
