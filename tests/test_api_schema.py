"""The OpenAPI document is 3.1 and true: schemathesis calls every operation with an
operator's token and checks that nothing answers 5xx and every answer matches the schema."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from agents.models import JobStatus

from .api_support import planned_job, token_client
from .cast import person

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def operator_token(db) -> Iterator[str]:
    # Something to find, so that some generated ids and slugs hit rows.
    planned_job(JobStatus.WAITING, review=True)
    planned_job(JobStatus.FAILED)
    # The bare WSGI app closes the connection after each request, and with it the test's
    # transaction: Django's own test client stops that the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield token_client(person("bob")).secret
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_document_is_openapi_3_1_and_public():
    response = APIClient().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operations = [(m, p) for p, item in document["paths"].items() for m in item]
    assert len(operations) >= 24


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_to_its_schema(case, operator_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {operator_token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
