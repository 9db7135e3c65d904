"""Schemathesis against every service's OpenAPI document, through `crm dev` as a user runs it.

Authenticated with the bootstrap key, with a bounded number of examples per operation so the test
command stays fast. Checks: no 5xx, and every answer's status, content type and body are the ones
its operation documents. A route added to any service is covered the day it lands: the operations
come from the served documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from shared.testing.apps import ADMIN_HEADERS, TEST_BOOTSTRAP_KEY
from shared.testing.distributed import SERVICE_NAMES
from shared.testing.processes import CrmProcess, free_port

# Per operation; the pytest plugin of schemathesis is not used, as it does not run on this pytest.
EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path_factory.mktemp("fuzz")
    env = {
        "CRM_BOOTSTRAP_API_KEY": TEST_BOOTSTRAP_KEY,
        # The fuzzer is one key sending as fast as it can; its answers must not be 429s.
        "CRM_RATE_LIMITS": '{"default": {"per_second": 100000, "burst": 100000}}',
        "CRM_LOG_LEVEL": "WARNING",
    }
    with CrmProcess(
        ["dev", "--port", str(port), "--data-dir", str(data / "var")],
        env=env,
        log_path=Path(data) / "dev.log",
        health_url=f"{base}/healthz",
    ):
        yield base


@pytest.mark.e2e
@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_operation_answers_as_documented(embedded: str, service: str) -> None:
    schema = schemathesis.openapi.from_url(f"{embedded}/{service}/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the OpenAPI document has operations schemathesis cannot read"
    assert operations
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def answers_as_documented(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=ADMIN_HEADERS, checks=CHECKS)

        try:
            answers_as_documented()
        except Exception as exc:
            exc.add_note(f"{service}: {operation.label}")
            raise
