"""Building the SparkSession for lifeboat's jobs (never at import time)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

#: Conf every lifeboat session gets: Arrow for mapInPandas, few shuffle partitions for small data.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
}


def build_session(
    app_name: str, master: str | None = None, extra_conf: Mapping[str, str] | None = None
) -> SparkSession:
    """Get or create a SparkSession; ``master`` None leaves it to spark-submit's ``--master``."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    logger.info("Spark %s session %s on %s", session.version, app_name, session.sparkContext.master)
    return session


@contextmanager
def job_session(
    app_name: str, master: str | None = None, extra_conf: Mapping[str, str] | None = None
) -> Iterator[SparkSession]:
    """The session of one job: built on entry, stopped on exit, unless it was already running.

    Under spark-submit no session runs before the job, so the job stops the one it built; a test
    calling a job's ``main`` in-process keeps its shared session alive.
    """
    from pyspark.sql import SparkSession

    already_running = SparkSession.getActiveSession() is not None
    session = build_session(app_name, master=master, extra_conf=extra_conf)
    try:
        yield session
    finally:
        if not already_running:
            session.stop()
