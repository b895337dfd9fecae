"""Property-based fuzzing of the prediction API from its own OpenAPI description (schemathesis + hypothesis).

:func:`fuzz` runs one operation in one generation mode for a number of cases and keeps a tally instead of
stopping at the first failure: which statuses came back, and which checks failed on which requests (with a
curl command to reproduce each). The tests then judge the tallies (tests/proof/test_fuzzing.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as openapi_checks

from lifeboat.dataset.schema import COLUMNS

#: Checks run on every answer: never a 5xx, and the answer is what the OpenAPI description promises.
CONFORMANCE_CHECKS = (
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
)
#: Mode-specific checks: schema-valid JSON input is accepted (2xx), schema-invalid input refused (4xx).
ACCEPTANCE = openapi_checks.positive_data_acceptance
REJECTION = openapi_checks.negative_data_rejection

_INT_COLUMNS = frozenset(c.name for c in COLUMNS if c.kind == "int")
_EXAMPLES_KEPT = 3


@dataclass
class FuzzTally:
    """What fuzzing one operation in one mode found."""

    operation: str
    mode: str
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(
        default_factory=dict
    )  # check name -> reproductions (the first few)
    failure_counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def failed(self, *checks: str) -> dict[str, list[str]]:
        """The reproductions of the named checks that failed (all checks when none is named)."""
        return {k: v for k, v in self.failures.items() if not checks or k in checks}

    def line(self) -> str:
        """One report line."""
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        failed = dict(self.failure_counts) or "none"
        return (
            f"{self.operation} {self.mode}: {self.cases} cases in {self.seconds:.1f} s "
            f"({self.cpu_seconds:.1f} s CPU); statuses {{{statuses}}}; failed checks {failed}"
        )


def integral_floats_as_ints(case: Case) -> None:
    """Send integral floats of integer columns as JSON integers (``7`` rather than ``7.0``).

    JSON Schema counts ``7.0`` as an integer; the API deliberately does not (it documents that integers
    must be JSON integers). So that "schema-valid passengers are scored" can be checked, positive cases
    send those values as integers. Other bodies (CSV text, multipart) are left as they are.
    """
    body = case.body
    if not isinstance(body, dict):
        return
    rows = body["passengers"] if isinstance(body.get("passengers"), list) else [body]
    for row in rows:
        if not isinstance(row, dict):
            continue
        for name in _INT_COLUMNS & set(row):
            value = row[name]
            if isinstance(value, float) and value.is_integer():
                row[name] = int(value)


def fuzz(
    operation: APIOperation,
    mode: GenerationMode,
    examples: int,
    send: Callable[[Case], Response],
) -> FuzzTally:
    """Send up to ``examples`` generated cases of ``operation`` and tally statuses and failed checks.

    Positive cases with a JSON body must be accepted (2xx), negative cases refused (4xx); every answer must
    not be a 5xx and must conform to the OpenAPI description (status, content type, body schema).
    """
    tally = FuzzTally(f"{operation.method.upper()} {operation.path}", mode.value)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def run(case: Case) -> None:
        if mode is GenerationMode.POSITIVE:
            integral_floats_as_ints(case)
        response = send(case)
        tally.cases += 1
        tally.statuses[response.status_code] += 1
        checks: list[Any] = list(CONFORMANCE_CHECKS)
        if mode is GenerationMode.NEGATIVE:
            checks.append(REJECTION)
        elif case.media_type == "application/json":
            checks.append(ACCEPTANCE)
        for check in checks:
            try:
                case.validate_response(response, checks=[check])
            except BaseExceptionGroup as group:  # schemathesis's FailureGroup: this check failed
                name = check.__name__
                tally.failure_counts[name] += 1
                kept = tally.failures.setdefault(name, [])
                if len(kept) < _EXAMPLES_KEPT:
                    kept.append(
                        f"{response.status_code} {response.text[:300]!r} <- {case.as_curl_command()[:600]}"
                        f" ({group.exceptions[0]})"
                    )

    started, cpu = time.perf_counter(), time.process_time()
    run()
    tally.seconds, tally.cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return tally
