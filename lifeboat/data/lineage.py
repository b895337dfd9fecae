"""Lineage of a training run: which code, which Spark, which data.

Everything here returns plain strings meant for MLflow run and model-version tags, and never fails the run:
lineage that cannot be found (no git checkout, no Spark session) is reported as ``unknown``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
#: MLflow refuses tag values longer than this; longer lineage values are cut (and say so).
MAX_TAG_LENGTH = 5000
#: Spark settings worth recording with a model (how it was trained, not where).
SPARK_CONF_KEYS: tuple[str, ...] = (
    "spark.master",
    "spark.submit.deployMode",
    "spark.driver.memory",
    "spark.executor.memory",
    "spark.executor.cores",
    "spark.default.parallelism",
    "spark.sql.shuffle.partitions",
    "spark.sql.execution.arrow.pyspark.enabled",
    "spark.sql.ansi.enabled",
)
_MD5_CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes (the checksum DVC uses), read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_MD5_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(md5s: Iterable[str]) -> str:
    """A short hash of the input files' MD5s, in input order (order matters: later files win duplicates)."""
    joined = "\n".join(md5s)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.info("git is not usable in %s: %s", cwd, exc)
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def git_lineage(directory: Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the checkout holding the lifeboat code (``unknown`` outside a git checkout).

    Uses ``--no-optional-locks`` so it never takes the index lock of a checkout someone is working in.
    """
    if directory is None:
        directory = Path(__file__).resolve().parents[2]  # lifeboat/data/ -> the checkout
    commit = _git(["rev-parse", "HEAD"], directory)
    if not commit:
        return {"git_commit": UNKNOWN, "git_dirty": UNKNOWN}
    status = _git(["status", "--porcelain", "--untracked-files=no"], directory)
    dirty = UNKNOWN if status is None else str(bool(status)).lower()
    return {"git_commit": commit, "git_dirty": dirty}


def spark_lineage(spark: SparkSession) -> dict[str, str]:
    """Spark version and the settings in :data:`SPARK_CONF_KEYS` that are set (as one JSON tag)."""
    conf: dict[str, str] = {}
    spark_conf = spark.sparkContext.getConf()
    for key in SPARK_CONF_KEYS:
        value = spark_conf.get(key)
        if value is None:
            value = spark.conf.get(key, None)
        if value is not None:
            conf[key] = str(value)
    return {
        "spark_version": spark.version,
        "spark_master": str(spark.sparkContext.master),
        "spark_conf": json.dumps(conf, sort_keys=True),
    }


def _cut(value: str) -> str:
    if len(value) <= MAX_TAG_LENGTH:
        return value
    return value[: MAX_TAG_LENGTH - 20] + "...(truncated)"


def data_lineage(preprocess_summary: Mapping[str, Any]) -> dict[str, str]:
    """Tags describing the training data, from the preprocess job's ``summary.json``."""
    inputs = [
        {"file": Path(str(item["path"])).name, "md5": item["md5"], "rows": item["rows"]}
        for item in preprocess_summary.get("inputs", [])
    ]
    fingerprint = preprocess_summary.get("data_fingerprint") or data_fingerprint(i["md5"] for i in inputs)
    return {
        "data_fingerprint": str(fingerprint),
        "data_inputs": _cut(json.dumps(inputs)),
        "data_rows": str(preprocess_summary.get("rows_out", UNKNOWN)),
        "holdout_percent": str(preprocess_summary.get("holdout_percent", UNKNOWN)),
        "salt": str(preprocess_summary.get("salt", UNKNOWN)),
        "features": _cut(",".join(preprocess_summary.get("feature_names", []))),
        "encoding_version": str(preprocess_summary.get("encoding_version", UNKNOWN)),
    }


def run_lineage(preprocess_summary: Mapping[str, Any], spark: SparkSession | None) -> dict[str, str]:
    """All lineage tags of a training run: data, code (git) and Spark."""
    tags = {**data_lineage(preprocess_summary), **git_lineage()}
    if spark is not None:
        tags.update(spark_lineage(spark))
    return {key: _cut(value) for key, value in tags.items()}
