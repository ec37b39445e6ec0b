"""Property-based run over the service's OpenAPI schema (schemathesis): no generated request gets a 5xx."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from apiserver import AUTH, SHARED_SETTINGS, shared_server

EXAMPLES_PER_OPERATION = 45  # x 7 operations x 2 modes (schema-valid and schema-invalid): several hundred requests


@pytest.fixture(scope="module")
def base_url(request, tmp_path_factory, strong_table):
    return shared_server(request, tmp_path_factory, strong_table, **SHARED_SETTINGS)


def test_generated_requests_never_get_a_server_error(base_url):
    import schemathesis

    schema = schemathesis.openapi.from_dict(httpx.get(f"{base_url}/openapi.json").json())
    sent: dict[str, int] = {}
    statuses: dict[int, int] = {}
    errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /health", "GET /model", "GET /segments", "POST /plans",
                                                 "GET /plans", "GET /plans/{plan_id}", "POST /scores"}
    import requests
    from schemathesis import GenerationMode

    with requests.Session() as session:
        for op, mode in [(op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]:

            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case):
                response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=60)
                sent[f"{op.label} {mode.value}"] = sent.get(f"{op.label} {mode.value}", 0) + 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    errors.append(f"{case.as_curl_command()}: {response.status_code} {response.text[:300]}")

            try:
                check()
            except Unsatisfiable:  # no parameters to break (GET /health, GET /model)
                assert mode is GenerationMode.NEGATIVE, op.label
    print("schemathesis:", sent, statuses)
    assert errors == [], errors[:5]
    assert sum(sent.values()) >= 400, sent
    assert statuses.get(200, 0) > 50 and statuses.get(422, 0) > 10, statuses  # valid and invalid inputs both ran
