"""Schemathesis against the OpenAPI schema: no 5xx, and every response matches its schema."""
from __future__ import annotations

import tempfile

import pytest
import schemathesis
from schemathesis import checks
from hypothesis import HealthCheck, settings

from app.config import Settings
from app.main import create_app

pytestmark = pytest.mark.slow

_home = tempfile.mkdtemp(prefix="embedlab-fuzz-")
app = create_app(Settings(home=_home, demo=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
# The live stream of a queued job never ends by design; it has its own tests.
schema = schema.exclude(path_regex=r"/stream$")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(excluded_checks=[
        # Spec rules JSON Schema cannot state (classes_per_batch against the dataset, loss_params per
        # loss) refuse some schema-valid bodies with a 422 that names the field: intended.
        checks.positive_data_acceptance,
        # Starlette answers an unrouted method with the first matching route's Allow header.
        checks.allow_header_conformance,
        checks.unsupported_method,
    ])
