"""Evaluation figures for the MLflow run (ROC, precision-recall, confusion matrix, calibration, importances).

Figures are built as plain :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no pyplot
state, no GUI backend, safe in a Spark driver or an Airflow worker. Callers log them with
``mlflow.log_figure`` and then call :func:`close`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

FIGSIZE = (5.5, 4.5)


def _figure(size: tuple[float, float] = FIGSIZE) -> Figure:
    figure = Figure(figsize=size, dpi=100, layout="tight")
    FigureCanvasAgg(figure)
    return figure


def close(figure: Figure) -> None:
    """Release a figure's memory once it has been saved or logged."""
    figure.clear()


def roc_figure(labels: np.ndarray, probabilities: np.ndarray, title: str = "ROC curve (holdout)") -> Figure:
    """Receiver operating characteristic with its area."""
    fpr, tpr, _ = skm.roc_curve(labels, probabilities)
    auc = skm.roc_auc_score(labels, probabilities)
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(fpr, tpr, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(
        xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1.02)
    )
    ax.legend(loc="lower right")
    return figure


def pr_figure(
    labels: np.ndarray, probabilities: np.ndarray, title: str = "Precision-recall curve (holdout)"
) -> Figure:
    """Precision against recall with the average precision and the positive rate as baseline."""
    precision, recall, _ = skm.precision_recall_curve(labels, probabilities)
    ap = skm.average_precision_score(labels, probabilities)
    figure = _figure()
    ax = figure.add_subplot()
    ax.step(recall, precision, where="post", label=f"model (AP = {ap:.3f})")
    ax.axhline(float(np.mean(labels)), linestyle="--", color="grey", label="positive rate")
    ax.set(xlabel="Recall", ylabel="Precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return figure


def confusion_figure(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float = 0.5,
    title: str = "Confusion matrix (holdout)",
) -> Figure:
    """Counts of true/false positives/negatives at ``threshold``."""
    predicted = (probabilities >= threshold).astype(np.int64)
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1])
    figure = _figure((4.5, 4.0))
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=13)
    ax.set_xticks([0, 1], ["died (0)", "survived (1)"])
    ax.set_yticks([0, 1], ["died (0)", "survived (1)"])
    ax.set(xlabel="Predicted", ylabel="Actual", title=f"{title}, threshold {threshold:g}")
    return figure


def calibration_figure(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10, title: str = "Calibration (holdout)"
) -> Figure:
    """Observed survival rate per bin of predicted probability, against the diagonal."""
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed survival rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend(loc="upper left")
    return figure


def importance_figure(
    names: Sequence[str], values: Sequence[float] | np.ndarray, title: str, xlabel: str
) -> Figure:
    """Horizontal bars of per-feature values (importances or coefficients), largest magnitude on top."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(np.abs(array))
    figure = _figure((6.0, max(3.0, 0.28 * len(names) + 1.2)))
    ax = figure.add_subplot()
    colors = ["tab:red" if v < 0 else "tab:blue" for v in array[order]]
    ax.barh([names[i] for i in order], array[order], color=colors)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel=xlabel, title=title)
    return figure
