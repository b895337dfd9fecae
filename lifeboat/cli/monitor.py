"""``lifeboat monitor``: the champion's live performance over its labelled predictions, beside its holdout."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from lifeboat.cli import EXIT_FAILURE, EXIT_OK, arg, command
from lifeboat.settings import get_settings

#: Exit code of ``--fail-on-degraded`` when the report's verdict is ``degraded``.
EXIT_DEGRADED = 3


def _since(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@command(
    "monitor",
    "measure the champion's live performance from the labels sent back (accuracy, ROC-AUC, precision, "
    "recall, calibration), print it beside its holdout figures and write a report next to the drift reports",
    arg(
        "--last",
        type=int,
        default=None,
        help="newest labelled predictions measured (default: LIFEBOAT_MONITOR_WINDOW_ROWS)",
    ),
    arg("--since", type=_since, default=None, help="only predictions logged at or after this ISO-8601 time"),
    arg("--version", default=None, help="the model version to measure (default: the champion)"),
    arg("--name", default=None, help="report name (default: performance-<UTC time>)"),
    arg("--fail-on-degraded", action="store_true", help=f"exit {EXIT_DEGRADED} when the verdict is degraded"),
)
def _monitor(args: argparse.Namespace) -> int:
    from lifeboat.monitoring.performance import COMPARED, MonitorError, monitor

    settings = get_settings()
    if args.last is not None and args.last < 1:
        raise ValueError(f"--last must be at least 1, got {args.last}")
    try:
        summary = monitor(
            settings, name=args.name, last_n=args.last, since=args.since, model_version=args.version
        )
    except MonitorError as exc:
        print(f"lifeboat monitor: error: {exc}")
        return EXIT_FAILURE
    assert summary is not None  # skip_empty is off: a report is always written
    live = summary.live
    print(
        f"{settings.dataset} v{summary.model_version}: {live.labelled_rows} labelled prediction(s) "
        f"({live.positives} positive) in {summary.window}"
    )
    print(f"  {'metric':<10} {'live':>8} {'holdout':>8}")
    for name in COMPARED:
        print(
            f"  {name:<10} {_figure(getattr(live, name)):>8} "
            f"{_figure(summary.holdout.get(f'holdout_{name}')):>8}"
        )
    print(f"  {'ece':<10} {_figure(live.expected_calibration_error):>8}")
    print(f"verdict: {summary.status} - {summary.message}")
    print(f"report: {summary.html_path}")
    if args.fail_on_degraded and summary.status == "degraded":
        return EXIT_DEGRADED
    return EXIT_OK
